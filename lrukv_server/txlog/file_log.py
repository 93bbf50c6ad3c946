"""FileTransactionLog: the embedded default backend (format in ``file_format``).

Write path
----------
``append`` encodes the record into an in-memory buffer under a short lock and
returns its seq. ``sync(seq)`` makes it durable per the policy: it takes the I/O
lock, writes everything buffered with one ``write`` (so concurrent writers share
it), and under ``always`` fsyncs once for all of them (group commit). Every
policy writes before ``sync`` returns, so a killed process loses nothing it
acknowledged; see :class:`~lrukv_server.txlog.config.FsyncPolicy` for machine
crashes. Under ``interval`` a background thread also writes and fsyncs on its
period.

Failures
--------
A failed ``write`` or ``fsync`` marks the log failed for good: every later
``append`` and ``sync`` raises LogUnavailable, and ``health()`` says why. After a
failed fsync the kernel may have dropped the dirty pages, so retrying could
report success for data that is gone (PostgreSQL's "fsyncgate"); only a restart,
which re-reads and re-verifies the file, brings the log back. Events whose
``sync`` raised were not acknowledged; they may or may not be in the file.

Files: ``<path>`` (the log), ``<path>.snapshot`` (compaction), and temporary
``<path>.*.tmp`` files that a crash may leave and the next open deletes. An
exclusive ``flock`` keeps a second process from opening the same log.
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

__all__ = ["FileOpenReport", "FileTransactionLog"]

logger = logging.getLogger("lrukv.txlog")

# A standalone caller that appends without syncing still has its buffer written
# out once it passes this size, so memory stays bounded.
_PENDING_LIMIT = 4 << 20
_COPY_CHUNK = 4 << 20


def _no_crash(point: str) -> None:
    """Default crash hook: crash-point tests replace it to die at *point*."""


# Called with a name at each step of compaction; tests set it to ``os._exit`` at one.
crash_hook: Callable[[str], None] = _no_crash


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

        Raises LogOpenError (cannot create, or in use by another process),
        CorruptLog / LogSequenceError (damage that is not a torn tail).
        ``fsync_func`` exists so tests can make fsync fail.
        """
        self._path = os.path.abspath(os.fspath(path))
        self._snapshot_path = self._path + ".snapshot"
        self._dir = os.path.dirname(self._path)
        self._policy = fsync
        self._interval = fsync_interval_ms / 1000.0
        self._fsync = fsync_func
        # always: buffer, and let sync() write and fsync for all waiting writers at
        # once (group commit). interval/never: write in append (see there).
        self._direct = fsync is not FsyncPolicy.ALWAYS
        self._lock = threading.Lock()  # append state; never held while doing I/O
        self._io_lock = threading.Lock()  # the fd, writes and fsyncs; taken before _lock
        self._compact_lock = threading.Lock()
        self._sync_cond = threading.Condition(threading.Lock())  # group commit: one leader
        self._syncing = False
        self._pending = bytearray()
        self._failure: str | None = None
        self._closed = False
        self._generation = 0
        self._fd = -1
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
            # O_APPEND: every write lands at the end, whatever the file position.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LogOpenError(f"transaction log {self._path}: cannot open: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LogOpenError(
                f"transaction log {self._path} is in use by another process"
            ) from None
        try:
            self._load(fd)
        except BaseException:
            os.close(fd)
            raise

    def _load(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        snapshot = self.load_snapshot()
        snapshot_seq = None if snapshot is None else snapshot.seq
        if size == 0:
            os.write(fd, fmt.encode_header(snapshot_seq or 0))
            self._fsync(fd)
            self._fsync_dir()
            size = fmt.FILE_HEADER.size
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
            base = fmt.decode_header(mapped[: fmt.FILE_HEADER.size], self._path)
            with memoryview(mapped) as view:
                result = fmt.scan(view, base, self._path)
        if result.tail is not None:
            os.ftruncate(fd, result.end)
            self._fsync(fd)
            logger.warning("transaction log %s: %s", self._path, result.tail)
        self._fd = fd
        self._base = base
        self._size = result.end
        last_seq = result.last_seq
        self._last_seq = self._written_seq = self._synced_seq = last_seq
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
                self._rewrite_log(snapshot.seq, fmt.FILE_HEADER.size, fmt.FILE_HEADER.size)
                last_seq = snapshot.seq
        self._last_seq = last_seq
        self._last_applied = applied
        self._written_seq = last_seq
        self._synced_seq = last_seq
        self.open_report = FileOpenReport(
            self._path, base, result.records, last_seq, snapshot_seq, result.tail
        )

    # ------------------------------------------------------------------ write

    def append(
        self,
        op: Op,
        key: str,
        value: bytes = b"",
        expires_at: float | None = None,
        applied_index: int | None = None,
    ) -> int:
        """Buffer one event and return its seq; it is durable after ``sync(seq)``.

        Raises LogUnavailable if the log failed or is closed, AlreadyApplied for
        an applied_index not after the last. Cost: O(len(key) + len(value)).
        """
        if len(self._pending) >= _PENDING_LIMIT:
            self._write_out()  # written before this event is taken: a failure refuses it
        try:
            encoded = key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("key is not valid UTF-8") from None
        flags = (0 if expires_at is None else fmt.FLAG_EXPIRES) | (
            0 if applied_index is None else fmt.FLAG_APPLIED
        )
        with self._lock:
            if self._failure is not None or self._closed:
                raise LogUnavailable(self._refusal())
            if applied_index is not None:
                last = self._last_applied
                if last is not None and applied_index <= last:
                    raise AlreadyApplied(
                        f"applied_index {applied_index} is not after {last}: already applied"
                    )
            seq = self._last_seq + 1
            head = fmt.BODY.pack(
                seq,
                op,
                flags,
                0,
                len(encoded),
                len(value),
                expires_at or 0.0,
                applied_index or 0,
            )
            prefix = fmt.PREFIX.pack(
                fmt.BODY.size + len(encoded) + len(value),
                zlib.crc32(value, zlib.crc32(encoded, zlib.crc32(head))),
            )
            if self._direct:
                # interval/never: hand the record to the OS now, under this lock, so
                # sync() has nothing left to do and a failed write refuses this event.
                self._write_direct((prefix, head, encoded, value))
                self._written_seq = seq
            else:
                pending = self._pending
                pending += prefix
                pending += head
                pending += encoded
                pending += value
            self._last_seq = seq
            if applied_index is not None:
                self._last_applied = applied_index
        return seq

    def _write_direct(self, parts: tuple[bytes, bytes, bytes, bytes]) -> None:
        """writev the record (``_lock`` held); on error fail the log and raise."""
        try:
            total = sum(len(part) for part in parts)
            written = os.writev(self._fd, parts)
            if written < total:  # a short write: finish it (rare on regular files)
                view = memoryview(b"".join(parts))[written:]
                while view:
                    view = view[os.write(self._fd, view) :]
        except OSError as exc:
            if self._failure is None:
                self._failure = f"write failed: {exc}"
                logger.error(
                    "transaction log %s: %s; refusing writes until restart",
                    self._path,
                    self._failure,
                )
            raise LogUnavailable(self._refusal()) from exc
        self._size += total

    def sync(self, seq: int) -> None:
        """Return once event *seq* (and all before it) is written, and fsynced under
        ``always``. Concurrent callers share one write and one fsync: one of them
        leads, the others wait on a condition (not on the I/O lock, which the
        leader could re-take before they wake) and return when it covered them."""
        if seq <= self._durable_seq():
            return
        with self._sync_cond:
            while True:
                if seq <= self._durable_seq():
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
                self._write_pending_locked()
                if self._policy is FsyncPolicy.ALWAYS:
                    self._fsync_locked()
        finally:
            with self._sync_cond:
                self._syncing = False
                self._sync_cond.notify_all()

    def flush(self) -> None:
        """Write everything buffered and fsync it, whatever the policy."""
        with self._io_lock:
            if self._failure is not None:
                raise LogUnavailable(self._refusal())
            if self._fd < 0:
                return
            self._write_pending_locked()
            if self._synced_seq < self._written_seq:
                self._fsync_locked()

    def _durable_seq(self) -> int:
        return self._synced_seq if self._policy is FsyncPolicy.ALWAYS else self._written_seq

    def _write_out(self) -> None:
        with self._io_lock:
            if self._failure is None and self._fd >= 0:
                self._write_pending_locked()

    def _write_pending_locked(self) -> None:
        """Write the buffer with the I/O lock held; on error fail the log and raise."""
        with self._lock:
            data = self._pending
            upto = self._last_seq
            if not data:
                self._written_seq = max(self._written_seq, upto)
                return
            self._pending = bytearray()
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._fail(f"write failed: {exc}")
            raise LogUnavailable(self._refusal()) from exc
        self._size += len(data)
        self._written_seq = upto

    def _fsync_locked(self) -> None:
        upto = self._written_seq
        try:
            self._fsync(self._fd)
        except OSError as exc:
            self._fail(f"fsync failed: {exc}")
            raise LogUnavailable(self._refusal()) from exc
        self._synced_seq = upto

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = reason
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
                if self._failure is not None or self._fd < 0:
                    return
                try:
                    self._write_pending_locked()
                    if self._synced_seq < self._written_seq:
                        self._fsync_locked()
                except LogUnavailable:
                    return  # recorded by _fail; health reports it

    # ------------------------------------------------------------------- read

    def replay(self, from_seq: int = 1) -> Iterator[LogEvent]:
        """Yield the events with ``seq >= from_seq`` appended before this call.

        Raises ValueError if *from_seq* falls in the part replaced by the snapshot
        (load it with ``load_snapshot`` and replay after its seq).
        """
        with self._io_lock:
            if self._fd < 0:
                raise LogUnavailable(self._refusal())
            if self._failure is None:
                self._write_pending_locked()
            if from_seq <= self._base:
                raise ValueError(
                    f"events up to seq {self._base} were compacted into the snapshot; "
                    f"replay from seq {self._base + 1} or later"
                )
            size = self._size
            mapped = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)
        return self._iter_mapped(mapped, size, from_seq)

    def _iter_mapped(self, mapped: mmap.mmap, size: int, from_seq: int) -> Iterator[LogEvent]:
        try:
            yield from fmt.iter_events(mapped, fmt.FILE_HEADER.size, size, from_seq, self._path)
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
    def policy(self) -> FsyncPolicy:
        return self._policy

    def health(self) -> LogHealth:
        """ok unless a write or fsync failed or the log is closed; ``at_risk`` is
        the number of events not yet fsynced (lost by a machine crash now)."""
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
        # The I/O lock too: a buffer being written out by sync() has already left
        # _pending but is not yet counted in _size, and the mark must not fall
        # inside it (that made the compacted log repeat a record).
        with self._io_lock, self._lock:
            return _Mark(
                self._last_seq,
                self._size + len(self._pending),
                self._last_applied,
                self._generation,
            )

    def compact(self, mark: object, blob: bytes) -> None:
        """Write *blob* as the snapshot at *mark*, then start a log holding only
        the events after it.

        Crash safety, step by step (each file is written to a temporary name,
        fsynced, renamed into place, and the directory fsynced):

        1. snapshot written and renamed: recovery loads it and skips the old
           log's events up to its seq; before the rename, the old snapshot (or
           none) and the full old log are still there.
        2. the new log (header base = mark seq, then the old log's bytes after
           the mark) is renamed over the old one: recovery reads the snapshot and
           the new log. A rename is atomic, so it sees one log or the other.
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
                self._write_pending_locked()
                with self._lock:  # under interval/never, appends write to the fd: hold them
                    self._rewrite_log(mark.seq, mark.offset, self._size)
            logger.info(
                "transaction log %s compacted at seq %d (%d snapshot bytes)",
                self._path,
                mark.seq,
                len(blob),
            )

    def _rewrite_log(self, base_seq: int, start: int, stop: int) -> None:
        """Replace the log by a header with *base_seq* and the bytes [start, stop)
        of the current one; switch to it. I/O lock held (or during open)."""
        tmp = self._path + ".compact.tmp"
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        new_fd = os.open(tmp, flags, 0o644)
        try:
            fcntl.flock(new_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(new_fd, fmt.encode_header(base_seq))
            offset = start
            while offset < stop:
                chunk = os.pread(self._fd, min(_COPY_CHUNK, stop - offset), offset)
                if not chunk:
                    raise OSError(f"log shrank while compacting (at byte {offset})")
                os.write(new_fd, chunk)
                offset += len(chunk)
            self._fsync(new_fd)
            crash_hook("log-written")
            os.rename(tmp, self._path)
            self._fsync_dir()
            crash_hook("log-renamed")
        except BaseException:
            os.close(new_fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.close(self._fd)
        self._fd = new_fd
        self._base = base_seq
        self._size = fmt.FILE_HEADER.size + (stop - start)
        self._synced_seq = self._written_seq = max(self._written_seq, self._synced_seq)
        self._generation += 1

    def _write_atomically(self, path: str, data: bytes, what: str) -> None:
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
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
        """Write and fsync everything, stop the fsync thread, release the file.
        Idempotent. Raises LogUnavailable if the final write or fsync fails (the
        file is released anyway)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # refuse new appends from here on
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._io_lock:
            try:
                if self._failure is None:
                    self._write_pending_locked()
                    if self._synced_seq < self._written_seq:
                        self._fsync_locked()
            finally:
                os.close(self._fd)  # also releases the flock
                self._fd = -1
            if self._failure is not None and self._last_seq > self._synced_seq:
                raise LogUnavailable(
                    f"{self._refusal()}; {self._last_seq - self._synced_seq} events taken "
                    "before the failure may not be durable (their writers were refused)"
                )

    def __enter__(self) -> FileTransactionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileTransactionLog({self._path!r}, fsync={self._policy.value})"
