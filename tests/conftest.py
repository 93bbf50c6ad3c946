"""Shared fixtures: the real ``lrukv-server`` process (see tests/harness.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import ServerProcess, start_server

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def lrukv_server_factory(tmp_path: Path) -> Iterator[StartServer]:
    """``start(*args, **kwargs)`` starts a server like ``start_server(tmp_path, ...)``;
    every server started is stopped (SIGTERM, then SIGKILL) at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs: object) -> ServerProcess:
        server = start_server(tmp_path, *args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        if server.alive():
            # On TimeoutError stop() has killed it; the test that needed it is over.
            with contextlib.suppress(TimeoutError):
                server.stop(timeout=20)


@pytest.fixture
def lrukv_server(lrukv_server_factory: StartServer) -> ServerProcess:
    """One ``lrukv-server`` with default settings (free loopback ports), for one test."""
    return lrukv_server_factory()
