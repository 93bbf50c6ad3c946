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
from lrukv.errors import InvalidKey, ValueTooLarge
from lrukv_server.fsm import commands
from lrukv_server.fsm.commands import CommandDecodeError, Config, Delete, Put
from lrukv_server.fsm.state_machine import ConfigMismatch, StoreFSM
from lrukv_server.txlog.base import CompactableLog, LogEvent, Op, TransactionLog, TxLogError

__all__ = ["RecoveryReport", "ReplayError", "recover"]


class ReplayError(TxLogError):
    """An event of the log cannot be applied to the store as configured now.
    The message names the log, the event and what to do; nothing is skipped."""

    @classmethod
    def at(cls, event: LogEvent | None, log: TransactionLog, cause: Exception) -> ReplayError:
        if event is None:
            return cls(f"replaying the transaction log {log!r} failed: {cause}")
        what = f"{event.op.name} of key {event.key!r}"
        if event.op is Op.PUT:
            what += f" ({len(event.value)} bytes)"
        if isinstance(cause, ValueTooLarge):
            hint = (
                f"the log holds a value that the current limits refuse; start with "
                f"--max-value-bytes {cause.size} or more (and a large enough --max-bytes), "
                f"as when it was written"
            )
        elif isinstance(cause, InvalidKey):
            hint = "start with the --max-key-bytes the log was written with"
        else:
            hint = "start with the settings the log was written with, or move the log away"
        return cls(
            f"transaction log replay failed at event seq {event.seq} ({what}) of {log!r}: "
            f"{cause}; {hint}"
        )


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


def recover(target: ShardedMap | StoreFSM, log: TransactionLog) -> RecoveryReport:
    """Load the log's snapshot into the state machine (replacing its contents;
    the geometry must match, else ConfigMismatch) and apply every later event in
    order through ``StoreFSM.apply_command``, the path every write takes, at the
    event's sequence number as its index.

    Raises CorruptLog / LogSequenceError at damage, SnapshotError for a snapshot
    the store cannot take, ConfigMismatch when the log's CONFIG event or
    snapshot records other shard settings, and ReplayError (naming the event
    and what to do) for an event the store's current limits no longer accept.
    Cost: O(snapshot + events).
    """
    started = time.perf_counter()
    fsm = target if isinstance(target, StoreFSM) else StoreFSM(target)
    where = f"the transaction log {log!r}"
    snapshot = log.load_snapshot() if isinstance(log, CompactableLog) else None
    snapshot_items = 0
    from_seq = 1
    if snapshot is not None:
        fsm.restore_store(snapshot.blob, where=where, last_applied=snapshot.seq)
        snapshot_items = len(fsm.store)
        from_seq = snapshot.seq + 1
    else:
        fsm.start_at(0)
    puts = deletes = 0
    apply = fsm.apply_command
    now = time.time()  # a PUT or DELETE lands the same whatever the clock says
    event: LogEvent | None = None
    try:
        for event in log.replay(from_seq):
            op = event.op
            if op is Op.PUT:
                apply(Put(event.key, event.value, event.expires_at), event.seq, time=now)
                puts += 1
            elif op is Op.DELETE:
                apply(Delete(event.key), event.seq, time=now)
                deletes += 1
            else:
                config = commands.decode(event.value).command
                if not isinstance(config, Config):
                    raise CommandDecodeError(f"a CONFIG event holds {config!r}")
                fsm.check_config(config, where=where)
                apply(config, event.seq, time=now)
    except ConfigMismatch:
        raise
    except ValueError as exc:
        raise ReplayError.at(event, log, exc) from exc
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
