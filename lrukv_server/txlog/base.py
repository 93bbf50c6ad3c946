"""The TransactionLog interface (issue #3 owns and may refine it; keep this surface).

A log records every acknowledged PUT and DELETE under a strictly increasing,
contiguous sequence number, and replays them at start so a restarted node comes
back with what it acknowledged. In a cluster it will also record the Raft index
of each applied entry (``applied_index``) so a restart never applies one twice.

Contract
--------
* ``append`` returns only after the event is handed to the backend; it raises
  ``lrukv_server.errors.LogUnavailable`` when the log cannot take it. Callers
  then refuse the write: never acknowledge an event the log did not take.
* ``sync(seq)`` blocks until every event up to *seq* is durable per the fsync
  policy (a no-op under ``never``), raising LogUnavailable if that fails.
* ``replay`` yields events in sequence order and stops with a clear error at a
  corrupt record: it never guesses.
* ``health()`` never blocks on I/O for long; errors surface there and in metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LogEvent", "LogHealth", "Op", "TransactionLog"]


class Op(enum.IntEnum):
    """Event kinds; the numbers are on disk and in PostgreSQL, never renumber."""

    PUT = 1
    DELETE = 2


@dataclass(frozen=True, slots=True)
class LogEvent:
    seq: int
    op: Op
    key: str
    value: bytes = b""
    expires_at: float | None = None  # absolute, as the store keeps it
    applied_index: int | None = None  # the Raft index, in a cluster


@dataclass(frozen=True, slots=True)
class LogHealth:
    ok: bool
    detail: str = "ok"
    at_risk: int = 0  # events buffered but not yet durable (async modes only)


class TransactionLog(Protocol):
    def append(
        self,
        op: Op,
        key: str,
        value: bytes = b"",
        expires_at: float | None = None,
        applied_index: int | None = None,
    ) -> int:
        """Record one event; return its sequence number."""
        ...

    def sync(self, seq: int) -> None:
        """Block until events up to *seq* are durable per the fsync policy."""
        ...

    def replay(self, from_seq: int = 1) -> Iterator[LogEvent]:
        """Yield events with ``seq >= from_seq`` in order."""
        ...

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event, 0 for an empty log."""
        ...

    def flush(self) -> None:
        """Write out everything buffered and make it durable."""
        ...

    def health(self) -> LogHealth:
        """Current state, without blocking on I/O."""
        ...

    def close(self) -> None:
        """Flush and release the log; idempotent."""
        ...
