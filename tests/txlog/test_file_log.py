"""The file backend: torn tails are cut and reported, damage elsewhere stops replay."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import (
    CorruptLog,
    FileTransactionLog,
    FsyncPolicy,
    LogOpenError,
    LogSequenceError,
    Op,
)
from lrukv_server.txlog import file_format as fmt
from tests.pg import wait_until

# Big enough that walking it byte by byte in Python would take minutes.
GROW_TEST_ZEROS = 8 << 20


def write_log(path: Path, count: int) -> list[int]:
    """A log of *count* puts; return each record's start offset."""
    with FileTransactionLog(path) as log:
        for i in range(count):
            log.append(Op.PUT, f"key-{i}", b"value-%d" % i)
    offsets = []
    data = path.read_bytes()
    offset = fmt.FILE_HEADER.size
    while offset < len(data):
        offsets.append(offset)
        (length,) = fmt.PREFIX.unpack_from(data, offset)[:1]
        offset += fmt.PREFIX.size + length
    return offsets


def keys_of(log: FileTransactionLog) -> list[str]:
    return [event.key for event in log.replay()]


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_log_cut_anywhere_in_its_last_record_reopens_without_it(tmp_path: Path) -> None:
    path = tmp_path / "log"
    offsets = write_log(path, 3)
    whole = path.read_bytes()
    for cut in range(offsets[2] + 1, len(whole)):
        path.write_bytes(whole[:cut])
        # The torn part is counted up to its last non-zero byte: zeros after it
        # are indistinguishable from preallocated room.
        torn = len(whole[offsets[2] : cut].rstrip(b"\0"))
        with FileTransactionLog(path) as log:
            assert keys_of(log) == ["key-0", "key-1"]
            assert log.open_report.tail == fmt.TailCut(offsets[2], torn)
            assert "torn tail" in log.health().detail
            assert log.append(Op.PUT, "next", b"v") == 3  # the cut record's seq is reused
        with FileTransactionLog(path) as log:
            assert keys_of(log) == ["key-0", "key-1", "next"]
            assert log.open_report.tail is None


def test_a_bit_flip_in_the_last_record_is_cut_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "log"
    offsets = write_log(path, 4)
    flip_bit(path, offsets[3] + 20)
    with FileTransactionLog(path) as log:
        assert keys_of(log) == ["key-0", "key-1", "key-2"]
        assert log.open_report.tail is not None
        assert log.open_report.tail.offset == offsets[3]
    assert path.stat().st_size == offsets[3]


def test_a_zero_filled_tail_is_the_clean_end_not_damage(tmp_path: Path) -> None:
    """Zeros after the last record are preallocated room a crashed writer left (or
    a file system's zero-filled extension): nothing to cut, nothing to report."""
    path = tmp_path / "log"
    write_log(path, 2)
    before = path.read_bytes()
    with path.open("ab") as file:
        file.write(bytes(100_000))
    with FileTransactionLog(path) as log:
        assert keys_of(log) == ["key-0", "key-1"]
        assert log.open_report.tail is None
        assert "torn" not in log.health().detail
        assert log.append(Op.PUT, "next", b"v") == 3  # written where the zeros began
    with FileTransactionLog(path) as log:
        assert keys_of(log) == ["key-0", "key-1", "next"]
        assert log.open_report.tail is None
    # The old records untouched, the new one right after them, and (closed) no zeros.
    assert path.read_bytes() == before + fmt.encode_record(3, Op.PUT, b"next", b"v")


def test_a_torn_record_before_the_zero_tail_is_cut_and_only_it_is_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log"
    offsets = write_log(path, 2)
    torn = fmt.encode_record(3, Op.PUT, b"key-2", b"value-2")[:30]
    with path.open("ab") as file:
        file.write(torn + bytes(GROW_TEST_ZEROS))
    with FileTransactionLog(path) as log:
        assert keys_of(log) == ["key-0", "key-1"]
        end = offsets[1] + len(fmt.encode_record(2, Op.PUT, b"key-1", b"value-1"))
        assert log.open_report.tail == fmt.TailCut(end, len(torn.rstrip(b"\0")))
        assert log.append(Op.PUT, "key-2", b"again") == 3
    with FileTransactionLog(path) as log:
        assert [(e.seq, e.value) for e in log.replay()][-1] == (3, b"again")
        assert log.open_report.tail is None


def test_zeros_followed_by_a_valid_record_are_damage_not_an_end(tmp_path: Path) -> None:
    """A zero-filled hole in the middle (a page lost to a machine crash while a
    later one was written back) is refused with where it is, never skipped."""
    path = tmp_path / "log"
    first = fmt.encode_record(1, Op.PUT, b"a", b"1")
    path.write_bytes(
        fmt.encode_header(0) + first + bytes(5000) + fmt.encode_record(3, Op.PUT, b"c", b"3")
    )
    with pytest.raises(CorruptLog) as caught:
        FileTransactionLog(path)
    assert caught.value.offset == fmt.FILE_HEADER.size + len(first)
    assert caught.value.seq == 2


