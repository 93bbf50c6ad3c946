"""Recovery: rebuild a ShardedMap from a log's snapshot and the events after it.

Runs before the first request is served (``LoggedStore.open`` calls it). It
never guesses: a damaged snapshot or a corrupt record in the middle of the log
stops it with CorruptLog; only a torn tail, cut when the file log is opened, is
repaired, and the report says so.

What replay reproduces: the contents and the recency order that the logged
writes produce. Reads are not logged, so when the store was full and reads had
changed which key was least recently used, the replayed store may have evicted a
different key than the running one did (an LRU cache may evict any key; the
compaction snapshot, which keeps the true recency order, narrows this to the
events after it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lrukv import ShardedMap
from lrukv_server.txlog.base import CompactableLog, Op, TransactionLog

__all__ = ["RecoveryReport", "recover"]


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What recovery did, for the start-up log line and for health."""

    log: str
    snapshot_seq: int | None
    snapshot_items: int
    puts: int
    deletes: int
    last_seq: int
    last_applied_index: int | None
    tail_repair: str | None  # set when a torn tail was cut at open
    seconds: float

    @property
    def replayed(self) -> int:
        return self.puts + self.deletes

    def __str__(self) -> str:
        snap = (
            "no snapshot"
            if self.snapshot_seq is None
            else f"snapshot at seq {self.snapshot_seq} ({self.snapshot_items} items)"
        )
        text = (
            f"recovered from {self.log}: {snap}, replayed {self.replayed} events "
            f"({self.puts} puts, {self.deletes} deletes) up to seq {self.last_seq} "
            f"in {self.seconds:.2f}s"
        )
        if self.tail_repair:
            text += f"; {self.tail_repair}"
        return text


def recover(store: ShardedMap, log: TransactionLog) -> RecoveryReport:
    """Load the log's snapshot into *store* (replacing its contents; the geometry
    must match, else SnapshotMismatch) and apply every later event in order.

    Raises CorruptLog / LogSequenceError at damage, SnapshotError for a snapshot
    the store cannot take, and the core's InvalidArgument errors (with a note
    naming the seq) for an event the store's current limits no longer accept.
    Cost: O(snapshot + events).
    """
    started = time.perf_counter()
    snapshot = log.load_snapshot() if isinstance(log, CompactableLog) else None
    snapshot_items = 0
    from_seq = 1
    if snapshot is not None:
        store.restore(snapshot.blob)
        snapshot_items = len(store)
        from_seq = snapshot.seq + 1
    puts = deletes = 0
    put = store.put
    pop = store.pop
    seq = from_seq - 1
    try:
        # seq is read by the except clause below, which names the failing event.
        for seq, op, key, value, expires_at, _applied in log.replay(from_seq):  # noqa: B007
            if op is Op.PUT:
                put(key, value, None, expires_at=expires_at)
                puts += 1
            else:
                pop(key)
                deletes += 1
    except ValueError as exc:
        exc.add_note(f"while replaying event seq {seq} of {log!r}")
        raise
    report = getattr(log, "open_report", None)
    tail = getattr(report, "tail", None)
    return RecoveryReport(
        log=repr(log),
        snapshot_seq=None if snapshot is None else snapshot.seq,
        snapshot_items=snapshot_items,
        puts=puts,
        deletes=deletes,
        last_seq=log.last_seq,
        last_applied_index=log.last_applied_index,
        tail_repair=None if tail is None else str(tail),
        seconds=time.perf_counter() - started,
    )
