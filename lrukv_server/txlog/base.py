"""The TransactionLog interface, its event type and its errors.

A log records every acknowledged PUT and DELETE under a strictly increasing,
contiguous sequence number, and replays them at start so a restarted node comes
back with what it acknowledged. In a cluster it also records the Raft index of
each applied entry (``applied_index``) so a restart never applies one twice.

Contract
--------
* ``append`` returns only after the event is handed to the backend; it raises
  ``lrukv_server.errors.LogUnavailable`` when the log cannot take it. Callers
  then refuse the write: never acknowledge an event the log did not take.
* ``sync(seq)`` blocks until every event up to *seq* is durable per the
  backend's policy (see each backend), raising LogUnavailable if that fails or
  takes longer than the backend's bound. Only after ``sync`` returns may a write
  be acknowledged.
* ``replay`` yields the events appended before the call, in sequence order, and
  stops with :class:`CorruptLog` at a corrupt record or a sequence gap: it never
  guesses.
* ``health()`` never blocks on I/O; errors surface there and in exceptions.
* Every method is safe to call from many threads.

Errors of this package::

    TxLogError
    ├── LogOpenError      the log cannot be opened (unreachable PostgreSQL, in use…): one line
    ├── CorruptLog        a record in the middle is damaged; carries where (offset, seq)
    │   └── LogSequenceError   a gap or reordering in the sequence numbers
    └── AlreadyApplied    an applied_index not after the last one: it would double-apply
    (and lrukv_server.errors.LogUnavailable, raised by append/sync when writes are refused)
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "AlreadyApplied",
    "CompactableLog",
    "CorruptLog",
    "LogEvent",
    "LogHealth",
    "LogOpenError",
    "LogSequenceError",
    "Op",
    "SnapshotRecord",
    "TransactionLog",
    "TxLogError",
]


class Op(enum.IntEnum):
    """Event kinds; the numbers are on disk and in PostgreSQL, never renumber."""

    PUT = 1
    DELETE = 2
    CONFIG = 3  # the store's geometry, first in a new log; value = an encoded fsm Config


class LogEvent(NamedTuple):
    """One recorded write. A NamedTuple (not a dataclass) because replay creates
    millions of them and a tuple is built several times faster."""

    seq: int
    op: Op
    key: str
    value: bytes = b""
    expires_at: float | None = None  # absolute, as the store keeps it
    applied_index: int | None = None  # the Raft index, in a cluster


@dataclass(frozen=True, slots=True)
class LogHealth:
    """``ok`` False means writes are refused; ``detail`` says why in one line.
    ``at_risk`` counts events taken by the log but not yet durable against a
    machine crash (appended, not yet fsynced or committed)."""

    ok: bool
    detail: str = "ok"
    at_risk: int = 0


@dataclass(frozen=True, slots=True)
class LogCounters:
    """A transaction log's counters since the server started (read by metrics).

    ``appends``: events recorded; ``syncs``: fsyncs (file) or commits
    (PostgreSQL); ``errors``: writes refused or not made durable (each one a
    write the client was told failed); ``queue_depth``: events taken but not yet
    durable (LogHealth.at_risk); ``last_seq``: the newest event's sequence.
    """

    appends: int
    syncs: int
    errors: int
    queue_depth: int
    last_seq: int
    healthy: bool


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A compaction snapshot: the store as of event ``seq`` in the core's
    snapshot format (``lrukv.snapshot``)."""

    seq: int
    applied_index: int | None
    blob: bytes


class TxLogError(Exception):
    """Base class of the transaction log's own errors."""


class LogOpenError(TxLogError):
    """The log cannot be opened. The message is one line an operator can act on;
    the server prints it and exits rather than run without its log."""


class CorruptLog(TxLogError):
    """A damaged record that is not a torn tail (valid records follow it), or an
    unreadable snapshot. Replay stops here; nothing is guessed.

    ``where`` names the file or table, ``offset`` the byte offset of the bad
    record (None for PostgreSQL), ``seq`` the sequence number expected there.
    """

    def __init__(
        self, message: str, *, where: str, offset: int | None = None, seq: int | None = None
    ) -> None:
        super().__init__(message)
        self.where = where
        self.offset = offset
        self.seq = seq


class LogSequenceError(CorruptLog):
    """Sequence numbers have a gap or go backwards."""


class AlreadyApplied(TxLogError, ValueError):
    """``append`` got an ``applied_index`` not greater than the last one recorded:
    recording it would apply a Raft entry twice on restart."""


@runtime_checkable
class TransactionLog(Protocol):
    """What a backend offers. See the module docstring for the contract."""

    def append(
        self,
        op: Op,
        key: str,
        value: bytes = b"",
        expires_at: float | None = None,
        applied_index: int | None = None,
    ) -> int:
        """Record one event; return its sequence number (``last_seq + 1``)."""
        ...

    def sync(self, seq: int) -> None:
        """Block until events up to *seq* are durable per the backend's policy."""
        ...

    def replay(self, from_seq: int = 1) -> Iterator[LogEvent]:
        """Yield events with ``seq >= from_seq`` in order (those appended before the call)."""
        ...

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event, 0 for an empty log."""
        ...

    @property
    def last_applied_index(self) -> int | None:
        """The largest ``applied_index`` recorded (snapshot included), or None."""
        ...

    def flush(self) -> None:
        """Write out everything taken and make it durable, whatever the policy."""
        ...

    def health(self) -> LogHealth:
        """Current state, without blocking on I/O."""
        ...

    @property
    def syncs(self) -> int:
        """How many times this log made events durable since it was opened: fsyncs
        of the log file, or commits to PostgreSQL (for metrics)."""
        ...

    def close(self) -> None:
        """Flush and release the log; idempotent. Later appends raise LogUnavailable."""
        ...


@runtime_checkable
class CompactableLog(TransactionLog, Protocol):
    """A log that can replace its prefix by a store snapshot, so start-up time
    does not grow without bound. Both backends implement it.

    Compaction is two calls. ``compaction_mark()`` must be called while no
    ``append`` can run (the caller holds its write lock) and at the same moment
    the caller captures the store's snapshot, so the mark and the snapshot
    describe the same state; ``compact()`` then runs without that lock.
    """

    def compaction_mark(self) -> object:
        """Remember where the log is now (an opaque token for ``compact``)."""
        ...

    def compact(self, mark: object, blob: bytes) -> None:
        """Store *blob* as the snapshot as of *mark* and drop the events it covers.
        A crash at any point leaves a log that recovers to the same state."""
        ...

    def load_snapshot(self) -> SnapshotRecord | None:
        """The newest compaction snapshot, or None."""
        ...
