from __future__ import annotations

from collections.abc import Iterator

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
