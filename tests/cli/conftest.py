from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_support import support

SUPPORT = support


@pytest.fixture(scope="session")
def server() -> Iterator[object]:
    srv = support.refserver({"LIT_SERVER_API_KEY": ""})  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def keyed_server() -> Iterator[object]:
    srv = support.refserver({"LIT_SERVER_API_KEY": "s3cret"})  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def real_server() -> Iterator[object]:
    """The real litserve server, started through ``LitServer.run``."""
    srv = support.litserver({"LIT_SERVER_API_KEY": ""})  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The reference server over https, with a self-signed certificate for 127.0.0.1."""
    cert = SUPPORT.self_signed_cert(tmp_path_factory.mktemp("tls"))
    if cert is None:
        pytest.skip("needs the openssl command to make a test certificate")
    srv = SUPPORT.refserver({"LIT_SERVER_API_KEY": ""}, tls=cert)
    srv.cert = cert[0]
    yield srv
    srv.stop()
