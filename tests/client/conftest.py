from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_support import ServerProcess, refserver


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
