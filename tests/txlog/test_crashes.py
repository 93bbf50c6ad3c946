"""Crash tests against real processes: kill -9 mid-write, a full disk, and a crash
at every step of compaction. What a process reported acknowledged must be there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lrukv import ShardedMap
from lrukv_server.txlog import FileTransactionLog, LoggedStore, TxLogConfig

REPO = Path(__file__).resolve().parents[2]


def start_writer(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.txlog.proc_writer", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def acked_keys(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("ack ")]


def reopen(data_dir: Path) -> LoggedStore:
    config = TxLogConfig.from_flag("file", compact_after_events=None)
    return LoggedStore.open(
        config, ShardedMap(shards=4, items_per_shard=100_000), data_dir=data_dir, node_id="n"
    )


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["always", "interval:20", "never"])
def test_every_write_acknowledged_before_kill_9_is_replayed(tmp_path: Path, policy: str) -> None:
    proc = start_writer("write", str(tmp_path), policy)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if len(lines) >= 2000:
                break
        os.kill(proc.pid, signal.SIGKILL)
        lines.extend(proc.stdout.read().splitlines())  # acks printed before the kill
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    acked = acked_keys(lines)
    assert len(acked) >= 2000
    store = reopen(tmp_path)
    try:
        missing = [key for key in acked if store.get(key) != key.encode()]
        assert missing == []
        store.store._check()
        # The kill may land while a record is being copied into the mapping: then
        # that one (unacknowledged) record is a torn tail, nothing more.
        assert isinstance(store.log, FileTransactionLog)
        tail = store.log.open_report.tail
        assert tail is None or tail.dropped_bytes < 100
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["always", "interval:20"])
def test_a_full_disk_refuses_writes_and_loses_nothing_acknowledged(
    tmp_path: Path, policy: str
) -> None:
    """The file may not grow past 200,000 bytes (RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so the kernel answers EFBIG): the log is preallocated 64 KiB at a
    time, and the growth that would cross the limit fails, as ENOSPC would on a
    full disk. That append is refused, and so is every later one."""
    proc = start_writer("fill", str(tmp_path), "200000", policy, str(64 << 10))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    refusal = next(line for line in lines if line.startswith("refused "))
    assert "write failed: cannot extend the log file" in refusal
    assert "File too large" in refusal
    assert "refused-again" in lines  # the log stays failed: no write after a failure
    assert "health False" in lines
    acked = acked_keys(lines)
    assert len(acked) > 100  # it did grow (64 KiB holds ~60 of these records) before failing
    size = (tmp_path / "txlog.log").stat().st_size
    assert size <= 200_000
    store = reopen(tmp_path)
    try:
        assert all(store.get(key) == bytes(1000) for key in acked)
        assert store.get("after") is None
        # A refused growth wrote nothing: no torn record, and the refused event
        # never took a seq.
        assert store.log.last_seq == 1 + len(acked)  # the CONFIG event opens every log
        assert isinstance(store.log, FileTransactionLog)
        assert store.log.open_report.tail is None
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["always", "interval:20", "never"])
def test_after_kill_9_the_zero_tail_is_a_clean_end_with_every_event(
    tmp_path: Path, policy: str
) -> None:
    proc = start_writer("settle", str(tmp_path), policy)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "done":
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    data = (tmp_path / "txlog.log").read_bytes()
    end = len(data.rstrip(b"\0"))  # the last record's value (its key) is not zero
    assert len(data) - end > 1 << 20  # the preallocated room, left as zeros
    acked = acked_keys(lines)
    assert len(acked) == 500
    store = reopen(tmp_path)
    try:
        assert all(store.get(key) == key.encode() for key in acked)
        assert store.log.last_seq == 1 + 500  # the CONFIG event, then the puts
        assert isinstance(store.log, FileTransactionLog)
        assert store.log.open_report.tail is None  # zeros are not damage
        assert store.log_health().ok
        store.put("after", b"x")
    finally:
        store.close()
    closed = (tmp_path / "txlog.log").read_bytes()
    assert closed[:end] == data[:end]  # the records are untouched, the next follows
    assert closed.endswith(b"after" + b"x")
    assert len(closed) < len(data)  # closed: truncated to its end, no zeros kept


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["snapshot-written", "snapshot-renamed", "log-written", "log-renamed", "none"]
)
def test_a_crash_at_any_step_of_compaction_recovers_the_same_state(
    tmp_path: Path, point: str
) -> None:
    proc = start_writer("compact", str(tmp_path), point)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (0 if point == "none" else 77), err
    assert ("compacted" in out.splitlines()) == (point == "none")
    expected = {f"k{i}": b"v%d" % i for i in range(60) if i != 7}
    store = reopen(tmp_path)
    try:
        assert dict(store.items()) == expected
        store.put("later", b"x")  # and the log goes on from where it was
        assert store.compact()
    finally:
        store.close()
    store = reopen(tmp_path)
    try:
        assert dict(store.items()) == {**expected, "later": b"x"}
        assert store.log.last_seq == 1 + 62  # the CONFIG event, then the writes
    finally:
        store.close()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    with FileTransactionLog(tmp_path / "txlog.log") as log:
        assert log.open_report.tail is None
