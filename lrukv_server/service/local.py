"""LocalService: the KVService of a single node, over its own state machine.

Every write is a command (``lrukv_server.fsm``) handed to a ``CommandWriter``:
the transaction log's ``LoggedStore`` (which records it, applies it to the
StoreFSM and waits for durability) when the log is on, or a
:class:`DirectWriter` (apply only) when it is off. This is the same path a
cluster takes, where the writer proposes the command through Raft instead.

On a single node there is nobody to lag behind, so every consistency level is
served from the local store, and the node reports itself as the leader. Reads
move recency directly (a cluster records them for a replicated TOUCH instead).

Health is what the Agent registers: one named check per part (store, txlog…).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from lrukv.errors import KeyNotFound
from lrukv_server.errors import InvalidRequest, Unavailable
from lrukv_server.fsm import Command, Delete, Put, StoreFSM
from lrukv_server.service.base import (
    ClusterStatus,
    Consistency,
    Health,
    MemberStatus,
    ServerInfo,
    StoreStats,
)
from lrukv_server.service.batch import (
    GetResult,
    PutOp,
    WriteOp,
    WriteResult,
    bounded_answer,
    prepare_writes,
    write_results,
)
from lrukv_server.service.introspect import remaining_ttl, store_stats
from lrukv_server.txlog.locks import WriterLock

__all__ = ["CommandWriter", "DirectWriter", "HealthCheck", "LocalService"]

_CLOSED_MESSAGE = "the server is shutting down"
_NOT_A_CLUSTER = "this node is not in a cluster: start it with --raft-addr to change membership"

HealthCheck = Callable[[], str]
"""Returns ``"ok"`` (or ``"off"`` for a part that is not enabled) when healthy,
else a one-line reason; a node is ready only when every check is healthy."""

_HEALTHY = frozenset({"ok", "off"})


class CommandWriter(Protocol):
    """Where a node's writes go: record (or replicate), then apply."""

    def submit(self, command: Command) -> object:
        """Apply *command* durably; return the state machine's result."""
        ...


class DirectWriter:
    """Applies commands to a StoreFSM with nothing recorded (transaction log off).

    One lock serialises the applies, as the state machine's contract asks
    (a WriterLock: a threading.Lock convoys under the GIL, see ``txlog.locks``).
    """

    def __init__(self, fsm: StoreFSM) -> None:
        self._fsm = fsm
        self._lock = WriterLock()

    def submit(self, command: Command) -> object:
        fsm = self._fsm
        lock = self._lock
        lock.acquire()
        try:
            return fsm.apply_command(command, fsm.last_applied + 1, time=time.time())
        finally:
            lock.release()


class LocalService:
    """KVService over one local state machine.

    Thread safety: the store and the writer are thread-safe; this class adds
    only an immutable node description and a ``closed`` flag, which is a plain
    attribute read on every call (a request racing with ``close()`` either runs
    before it or gets Unavailable). Closing releases nothing: the Agent owns the
    store and its log and closes them after the service.

    >>> import lrukv
    >>> svc = LocalService(StoreFSM(lrukv.ShardedMap()), node=ServerInfo("n1", "h:1", "h:2", True))
    >>> svc.put("k", b"v"); svc.get("k")
    b'v'
    >>> svc.close(); svc.get("k")
    Traceback (most recent call last):
    ...
    lrukv_server.errors.Unavailable: the server is shutting down
    """

    def __init__(
        self,
        fsm: StoreFSM,
        *,
        node: ServerInfo,
        writer: CommandWriter | None = None,
        checks: Mapping[str, HealthCheck] | None = None,
    ) -> None:
        self._fsm = fsm
        self._store = fsm.store
        self._writer = DirectWriter(fsm) if writer is None else writer
        self._node = node
        self._checks = dict(checks or {})
        self._closed = False

    @property
    def fsm(self) -> StoreFSM:
        """The state machine served (for the agent's start-up report and for tests)."""
        return self._fsm

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        # Validate before the command exists: the log never holds a write the
        # store would refuse, and the expiry becomes an absolute time.
        expires = self._store.check_put(key, value, ttl)
        self._writer.submit(Put(key, value, expires))

    def get(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> bytes:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        value = self._store.get(key)
        if value is None:
            raise KeyNotFound(key)
        return value

    def delete(self, key: str) -> bool:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        self._store.check_key(key)
        return self._writer.submit(Delete(key)) is not None

    def get_many(
        self,
        keys: Sequence[str],
        *,
        consistency: Consistency = Consistency.DEFAULT,
        max_bytes: int | None = None,
    ) -> list[GetResult]:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        store = self._store
        # get moves each key as it reads it, the cheapest way to make the recency of
        # that sequence of gets; near the answer's limit keys are peeked instead and
        # moved afterwards, in order (the same recency), so a key left out of the
        # answer is not moved. peek counts hits and misses as get does.
        limit = store.max_value_bytes
        results, peeked = bounded_answer(
            keys,
            store.peek,
            max_bytes,
            get=store.get,
            value_bound=limit if limit is not None else 1 << 62,
        )
        if peeked:
            store.touch(peeked)
        return results

    def write_many(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        store = self._store

        def validate(op: WriteOp) -> Command:
            if isinstance(op, PutOp):
                return Put(op.key, op.value, store.check_put(op.key, op.value, op.ttl))
            store.check_key(op.key)
            return Delete(op.key)

        batch, positions, results = prepare_writes(ops, validate, atomic=atomic)
        if batch is None:
            return [r for r in results if r is not None]
        return write_results(results, positions, ops, self._writer.submit(batch))

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        # ShardedMap.keys() copies one shard at a time under its lock and yields
        # with no lock held, so an abandoned iterator blocks no writer.
        return self._store.keys()

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        return self._store.items()

    def servers(self) -> list[ServerInfo]:
        return [self._node]

    def cluster_status(self, *, digest: bool = False) -> ClusterStatus:
        node = self._node
        me = MemberStatus(node.id, "", node.http_addr, node.rpc_addr, reachable=True)
        index, sha = self._fsm.digest() if digest else (self._fsm.last_applied, None)
        return ClusterStatus(node.id, "leader", 0, index, index, me, (me,), sha)

    def add_member(self, raft_addr: str) -> None:
        raise InvalidRequest(_NOT_A_CLUSTER)

    def remove_member(self, raft_addr: str) -> None:
        raise InvalidRequest(_NOT_A_CLUSTER)

    def stats(self) -> StoreStats:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        return store_stats(self._store, max_value_bytes=self._store.max_value_bytes)

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        return remaining_ttl(self._store, key)

    def health(self) -> Health:
        if self._closed:
            return Health(live=False, ready=False, checks={"service": "closed"})
        checks = {"store": "ok"}
        for name, check in self._checks.items():
            checks[name] = check()
        return Health(live=True, ready=all(v in _HEALTHY for v in checks.values()), checks=checks)

    def close(self) -> None:
        """Refuse further calls. Idempotent. The store and its log belong to the Agent."""
        self._closed = True
