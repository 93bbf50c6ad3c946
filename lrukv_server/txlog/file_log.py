"""FileTransactionLog: the embedded default backend (format in ``file_format``).

Write path
----------
The log file is mapped into memory (``mmap``, ``MAP_SHARED``). ``append``
encodes the record and copies it into the mapping at the log's logical end,
under a short lock: a memory copy, not a system call. That matters because
every system call releases and re-takes the GIL, and with many server threads
busy in Python the appending thread (which holds the store's write lock) then
waits for the GIL once per put: the convoy effect that made one ``writev`` per
event cost a third of the server's put throughput.

What survives what. A byte stored into a shared file mapping is in the kernel's
page cache at once, exactly like a byte handed to write(2), so once ``append``
returns the event survives the death of the process (kill -9, a segfault) under
every policy. Surviving a crash of the machine needs an fsync (which writes back
the file's dirty pages however they were dirtied):

* ``always``: ``sync(seq)`` fsyncs; concurrent callers share one fsync (group
  commit): one leads, the others wait on a condition and return when it covered
  them;
* ``interval``: ``sync`` returns at once; a background thread fsyncs every period;
* ``never``: ``sync`` returns at once; fsync only at compaction, flush and close.

Preallocation. The file is grown ahead of the writer with ``posix_fallocate``:
the room added is the file's size, at least :data:`GROW_MIN` and at most
:data:`GROW_MAX` (a new log grows to 4, 8, 16, 32, 64 MiB, then 64 MiB at a
time), and the file is then remapped. Growth is rare (once per chunk) and is
the only system call an append can make. ``posix_fallocate`` reserves real
blocks, so a full disk is an ENOSPC (or EFBIG) error at growth time, never a
SIGBUS on a later store into a hole of a sparse file. The preallocated,
unwritten rest of the file is zeros: at open, zeros after the last whole record
are the log's clean end (see ``file_format``); ``close`` truncates the file to
its logical end.

Failures
--------
A failed growth or fsync marks the log failed for good: every later ``append``
and ``sync`` raises LogUnavailable, and ``health()`` says why. After a failed
fsync the kernel may have dropped the dirty pages, so retrying could report
success for data that is gone (PostgreSQL's "fsyncgate"); only a restart, which
re-reads and re-verifies the file, brings the log back. Events whose ``sync``
raised were not acknowledged; they may or may not be in the file.

What a mapping cannot turn into an error: a store into a page that is not in
memory makes the kernel read it first, and if that read fails the process gets
SIGBUS. The writer only stores into the page at the logical end (recently
written, so resident) and into preallocated pages (unwritten extents, which
read as zeros without touching the disk), so this needs the end page evicted
*and* the disk failing to read it back. On copy-on-write file systems (btrfs,
ZFS) preallocation does not reserve the space a later write needs: there a full
disk can still end in SIGBUS. Use ext4 or XFS for the log.

Files: ``<path>`` (the log), ``<path>.snapshot`` (compaction), and temporary
``<path>.*.tmp`` files that a crash may leave and the next open deletes. An
exclusive ``flock`` keeps a second process from opening the same log. Nothing
but this class may change the log's size while it is open (truncating a mapped
file under the writer is a SIGBUS).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import file_format as fmt
from lrukv_server.txlog.base import (
    AlreadyApplied,
    LogEvent,
    LogHealth,
    LogOpenError,
    LogSequenceError,
    Op,
    SnapshotRecord,
)
from lrukv_server.txlog.config import FsyncPolicy
from lrukv_server.txlog.locks import WriterLock

__all__ = ["GROW_MAX", "GROW_MIN", "FileOpenReport", "FileTransactionLog"]

logger = logging.getLogger("lrukv.txlog")

# Preallocation steps (see the module docstring). Module variables, not
# constants, so tests can make a log grow (and fail to grow) in a few KiB.
GROW_MIN = 4 << 20
GROW_MAX = 64 << 20

_COPY_CHUNK = 4 << 20
_PAGE = mmap.ALLOCATIONGRANULARITY
# zlib.crc32 releases the GIL for buffers over 5 KiB; a big record's CRC is taken
# in pieces below that, so an append never lets go of the GIL (see the docstring).
_CRC_PIECE = 4096
_HEADER_SIZE = fmt.FILE_HEADER.size
_PREFIX_SIZE = fmt.PREFIX.size
_BODY_SIZE = fmt.BODY.size
_pack_body = fmt.BODY.pack
_pack_prefix = fmt.PREFIX.pack
_crc32 = zlib.crc32


def _no_crash(point: str) -> None:
    """Default crash hook: crash-point tests replace it to die at *point*."""


# Called with a name at each step of compaction; tests set it to ``os._exit`` at one.
crash_hook: Callable[[str], None] = _no_crash


def _crc_holding_gil(data: bytes) -> int:
    """crc32 of *data*, in pieces small enough that zlib keeps the GIL."""
    view = memoryview(data)
    crc = 0
    for offset in range(0, len(data), _CRC_PIECE):
        crc = _crc32(view[offset : offset + _CRC_PIECE], crc)
    return crc


def _room(size: int) -> int:
    """How much to preallocate past a file of *size* bytes: doubling, in bounds."""
    return min(max(size, GROW_MIN), GROW_MAX)


def _round_up(size: int) -> int:
    return -(-size // _PAGE) * _PAGE


def _preallocate(fd: int, offset: int, length: int) -> None:
    """Give ``[offset, offset + length)`` real blocks (extending the file). Raises
    OSError (ENOSPC, EFBIG…) if the space is not there."""
    if length > 0:
        os.posix_fallocate(fd, offset, length)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(frozen=True, slots=True)
class FileOpenReport:
    """What opening the log found; ``tail`` is set when a torn tail was cut."""

    path: str
    base_seq: int
    records: int
    last_seq: int
    snapshot_seq: int | None
    tail: fmt.TailCut | None

    def __str__(self) -> str:
        text = (
            f"{self.path}: {self.records} events after seq {self.base_seq}, "
            f"last seq {self.last_seq}"
        )
        if self.snapshot_seq is not None:
            text += f", snapshot at seq {self.snapshot_seq}"
        if self.tail is not None:
            text += f"; {self.tail}"
        return text


@dataclass(frozen=True, slots=True)
class _Mark:
    seq: int
    offset: int
    applied_index: int | None
    generation: int


class FileTransactionLog:
    """A transaction log in one local file. See the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = FsyncPolicy.ALWAYS,
        fsync_interval_ms: int = 100,
        fsync_func: Callable[[int], None] = os.fsync,
    ) -> None:
        """Open (or create) the log at *path*, verify it, and cut a torn tail.

        Raises LogOpenError (cannot create or map it, or in use by another
        process), CorruptLog / LogSequenceError (damage that is not a torn tail).
        ``fsync_func`` exists so tests can make fsync fail.
        """
        self._path = os.path.abspath(os.fspath(path))
        self._snapshot_path = self._path + ".snapshot"
        self._dir = os.path.dirname(self._path)
        self._policy = fsync
        self._interval = fsync_interval_ms / 1000.0
        self._fsync = fsync_func
        # interval/never: an event is as durable as the policy promises once it is
        # in the page cache, i.e. once append returns; sync() has nothing to do.
        self._ack_on_append = fsync is not FsyncPolicy.ALWAYS
        # _lock: the append state and the mapping. Appends hold it for a memory
        # copy; only growth and compaction do I/O under it. A WriterLock: with
        # many appending threads a threading.Lock forms convoys (see ``locks``).
        self._lock = WriterLock()
        self._io_lock = threading.Lock()  # the fd's lifetime and fsyncs; taken before _lock
        self._compact_lock = threading.Lock()
        self._sync_cond = threading.Condition(threading.Lock())  # group commit: one leader
        self._syncing = False
        self._failure: str | None = None
        self._closed = False
        self._refusing = False  # failed or closed: one flag for append to test
        # A failed fsync makes the page cache untrustworthy (see Failures); a failed
        # growth does not, so the log still fsyncs what it acknowledged after one.
        self._fsync_failed = False
        self._generation = 0
        self._fsyncs = 0  # successful fsyncs of the log by _fsync_locked (metrics)
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._capacity = 0  # bytes mapped (the file's size, preallocated room included)
        self._size = 0  # the logical end: just after the last record
        self._open_files()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if fsync is FsyncPolicy.INTERVAL:
            self._thread = threading.Thread(
                target=self._interval_loop, name="lrukv-txlog-fsync", daemon=True
            )
            self._thread.start()

    # ---------------------------------------------------------------- opening

    def _open_files(self) -> None:
        try:
            os.makedirs(self._dir, exist_ok=True)
            for name in os.listdir(self._dir):
                if name.startswith(os.path.basename(self._path) + ".") and name.endswith(".tmp"):
                    os.unlink(os.path.join(self._dir, name))  # left by a crash mid-compaction
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LogOpenError(f"transaction log {self._path}: cannot open: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LogOpenError(
                f"transaction log {self._path} is in use by another process"
            ) from None
        self._fd = fd
        try:
            self._load(fd)
        except OSError as exc:
            self._release()
            raise LogOpenError(f"transaction log {self._path}: cannot open: {exc}") from None
        except BaseException:
            self._release()
            raise

    def _load(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        snapshot = self.load_snapshot()
        snapshot_seq = None if snapshot is None else snapshot.seq
        if size == 0:
            _write_all(fd, fmt.encode_header(snapshot_seq or 0))
            self._fsync(fd)
            self._fsync_dir()
            size = _HEADER_SIZE
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
            base = fmt.decode_header(mapped[:_HEADER_SIZE], self._path)
            with memoryview(mapped) as view:
                result = fmt.scan(view, base, self._path)
        if result.tail is not None:
            # Cut the torn record and whatever follows it (preallocated zeros):
            # the room is preallocated afresh below.
            os.ftruncate(fd, result.end)
            self._fsync(fd)
            size = result.end
            logger.warning("transaction log %s: %s", self._path, result.tail)
        self._base = base
        self._size = result.end
        last_seq = result.last_seq
        self._last_seq = self._synced_seq = last_seq
        applied = result.last_applied_index
        if snapshot is not None:
            if base > snapshot.seq:
                raise LogSequenceError(
                    f"{self._path}: the log starts after seq {base} but its snapshot covers "
                    f"only up to seq {snapshot.seq}: events in between are missing",
                    where=self._path,
                    offset=0,
                    seq=snapshot.seq + 1,
                )
            if snapshot.applied_index is not None and (
                applied is None or applied < snapshot.applied_index
            ):
                applied = snapshot.applied_index
            if last_seq < snapshot.seq:
                # The snapshot covers more than the log holds (the log's tail was
                # lost to a machine crash under fsync=never): start the log afresh
                # at the snapshot, or the next append would leave a gap.
                self._last_seq = self._synced_seq = last_seq = snapshot.seq
                with self._lock:
                    self._rewrite_log(snapshot.seq, _HEADER_SIZE, _HEADER_SIZE, need_room=False)
        self._last_applied = applied
        if self._map is None:
            self._map_at_open(size)
        self.open_report = FileOpenReport(
            self._path, base, result.records, last_seq, snapshot_seq, result.tail
        )

    def _map_at_open(self, file_size: int) -> None:
        """Map the file with room to append. The zero tail a crash left is reused
        (given real blocks first: a file could have been extended sparsely);
        without one, room is preallocated. If that fails (a full disk), the log
        still opens for replay and the first append fails cleanly."""
        end = self._size
        capacity = file_size if file_size > end else _round_up(end + _room(end))
        try:
            _preallocate(self._fd, end, capacity - end)
        except OSError as exc:
            logger.warning(
                "transaction log %s: cannot preallocate %d bytes: %s; writes will be "
                "refused unless space is found",
                self._path,
                capacity - end,
                exc,
            )
            capacity = end
        self._map = mmap.mmap(self._fd, capacity)
        self._capacity = capacity

    # ------------------------------------------------------------------ write

    def append(
        self,
        op: Op,
        key: str,
        value: bytes = b"",
        expires_at: float | None = None,
        applied_index: int | None = None,
    ) -> int:
        """Record one event in the page cache and return its seq; the event then
        survives kill -9, and is durable against a machine crash after
        ``sync(seq)`` under ``always``.

        Raises LogUnavailable if the log failed or is closed (or the file cannot
        grow), AlreadyApplied for an applied_index not after the last.
        Cost: O(len(key) + len(value)); no system call except for a rare growth.
        """
        try:
            encoded = key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("key is not valid UTF-8") from None
        if expires_at is None and applied_index is None:  # the common case, cheaper
            flags = 0
            expires = 0.0
            applied = 0
        else:
            flags = (0 if expires_at is None else fmt.FLAG_EXPIRES) | (
                0 if applied_index is None else fmt.FLAG_APPLIED
            )
            expires = expires_at or 0.0
            applied = applied_index or 0
        # acquire/release rather than ``with``: measurably cheaper on this path.
        lock = self._lock
        lock.acquire()
        try:
            if self._refusing:
                raise LogUnavailable(self._refusal())
            if applied_index is not None:
                last = self._last_applied
                if last is not None and applied_index <= last:
                    raise AlreadyApplied(
                        f"applied_index {applied_index} is not after {last}: already applied"
                    )
            seq = self._last_seq + 1
            # One bytes object and one crc32 call: cheaper than packing into the
            # mapping piece by piece (measured), for the small records that matter.
            body = (
                _pack_body(seq, op, flags, 0, len(encoded), len(value), expires, applied)
                + encoded
                + value
            )
            body_len = len(body)
            start = self._size
            body_start = start + _PREFIX_SIZE
            end = body_start + body_len
            if end > self._capacity:
                self._grow_locked(end)
            mapped = self._map
            assert mapped is not None  # set at open; appends stop before close unmaps
            mapped[body_start:end] = body
            mapped[start:body_start] = _pack_prefix(
                body_len, _crc32(body) if body_len <= _CRC_PIECE else _crc_holding_gil(body)
            )
            self._size = end
            self._last_seq = seq
            if applied_index is not None:
                self._last_applied = applied_index
        finally:
            lock.release()
        return seq

    def _grow_locked(self, need: int) -> None:
        """Preallocate room for a file of at least *need* bytes and remap it
        (``_lock`` held). On failure fail the log and raise LogUnavailable: the
        event being appended is refused, nothing acknowledged is touched."""
        capacity = _round_up(max(need, self._capacity + _room(self._capacity)))
        try:
            # From the logical end, not the old capacity: that room may have come
            # from a crashed run and is given real blocks again (a no-op if it has).
            _preallocate(self._fd, self._size, capacity - self._size)
            mapped = mmap.mmap(self._fd, capacity)
        except OSError as exc:
            self._fail_locked(
                f"write failed: cannot extend the log file to {capacity} bytes: {exc}"
            )
            raise LogUnavailable(self._refusal()) from exc
        old, self._map, self._capacity = self._map, mapped, capacity
        if old is not None:
            old.close()

    def sync(self, seq: int) -> None:
        """Return once event *seq* (and all before it) is durable per the policy.

        ``interval`` / ``never``: at once (``append`` put it in the page cache).
        ``always``: after an fsync that covered it. Concurrent callers share one
        fsync: one of them leads, the others wait on a condition (not on the I/O
        lock, which the leader could re-take before they wake) and return when
        it covered them. Raises LogUnavailable if the fsync fails."""
        if self._ack_on_append or seq <= self._synced_seq:
            return
        with self._sync_cond:
            while True:
                if seq <= self._synced_seq:
                    return
                if self._failure is not None:
                    raise LogUnavailable(self._refusal())
                if not self._syncing:
                    self._syncing = True
                    break
                self._sync_cond.wait()
        try:
            with self._io_lock:
                if self._failure is not None or self._fd < 0:
                    raise LogUnavailable(self._refusal())
                self._fsync_locked()
        finally:
            with self._sync_cond:
                self._syncing = False
                self._sync_cond.notify_all()

    def flush(self) -> None:
        """Fsync everything appended, whatever the policy."""
        with self._io_lock:
            if self._failure is not None:
                raise LogUnavailable(self._refusal())
            if self._fd >= 0 and self._synced_seq < self._last_seq:
                self._fsync_locked()

    def _fsync_locked(self) -> None:
        """Fsync the log (I/O lock held); on error fail the log and raise. Covers
        every event appended before it starts: each was copied into the mapping
        before ``_last_seq`` counted it."""
        with self._lock:
            upto = self._last_seq
        try:
            self._fsync(self._fd)
        except OSError as exc:
            self._fail(f"fsync failed: {exc}", fsync_failed=True)
            raise LogUnavailable(self._refusal()) from exc
        self._synced_seq = max(self._synced_seq, upto)
        self._fsyncs += 1  # under the I/O lock

    def _fail(self, reason: str, *, fsync_failed: bool = False) -> None:
        with self._lock:
            self._fail_locked(reason, fsync_failed=fsync_failed)

    def _fail_locked(self, reason: str, *, fsync_failed: bool = False) -> None:
        self._fsync_failed |= fsync_failed
        if self._failure is None:
            self._failure = reason
            self._refusing = True
            logger.error(
                "transaction log %s: %s; refusing writes until restart", self._path, reason
            )

    def _refusal(self) -> str:
        if self._failure is not None:
            return f"transaction log {self._path}: {self._failure}; writes are refused"
        return f"transaction log {self._path} is closed"

    def _interval_loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._io_lock:
                # Not stopped by a failed growth: events acknowledged before it
                # still get their fsync within the interval.
                if self._fsync_failed or self._fd < 0:
                    return
                if self._synced_seq < self._last_seq:
                    try:
                        self._fsync_locked()
                    except LogUnavailable:
                        return  # recorded by _fail; health reports it

    # ------------------------------------------------------------------- read

    def replay(self, from_seq: int = 1) -> Iterator[LogEvent]:
        """Yield the events with ``seq >= from_seq`` appended before this call.

        Reads through its own read-only mapping of the file (the page cache, so
        it sees every append). Raises ValueError if *from_seq* falls in the part
        replaced by the snapshot (load it with ``load_snapshot`` and replay
        after its seq).
        """
        with self._io_lock:
            if self._fd < 0:
                raise LogUnavailable(self._refusal())
            if from_seq <= self._base:
                raise ValueError(
                    f"events up to seq {self._base} were compacted into the snapshot; "
                    f"replay from seq {self._base + 1} or later"
                )
            with self._lock:
                size = self._size
            # Never past the logical end: close truncates the file there, and a
            # mapping that reached further would SIGBUS.
            mapped = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)
        return self._iter_mapped(mapped, size, from_seq)

    def _iter_mapped(self, mapped: mmap.mmap, size: int, from_seq: int) -> Iterator[LogEvent]:
        try:
            yield from fmt.iter_events(mapped, _HEADER_SIZE, size, from_seq, self._path)
        finally:
            mapped.close()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def last_applied_index(self) -> int | None:
        return self._last_applied

    @property
    def path(self) -> str:
        return self._path

    @property
    def syncs(self) -> int:
        """fsyncs of the log since it was opened (group commits count once)."""
        return self._fsyncs

    @property
    def policy(self) -> FsyncPolicy:
        return self._policy

    def health(self) -> LogHealth:
        """ok unless growing the file or an fsync failed or the log is closed;
        ``at_risk`` is the number of events not yet fsynced (lost by a machine
        crash now; a process crash loses none of them)."""
        at_risk = self._last_seq - self._synced_seq
        if self._failure is not None or self._closed:
            return LogHealth(False, self._refusal(), at_risk)
        detail = f"file {self._path}, fsync={self._policy.value}"
        if self.open_report.tail is not None:
            detail += f"; at open {self.open_report.tail}"
        return LogHealth(True, detail, at_risk)

    # ------------------------------------------------------------- compaction

    def compaction_mark(self) -> object:
        """See CompactableLog: call with appends excluded by the caller."""
        with self._lock:
            return _Mark(self._last_seq, self._size, self._last_applied, self._generation)

    def compact(self, mark: object, blob: bytes) -> None:
        """Write *blob* as the snapshot at *mark*, then start a log holding only
        the events after it.

        Crash safety, step by step (each file is written to a temporary name,
        fsynced, renamed into place, and the directory fsynced):

        1. snapshot written and renamed: recovery loads it and skips the old
           log's events up to its seq; before the rename, the old snapshot (or
           none) and the full old log are still there.
        2. the new log (header base = mark seq, then the old log's bytes after
           the mark, then preallocated room) is renamed over the old one:
           recovery reads the snapshot and the new log. A rename is atomic, so
           it sees one log or the other.
        """
        if not isinstance(mark, _Mark):
            raise TypeError("compact() needs the token returned by compaction_mark()")
        with self._compact_lock:
            if mark.generation != self._generation:
                raise ValueError("the log was compacted after this mark was taken")
            record = SnapshotRecord(mark.seq, mark.applied_index, blob)
            self._write_atomically(self._snapshot_path, fmt.encode_snapshot(record), "snapshot")
            with self._io_lock:
                if self._failure is not None or self._fd < 0:
                    raise LogUnavailable(self._refusal())
                with self._lock:  # appends copy into the mapping being replaced: hold them
                    self._rewrite_log(mark.seq, mark.offset, self._size, need_room=True)
            logger.info(
                "transaction log %s compacted at seq %d (%d snapshot bytes)",
                self._path,
                mark.seq,
                len(blob),
            )

    def _rewrite_log(self, base_seq: int, start: int, stop: int, *, need_room: bool) -> None:
        """Replace the log by a header with *base_seq*, the bytes [start, stop) of
        the current one and preallocated room; switch to it. ``_lock`` held.

        With *need_room* (compaction) a failed preallocation fails the rewrite
        and the old log carries on; without (at open) the new log starts with
        no room and its first append fails cleanly instead."""
        tmp = self._path + ".compact.tmp"
        new_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        new_map: mmap.mmap | None = None
        size = _HEADER_SIZE + (stop - start)
        try:
            fcntl.flock(new_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(new_fd, fmt.encode_header(base_seq))
            offset = start
            while offset < stop:
                # pread goes through the page cache, which holds what the mapping wrote.
                chunk = os.pread(self._fd, min(_COPY_CHUNK, stop - offset), offset)
                if not chunk:
                    raise OSError(f"log shrank while compacting (at byte {offset})")
                _write_all(new_fd, chunk)
                offset += len(chunk)
            capacity = _round_up(size + _room(size))
            try:
                _preallocate(new_fd, size, capacity - size)
            except OSError:
                if need_room:
                    raise
                capacity = size
            self._fsync(new_fd)
            new_map = mmap.mmap(new_fd, capacity)  # before the rename: nothing can fail after
            crash_hook("log-written")
            os.rename(tmp, self._path)
        except BaseException:
            if new_map is not None:
                new_map.close()
            os.close(new_fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # Renamed: the new file is the log from here on, whatever fails next.
        old_map, old_fd = self._map, self._fd
        self._map, self._fd, self._capacity, self._size = new_map, new_fd, capacity, size
        self._base = base_seq
        self._synced_seq = self._last_seq  # every event is in the new file, fsynced
        self._generation += 1
        if old_map is not None:
            old_map.close()
        os.close(old_fd)
        try:
            self._fsync_dir()
        except OSError as exc:
            # The rename may not be durable: a machine crash could bring back the
            # old log, without the events appended from now on.
            self._fail_locked(f"fsync of the log's directory failed: {exc}", fsync_failed=True)
            raise LogUnavailable(self._refusal()) from exc
        crash_hook("log-renamed")

    def _write_atomically(self, path: str, data: bytes, what: str) -> None:
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
            self._fsync(fd)
        finally:
            os.close(fd)
        crash_hook(f"{what}-written")
        os.rename(tmp, path)
        self._fsync_dir()
        crash_hook(f"{what}-renamed")

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def load_snapshot(self) -> SnapshotRecord | None:
        """The compaction snapshot, verified; None if there is none."""
        try:
            with open(self._snapshot_path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        return fmt.decode_snapshot(data, self._snapshot_path)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Fsync everything, stop the fsync thread, give back the preallocated
        room (truncate the file to its logical end) and release the file.
        Idempotent. Raises LogUnavailable if the final fsync fails, or if an
        earlier fsync failed and events are not known to be durable (the file
        is released anyway)."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._refusing = True  # refuse new appends from here on
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._io_lock:
            try:
                if not self._fsync_failed:
                    with self._lock:
                        self._unmap()
                    try:
                        os.ftruncate(self._fd, self._size)
                    except OSError as exc:  # harmless: zeros after the end read as a clean end
                        logger.warning(
                            "transaction log %s: cannot truncate to %d bytes: %s",
                            self._path,
                            self._size,
                            exc,
                        )
                    self._fsync_locked()  # the records and the new size
            finally:
                self._release()
            unsynced = self._last_seq - self._synced_seq
            if self._failure is not None and unsynced > 0:
                if self._ack_on_append:
                    what = (
                        f"{unsynced} acknowledged events were never fsynced: they survive "
                        "this process but a machine crash may lose them"
                    )
                else:
                    what = (
                        f"{unsynced} events taken before the failure may not be durable "
                        "(their writers were refused)"
                    )
                raise LogUnavailable(f"{self._refusal()}; {what}")

    def _unmap(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def _release(self) -> None:
        """Unmap and close the file (also releases the flock)."""
        self._unmap()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileTransactionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileTransactionLog({self._path!r}, fsync={self._policy.value})"