@pytest.mark.parametrize("field_offset", [0, 4, 8, 30, 50])
def test_damage_followed_by_valid_records_stops_with_its_offset_and_seq(
    tmp_path: Path, field_offset: int
) -> None:
    path = tmp_path / "log"
    offsets = write_log(path, 5)
    flip_bit(path, offsets[2] + field_offset)  # length, crc, seq, key or value of seq 3
    before = path.read_bytes()
    with pytest.raises(CorruptLog) as caught:
        FileTransactionLog(path)
    assert caught.value.offset == offsets[2]
    assert caught.value.seq == 3
    assert f"byte {offsets[2]}" in str(caught.value)
    assert path.read_bytes() == before  # nothing was cut or "repaired"


def test_a_gap_in_the_sequence_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = [
        fmt.encode_record(1, Op.PUT, b"a", b"1"),
        fmt.encode_record(2, Op.PUT, b"b", b"2"),
        fmt.encode_record(4, Op.PUT, b"d", b"4"),
    ]
    path.write_bytes(fmt.encode_header(0) + b"".join(records))
    with pytest.raises(LogSequenceError, match="gap") as caught:
        FileTransactionLog(path)
    assert caught.value.seq == 3
    assert caught.value.offset == fmt.FILE_HEADER.size + len(records[0]) + len(records[1])


def test_a_reordered_sequence_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log"
    body = fmt.encode_record(2, Op.PUT, b"b", b"2") + fmt.encode_record(1, Op.PUT, b"a", b"1")
    path.write_bytes(fmt.encode_header(0) + body)
    with pytest.raises(LogSequenceError):
        FileTransactionLog(path)


def test_a_file_that_is_not_a_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"this is somebody's notes file, not a log\n")
    with pytest.raises(CorruptLog, match="not an lrukv transaction log"):
        FileTransactionLog(path)


def test_a_damaged_snapshot_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with FileTransactionLog(path) as log:
        log.append(Op.PUT, "k", b"v")
        log.compact(log.compaction_mark(), b"blob")
    flip_bit(Path(f"{path}.snapshot"), 40)
    with pytest.raises(CorruptLog, match="snapshot"):
        FileTransactionLog(path)


def test_a_second_process_cannot_open_the_same_log(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with FileTransactionLog(path), pytest.raises(LogOpenError, match="in use"):
        FileTransactionLog(path)


def test_left_over_temporary_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 1)
    leftover = tmp_path / "log.compact.tmp"
    leftover.write_bytes(b"half a compaction")
    with FileTransactionLog(path) as log:
        assert keys_of(log) == ["key-0"]
    assert not leftover.exists()


def failing_fsync(fd: int) -> None:
    raise OSError(errno.EIO, "Input/output error")


def test_a_failed_fsync_refuses_every_later_write(tmp_path: Path) -> None:
    log = FileTransactionLog(tmp_path / "log", fsync_func=os.fsync)
    log._fsync = failing_fsync  # the disk starts failing after open
    seq = log.append(Op.PUT, "k", b"v")
    with pytest.raises(LogUnavailable, match="fsync failed"):
        log.sync(seq)
    health = log.health()
    assert not health.ok
    assert "fsync failed" in health.detail
    assert health.at_risk == 1
    with pytest.raises(LogUnavailable):
        log.append(Op.PUT, "k2", b"v")
    with pytest.raises(LogUnavailable):
        log.close()  # the final flush fails too; the file is released anyway
    with FileTransactionLog(tmp_path / "log") as again:
        assert again.last_seq in (0, 1)  # written but unsynced: may or may not be there


def test_a_failed_background_fsync_makes_the_log_unhealthy(tmp_path: Path) -> None:
    log = FileTransactionLog(
        tmp_path / "log", fsync=FsyncPolicy.INTERVAL, fsync_interval_ms=1, fsync_func=os.fsync
    )
    log._fsync = failing_fsync
    log.sync(log.append(Op.PUT, "k", b"v"))  # interval: acknowledged once written
    wait_until(lambda: not log.health().ok, what="the fsync thread to fail")
    assert "fsync failed" in log.health().detail
    with pytest.raises(LogUnavailable):
        log.append(Op.PUT, "k2", b"v")
    with pytest.raises(LogUnavailable):
        log.close()


def test_a_snapshot_newer_than_the_log_starts_a_fresh_log_after_it(tmp_path: Path) -> None:
    """The log lost its tail (fsync=never and a machine crash) but the snapshot,
    which is always fsynced, covers more: the next seq follows the snapshot."""
    path = tmp_path / "log"
    with FileTransactionLog(path) as log:
        for i in range(5):
            log.append(Op.PUT, f"k{i}", b"v")
        log.compact(log.compaction_mark(), b"blob")
    path.write_bytes(fmt.encode_header(0) + fmt.encode_record(1, Op.PUT, b"k0", b"v"))
    with FileTransactionLog(path) as log:
        assert log.last_seq == 5
        assert log.append(Op.PUT, "k5", b"v") == 6
    with FileTransactionLog(path) as log:
        assert [event.seq for event in log.replay(6)] == [6]
