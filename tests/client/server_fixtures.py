"""Session servers for the client and CLI tests (both conftests import these)."""

from __future__ import annotations

from collections.abc import Iterator

import client_support as SUPPORT
import pytest
from client_support import ServerProcess, litserver, refserver


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    srv = refserver({"LIT_SERVER_API_KEY": ""})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def keyed_server() -> Iterator[ServerProcess]:
    srv = refserver({"LIT_SERVER_API_KEY": "s3cret"})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def real_server() -> Iterator[ServerProcess]:
    """The real litserve server, started through ``LitServer.run``."""
    srv = litserver({"LIT_SERVER_API_KEY": ""})
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
