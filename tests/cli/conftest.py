from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_support import support


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
