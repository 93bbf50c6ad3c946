"""The transaction log counters behind ``lrukv_txlog_*`` (LoggedStore.counters):
a failing disk shows up as errors and an unhealthy log, never silently."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lrukv import StoreConfig
from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import FileTransactionLog, FsyncPolicy, LoggedStore, TxLogConfig


def _failing_fsync(fd: int) -> None:
    raise OSError(errno.EIO, "Input/output error")


def test_appends_and_fsyncs_are_counted_from_the_open(tmp_path: Path) -> None:
    config = TxLogConfig.from_flag("file", env={})
    store = LoggedStore.open(config, StoreConfig().build(), data_dir=tmp_path, node_id="n1")
    try:
        first = store.counters()
        assert first.appends == 1  # the CONFIG event of a new log
        store.put("a", b"1")
        store.put("b", b"2")
        store.delete("a")
        store.delete("absent")  # records nothing
        counters = store.counters()
        assert counters.appends == 4
        assert counters.syncs == 4  # fsync=always, one writer at a time
        assert (counters.errors, counters.queue_depth, counters.healthy) == (0, 0, True)
        assert counters.last_seq == 4
    finally:
        store.close()
    reopened = LoggedStore.open(config, StoreConfig().build(), data_dir=tmp_path, node_id="n1")
    try:
        again = reopened.counters()
        assert (again.appends, again.syncs, again.last_seq) == (0, 0, 4)  # since this start
    finally:
        reopened.close()


def test_a_failing_fsync_counts_errors_and_reports_the_log_unhealthy(tmp_path: Path) -> None:
    log = FileTransactionLog(tmp_path / "log", fsync=FsyncPolicy.ALWAYS)
    store = LoggedStore(StoreConfig().build(), log)
    store.put("ok", b"v")
    log._fsync = _failing_fsync  # the disk starts failing
    with pytest.raises(LogUnavailable):
        store.put("k", b"v")  # appended, but its fsync failed: not acknowledged
    counters = store.counters()
    assert counters.errors == 1
    assert not counters.healthy
    assert counters.queue_depth == 1  # appended, never made durable
    with pytest.raises(LogUnavailable):
        store.put("k2", b"v")  # refused at append
    assert store.counters().errors == 2
    assert store.counters().syncs == 1
    with pytest.raises(LogUnavailable):
        store.close()
