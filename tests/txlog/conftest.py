"""Fixtures of the transaction log tests: every backend behind one ``open_log``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lrukv_server.txlog import FileTransactionLog, FsyncPolicy, TransactionLog
from tests.pg import pg_dsn, pg_node, pg_throwaway  # noqa: F401  (fixtures)

LogOpener = Callable[[], TransactionLog]

BACKENDS = ["file-always", "file-interval", "file-never", "postgres"]


@pytest.fixture(params=BACKENDS)
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogOpener]:
    """A function that opens (or re-opens) this test's log on one backend; every
    log it opened is closed after the test."""
    opened: list[TransactionLog] = []
    kind: str = request.param
    if kind == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        node = request.getfixturevalue("pg_node")
        from lrukv_server.txlog.pg_log import PostgresTransactionLog

        def opener() -> TransactionLog:
            log = PostgresTransactionLog(dsn, node, sync_timeout_s=10)
            opened.append(log)
            return log

    else:
        policy = FsyncPolicy(kind.removeprefix("file-"))

        def opener() -> TransactionLog:
            log = FileTransactionLog(tmp_path / "txlog.log", fsync=policy, fsync_interval_ms=5)
            opened.append(log)
            return log

    yield opener
    for log in opened:
        with contextlib.suppress(Exception):
            log.close()
