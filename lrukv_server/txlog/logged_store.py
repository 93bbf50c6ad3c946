"""LoggedStore: a StoreFSM whose every acknowledged command is in a transaction log.

A single node's service hands each write, as a command (``lrukv_server.fsm``),
to ``submit``; with the log off it uses a ``DirectWriter`` instead. The
ShardedMap-style methods (``put``, ``pop``, ``get``…) keep their signatures, so
tests and tools can use a LoggedStore like a map.

A write, step by step, and why in this order
--------------------------------------------
1. **Validate** with ``ShardedMap.check_put`` / ``check_key``. Bad input raises
   here, before anything is logged: the log never holds a write the store
   would reject, so replay never fails on it.
2. **Under one write lock, append to the log, then apply through the FSM.** One lock
   for both makes the log order the apply order for every key: two writers of
   the same key can never be logged in one order and applied in the other,
   which would make the replayed value differ from the served one. If
   ``append`` refuses (LogUnavailable), the map is not touched and the error
   goes to the caller: the write was not done.
3. **Release the lock, then ``sync(seq)``**: wait until the event is durable per
   the log's policy. Waiting outside the lock lets concurrent writers share
   one fsync or one commit (group commit) instead of queueing behind each
   other's.
4. **Return**: the write is acknowledged only now.

Failure cases
-------------
* ``append`` refuses: nothing applied, LogUnavailable raised. Not acknowledged.
* ``sync`` fails or times out: the write *was* applied to the map in step 2
  (other readers may already see it) but LogUnavailable is raised, so it is not
  acknowledged; whether it survives a restart depends on whether its bytes
  reached the log. This is the usual "a failed request may or may not have
  happened" outcome; what can never happen is an acknowledged write missing
  after a restart. The file log then refuses all further writes until restart;
  the PostgreSQL log refuses them until it has reconnected.
* The map raises after the append (only an ``on_evict`` callback can: the core
  raises it after the put completed): the event stays logged, is synced, and
  the callback's exception is re-raised.
* A crash between append and apply loses nothing acknowledged: the write was
  not acknowledged yet, and replay may re-apply it.

Reads (``get``, ``peek``, ``keys``…) go straight to the map. ``get`` and
``touch`` change recency, which is not logged (see ``recovery``).
Compaction runs in a background thread after ``compact_after_events`` writes:
under the write lock it takes the log's mark and the store's snapshot (so both
describe the same state; writers wait for that copy and encode), then writes
them without the lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator

from lrukv import ShardedMap, Stats
from lrukv_server.errors import LogUnavailable
from lrukv_server.fsm import commands
from lrukv_server.fsm.commands import Batch, Command, Config, Delete, Put
from lrukv_server.fsm.state_machine import StoreFSM
from lrukv_server.txlog.base import (
    CompactableLog,
    LogCounters,
    LogHealth,
    LogOpenError,
    Op,
    TransactionLog,
)
from lrukv_server.txlog.config import TxLogConfig
from lrukv_server.txlog.factory import open_log
from lrukv_server.txlog.locks import WriterLock
from lrukv_server.txlog.recovery import RecoveryReport, recover

__all__ = ["LoggedStore"]

logger = logging.getLogger("lrukv.txlog")


class LoggedStore:
    """A StoreFSM plus a TransactionLog; see the module docstring for the contract.

    Thread-safe. Writes are serialised by one lock held only for the append and
    the apply (microseconds; with the file log, no system call either); syncs
    run in parallel. The log's sequence number of a command's last event is the
    index the state machine applies it at, so ``fsm.last_applied`` equals
    ``log.last_seq`` after every write and after recovery.
    """

    def __init__(
        self,
        store: ShardedMap | StoreFSM,
        log: TransactionLog,
        *,
        compact_after_events: int | None = None,
        recovery: RecoveryReport | None = None,
    ) -> None:
        """Wrap *store* and *log*. The store must already hold the log's state
        (use :meth:`open`, which recovers it)."""
        self._fsm = store if isinstance(store, StoreFSM) else StoreFSM(store)
        self._fsm.start_at(log.last_seq)
        self._map = self._fsm.store
        self._log = log
        self._sync: Callable[[int], None] = log.sync
        # A WriterLock, not a threading.Lock: with many threads putting, a
        # threading.Lock forms lock convoys under the GIL (see ``locks``).
        self._write_lock = WriterLock()
        self._compaction_lock = threading.Lock()  # taken before _write_lock
        self._compact_after = compact_after_events
        self._since_compaction = 0
        self._compactor: threading.Thread | None = None
        self._compaction_error: str | None = None
        self.recovery = recovery
        # For metrics: appends are derived from the sequence (nothing counted per
        # write); errors are counted only on the failure path.
        self._seq_at_open = log.last_seq
        self._write_errors = 0

    @classmethod
    def open(
        cls,
        config: TxLogConfig,
        store: ShardedMap | StoreFSM,
        *,
        data_dir: str | os.PathLike[str],
        node_id: str,
    ) -> LoggedStore:
        """Open the configured log, recover *store* from it and return the pair.

        A new log's first event records the store's geometry (CONFIG), so a
        restart with other shard settings is refused with ConfigMismatch, before
        or after a compaction alike.

        Call before serving the first request. Raises ValueError if the config
        has the log off; LogOpenError (also for a log lost during recovery),
        CorruptLog, LogSequenceError, ReplayError, ConfigMismatch or the core's
        SnapshotError as recovery does. All are TxLogError or ValueError: the
        server prints the message and exits.
        """
        log = open_log(config, data_dir, node_id)
        if log is None:
            raise ValueError("the transaction log is off; use the ShardedMap directly")
        fsm = store if isinstance(store, StoreFSM) else StoreFSM(store)
        try:
            report = recover(fsm, log)
            logged = cls(
                fsm, log, compact_after_events=config.compact_after_events, recovery=report
            )
            if log.last_seq == 0:
                logged.submit(fsm.config)
        except LogUnavailable as exc:
            # Lost right after opening (e.g. PostgreSQL went away): still a failed start.
            with contextlib.suppress(LogUnavailable):
                log.close()
            raise LogOpenError(f"transaction log recovery failed: {exc}") from None
        except BaseException:
            with contextlib.suppress(LogUnavailable):
                log.close()
            raise
        logger.info("%s", report)
        return logged

    # ----------------------------------------------------------------- writes

    def submit(self, command: Command, *, time: float | None = None) -> object:
        """Record *command* in the log, apply it to the state machine, and return
        its result once it is durable per the log's policy.

        PUT, DELETE, CONFIG and batches of them are recorded (TypeError for other
        commands: on a single node reads change recency directly). A DELETE of an
        absent key records nothing and answers None. Raises LogUnavailable when
        the log refuses or fails (then the write is not acknowledged). *time*
        (default: now) is the clock the command is applied at.
        """
        fsm = self._fsm
        now = _time.time() if time is None else time
        error: Exception | None = None
        lock = self._write_lock
        lock.acquire()  # and release(): cheaper than ``with`` on this path
        try:
            if isinstance(command, Delete) and command.key not in self._map:
                return None
            seq = self._record(command)
            try:
                result = fsm.apply_command(command, seq, time=now)
            except Exception as exc:  # an on_evict callback's: the apply itself is done
                error = exc
                result = None
        except LogUnavailable:
            self._write_errors += 1  # under the write lock
            raise
        finally:
            lock.release()
        try:
            self._sync(seq)
        except LogUnavailable:
            self._write_errors += 1  # outside the lock: may rarely undercount under races
            raise
        if error is not None:
            raise error
        self._maybe_compact()
        return result

    def wrap_sync(self, wrapper: Callable[[Callable[[int], None]], Callable[[int], None]]) -> None:
        """Run every write's wait for durability (``log.sync(seq)``) through
        ``wrapper(sync)``: the hook tracing uses to time it, so this package
        imports no telemetry library. Call before the first write."""
        self._sync = wrapper(self._sync)

    def _record(self, command: Command) -> int:
        """Append the events of *command* (write lock held); return the last seq."""
        append = self._log.append
        if isinstance(command, Put):
            seq = append(Op.PUT, command.key, command.value, command.expires_at)
            self._since_compaction += 1
            return seq
        if isinstance(command, Batch):
            if not command.commands:
                raise ValueError("an empty batch records nothing")
            seq = 0
            for inner in command.commands:
                seq = self._record(inner)
            return seq
        if isinstance(command, Delete):
            seq = append(Op.DELETE, command.key)
        elif isinstance(command, Config):
            seq = append(Op.CONFIG, "", commands.encode(command, time=_time.time()))
        else:
            raise TypeError(f"the transaction log does not record {type(command).__name__}")
        self._since_compaction += 1
        return seq

    def put(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        expires_at: float | None = None,
    ) -> None:
        """Store *value* under *key* (``ShardedMap.put`` semantics) and return once
        the write is durable per the log's policy. Raises the core's errors for
        bad input (nothing logged) and LogUnavailable when the log refuses or
        fails (then the write is not acknowledged)."""
        expires = self._map.check_put(key, value, ttl, expires_at=expires_at)
        self.submit(Put(key, value, expires))

    def pop(
        self, key: str, default: bytes | None = None, *, now: float | None = None
    ) -> bytes | None:
        """Remove *key* and return its value, or *default* if absent (nothing is
        logged then). Durable on return, like ``put``. ``now``: as ShardedMap.pop."""
        self._map.check_key(key)
        value = self.submit(Delete(key), time=now)
        return default if value is None else value  # type: ignore[return-value]

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it was present. Durable on return."""
        self._map.check_key(key)
        return self.submit(Delete(key)) is not None

    # ------------------------------------------------------------------ reads

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        """``ShardedMap.get``: the value, made most recently used; or *default*."""
        return self._map.get(key, default)

    def peek(self, key: str, default: bytes | None = None) -> bytes | None:
        """``ShardedMap.peek``: the value without changing recency; or *default*."""
        return self._map.peek(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __len__(self) -> int:
        return len(self._map)

    def keys(self) -> Iterator[str]:
        """``ShardedMap.keys``: holds no lock while the caller consumes it."""
        return self._map.keys()

    def items(self) -> Iterator[tuple[str, bytes]]:
        """``ShardedMap.items``: holds no lock while the caller consumes it."""
        return self._map.items()

    def values(self) -> Iterator[bytes]:
        return self._map.values()

    def expires_at(self, key: str) -> float | None:
        return self._map.expires_at(key)

    def touch(self, keys: Iterable[str], *, now: float | None = None) -> int:
        """``ShardedMap.touch``: changes recency only, which is not logged."""
        return self._map.touch(keys, now=now)

    def check_put(
        self, key: str, value: bytes, ttl: float | None = None, *, expires_at: float | None = None
    ) -> float | None:
        return self._map.check_put(key, value, ttl, expires_at=expires_at)

    def check_key(self, key: str) -> None:
        self._map.check_key(key)

    def stats(self) -> Stats:
        return self._map.stats()

    def snapshot(self) -> bytes:
        return self._map.snapshot()

    @property
    def store(self) -> ShardedMap:
        """The wrapped map. Write to it directly and the write is not logged."""
        return self._map

    @property
    def fsm(self) -> StoreFSM:
        """The state machine the logged commands are applied to."""
        return self._fsm

    @property
    def log(self) -> TransactionLog:
        return self._log

    @property
    def shards(self) -> int:
        return self._map.shards

    @property
    def items_per_shard(self) -> int:
        return self._map.items_per_shard

    @property
    def capacity(self) -> int:
        return self._map.capacity

    # ------------------------------------------------------------- compaction

    def compact(self) -> bool:
        """Snapshot the store into the log and drop the events it covers, now.
        Returns False if the log cannot compact. Raises what the log raises."""
        log = self._log
        if not isinstance(log, CompactableLog):
            return False
        # One compaction at a time: a second mark taken while the first compaction
        # runs would be stale by the time it is used.
        with self._compaction_lock:
            with self._write_lock:
                # Mark and snapshot under the write lock: no event can fall between.
                mark = log.compaction_mark()
                blob = self._map.snapshot()
                self._since_compaction = 0
            log.compact(mark, blob)
        return True

    def _maybe_compact(self) -> None:
        threshold = self._compact_after
        if threshold is None or self._since_compaction < threshold:
            return
        with self._write_lock:
            if self._compactor is not None and self._compactor.is_alive():
                return
            self._since_compaction = 0  # (compact() resets it too; this avoids a second start)
            self._compactor = threading.Thread(
                target=self._compact_in_background, name="lrukv-txlog-compact", daemon=True
            )
            self._compactor.start()

    def _compact_in_background(self) -> None:
        try:
            self.compact()
        except (OSError, LogUnavailable, ValueError) as exc:
            # The log still works (or reports its own failure); compaction will be
            # retried after the next compact_after_events writes.
            self._compaction_error = str(exc)
            logger.error("transaction log compaction failed: %s", exc)
        else:
            self._compaction_error = None

    # ----------------------------------------------------------------- health

    def log_health(self) -> LogHealth:
        """The log's health; a failed compaction is added to the detail."""
        health = self._log.health()
        if self._compaction_error is None:
            return health
        return LogHealth(
            health.ok,
            f"{health.detail}; last compaction failed: {self._compaction_error}",
            health.at_risk,
        )

    def counters(self) -> LogCounters:
        """The log's counters since this store was opened (see LogCounters).
        Cheap: reads a few ints, no I/O and no lock."""
        health = self._log.health()
        last = self._log.last_seq
        return LogCounters(
            appends=last - self._seq_at_open,
            syncs=self._log.syncs,
            errors=self._write_errors,
            queue_depth=health.at_risk,
            last_seq=last,
            healthy=health.ok,
        )

    def close(self) -> None:
        """Finish a running compaction, flush and close the log. Idempotent.
        Later writes raise LogUnavailable; reads keep working."""
        compactor = self._compactor
        if compactor is not None:
            compactor.join()
        self._log.close()

    def __repr__(self) -> str:
        return f"LoggedStore({self._map!r}, {self._log!r})"
