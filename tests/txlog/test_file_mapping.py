"""The file log's memory-mapped write path: preallocation, growth, the zero tail,
logs written by the old write(2) path, and appends that make no system call."""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import FileTransactionLog, FsyncPolicy, LogEvent, Op, file_log
from lrukv_server.txlog import file_format as fmt

SMALL_MIN = 4096
SMALL_MAX = 16384


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grow by 4 KiB doubling to 16 KiB, so a few hundred events cross many chunks."""
    monkeypatch.setattr(file_log, "GROW_MIN", SMALL_MIN)
    monkeypatch.setattr(file_log, "GROW_MAX", SMALL_MAX)


def encoded(events: list[LogEvent]) -> bytes:
    """The bytes these events have in a log file, as the format defines them."""
    return b"".join(
        fmt.encode_record(
            e.seq,
            e.op,
            e.key.encode(),
            e.value,
            expires_at=e.expires_at,
            applied_index=e.applied_index,
        )
        for e in events
    )


def varied_events(count: int) -> Iterator[LogEvent]:
    for i in range(count):
        if i % 97 == 13:
            yield LogEvent(i + 1, Op.DELETE, f"key-{i - 1}")
        elif i == 150:
            # Bigger than a whole chunk, and than a CRC piece (the CRC is then taken
            # in pieces so zlib keeps the GIL): must grow past the doubling step.
            yield LogEvent(i + 1, Op.PUT, "big", bytes(range(256)) * 200)
        else:
            expires = 1_900_000_000.5 + i if i % 7 == 0 else None
            yield LogEvent(i + 1, Op.PUT, f"key-{i}", b"v" * (i % 300), expires)


def append_all(log: FileTransactionLog, events: list[LogEvent]) -> None:
    for event in events:
        seq = log.append(event.op, event.key, event.value, event.expires_at)
        assert seq == event.seq


@pytest.mark.usefixtures("small_chunks")
def test_a_log_grown_across_many_chunks_replays_in_full_and_byte_exact(tmp_path: Path) -> None:
    path = tmp_path / "log"
    events = list(varied_events(1200))
    sizes = []
    with FileTransactionLog(path, fsync=FsyncPolicy.NEVER) as log:
        for event in events:
            log.append(event.op, event.key, event.value, event.expires_at)
            sizes.append(path.stat().st_size)
        assert list(log.replay()) == events  # before close: read through the page cache
    steps = sorted({b - a for a, b in itertools.pairwise(sizes) if b != a})
    assert len(set(sizes)) > 10  # it grew many times
    assert steps[0] >= SMALL_MIN
    assert steps[-2] == SMALL_MAX  # doubling is capped (the last step is the big record's)
    assert steps[-1] > SMALL_MAX
    # Closed: truncated to its end, and exactly what the format says, no padding.
    assert path.read_bytes() == fmt.encode_header(0) + encoded(events)
    with FileTransactionLog(path) as log:
        assert list(log.replay()) == events
        assert log.open_report.tail is None


def test_a_log_written_by_the_old_write_path_opens_and_continues(tmp_path: Path) -> None:
    """Logs from before the mapping (records written with writev, no zero tail)."""
    path = tmp_path / "log"
    old = fmt.encode_header(0) + b"".join(
        fmt.encode_record(i, Op.PUT, b"k%d" % i, b"v%d" % i, applied_index=10 + i)
        for i in range(1, 51)
    )
    path.write_bytes(old)
    with FileTransactionLog(path) as log:
        assert log.last_seq == 50
        assert log.last_applied_index == 60
        assert log.open_report.tail is None
        assert path.stat().st_size > len(old)  # room preallocated while open
        log.sync(log.append(Op.DELETE, "k1"))
    assert path.read_bytes() == old + fmt.encode_record(51, Op.DELETE, b"k1", b"")


def test_close_gives_back_the_room_and_reopen_finds_no_zero_tail(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = FileTransactionLog(path, fsync=FsyncPolicy.INTERVAL, fsync_interval_ms=5)
    log.append(Op.PUT, "a", b"1")
    assert path.stat().st_size >= file_log.GROW_MIN  # preallocated
    log.close()
    data = path.read_bytes()
    assert data == fmt.encode_header(0) + fmt.encode_record(1, Op.PUT, b"a", b"1")
    with FileTransactionLog(path) as again:
        assert again.open_report.tail is None
        assert again.append(Op.PUT, "b", b"2") == 2
    assert path.read_bytes() == data + fmt.encode_record(2, Op.PUT, b"b", b"2")


def test_a_sparse_tail_gets_real_blocks_before_it_is_written(tmp_path: Path) -> None:
    """Zeros after the end that are a hole (the file extended by truncate, not by
    us) are reused only after posix_fallocate: a store into a hole on a full
    disk would be a SIGBUS."""
    path = tmp_path / "log"
    path.write_bytes(fmt.encode_header(0) + fmt.encode_record(1, Op.PUT, b"a", b"1"))
    os.truncate(path, 8 << 20)
    assert path.stat().st_blocks * 512 < 1 << 20  # a hole
    with FileTransactionLog(path) as log:
        assert log.open_report.tail is None
        assert path.stat().st_blocks * 512 >= (8 << 20) - 4096
        log.append(Op.PUT, "b", b"2")
    with FileTransactionLog(path) as log:
        assert [e.key for e in log.replay()] == ["a", "b"]


def no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("policy", [FsyncPolicy.ALWAYS, FsyncPolicy.INTERVAL, FsyncPolicy.NEVER])
def test_a_failed_growth_refuses_writes_and_loses_nothing_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: FsyncPolicy
) -> None:
    path = tmp_path / "log"
    log = FileTransactionLog(path, fsync=policy, fsync_interval_ms=5)
    monkeypatch.setattr(file_log, "_preallocate", no_space)  # the disk is full from now on
    acknowledged = []
    with pytest.raises(LogUnavailable, match="cannot extend the log file") as refused:
        for i in range(10_000):
            seq = log.append(Op.PUT, f"k{i}", b"x" * 100)
            log.sync(seq)  # as LoggedStore does before acknowledging
            acknowledged.append(f"k{i}")
    assert "No space left on device" in str(refused.value)
    assert 20 < len(acknowledged) < 100  # the preallocated room was used first
    health = log.health()
    assert not health.ok
    assert "No space left on device" in health.detail
    with pytest.raises(LogUnavailable):
        log.append(Op.PUT, "later", b"x")  # every later write too, until restart
    assert log.last_seq == len(acknowledged)  # the refused event took no seq
    log.close()  # a full disk is not a failed fsync: close still fsyncs, so no error
    assert log.health().at_risk == 0
    monkeypatch.undo()
    with FileTransactionLog(path) as again:
        assert [e.key for e in again.replay()] == acknowledged
        assert again.open_report.tail is None
        assert again.health().ok  # a restart with space brings the log back


def test_a_compaction_that_cannot_preallocate_leaves_the_old_log_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log"
    log = FileTransactionLog(path)
    for i in range(10):
        log.append(Op.PUT, f"k{i}", b"v")
    mark = log.compaction_mark()
    log.append(Op.PUT, "after-mark", b"w")
    with monkeypatch.context() as patch:
        patch.setattr(file_log, "_preallocate", no_space)
        with pytest.raises(OSError, match="No space"):
            log.compact(mark, b"blob")
    assert log.health().ok
    log.sync(log.append(Op.PUT, "still", b"ok"))
    assert not list(tmp_path.glob("*.compact.tmp"))
    log.close()
    with FileTransactionLog(path) as again:
        # The snapshot was written; the old log (all events) is still the log.
        snapshot = again.load_snapshot()
        assert snapshot is not None
        assert snapshot.seq == 10
        assert [e.key for e in again.replay(11)] == ["after-mark", "still"]


@pytest.mark.usefixtures("small_chunks")
def test_appends_after_compaction_go_to_the_new_file_with_room(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with FileTransactionLog(path, fsync=FsyncPolicy.NEVER) as log:
        for i in range(200):
            log.append(Op.PUT, f"k{i}", b"v" * 50)
        log.compact(log.compaction_mark(), b"blob")
        assert path.stat().st_size > fmt.FILE_HEADER.size  # preallocated room
        events = [log.append(Op.PUT, f"n{i}", b"w" * 80) for i in range(300)]  # grows again
        assert [e.seq for e in log.replay(201)] == events
    with FileTransactionLog(path) as log:
        assert [e.key for e in log.replay(201)] == [f"n{i}" for i in range(300)]


SYSCALLS = ["write", "writev", "pwrite", "fsync", "fdatasync", "ftruncate", "posix_fallocate"]


@pytest.mark.parametrize("policy", [FsyncPolicy.INTERVAL, FsyncPolicy.NEVER])
def test_append_and_sync_make_no_system_call_until_the_file_must_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: FsyncPolicy
) -> None:
    """The point of the mapping: every system call lets go of the GIL, and a
    thread that has to take it back while holding the store's write lock stalls
    every writer (the convoy effect). Guard that no write-path call comes back."""
    # A long interval: the fsync thread must not run inside the guarded block.
    log = FileTransactionLog(tmp_path / "log", fsync=policy, fsync_interval_ms=60_000)
    calls: list[str] = []

    def recorder(name: str) -> Callable[..., Any]:
        def record(*args: object) -> None:
            calls.append(name)
            raise AssertionError(f"os.{name} called on the append path")

        return record

    with monkeypatch.context() as patch:
        for name in SYSCALLS:
            if hasattr(os, name):
                patch.setattr(os, name, recorder(name))
        for i in range(2000):  # ~300 KB: within the first 4 MiB chunk
            log.sync(log.append(Op.PUT, f"key-{i}", b"v" * 100))
    assert calls == []
    log.close()
