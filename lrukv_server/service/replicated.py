"""ReplicatedService: the KVService of a cluster member.

Writes become commands (``lrukv_server.fsm``) proposed through Raft; every
replica's StoreFSM applies them in log order. A write may arrive at any node:
PySyncObj forwards a follower's proposal to the leader, and the answer comes
back once the entry is applied on this node too (so a client reads its own
write on the node it wrote through). Where no leader can be reached the
client gets NotLeader with the leader's API addresses (a 307 / FAILED_PRECONDITION
it can follow) or Unavailable.

Reads never change state on their own (DESIGN.md, "Replication"): they peek,
and record the keys they found; a background flusher proposes one TOUCH
command with them every few milliseconds, so recency is replicated and every
replica evicts the same keys at the same index. Consistency levels:

* ``stale``: this node's state, whatever its role.
* ``default``: the leader answers from its state at once; a follower first
  passes a read barrier (below), so it never answers older than the leader.
* ``linearizable``: every node passes a read barrier first: a no-op committed
  through the log after the read began and applied here, so the answer
  reflects every write acknowledged before the read started.

The same upkeep thread proposes the cluster's CONFIG (once, from the first
leader) and this node's MEMBER entry (its API addresses), which is how every
node can name the leader's HTTP and gRPC addresses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, TypeVar

from lrukv.errors import KeyNotFound, ValueTooLarge
from lrukv_server.errors import InvalidRequest, NotLeader, Timeout, Unavailable
from lrukv_server.fsm import (
    Command,
    ConfigMismatch,
    Delete,
    Forget,
    Member,
    Put,
    StoreFSM,
    Touch,
    commands,
)
from lrukv_server.raft import RaftStatus
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
from lrukv_server.service.local import HealthCheck

__all__ = ["Consensus", "ReplicatedService", "ReplicaStateMachine", "TouchRecorder"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_CLOSED_MESSAGE = "the server is shutting down"
_HEALTHY = frozenset({"ok", "off"})


class Consensus(Protocol):
    """What the service needs from Raft (``lrukv_server.raft.RaftNode`` has it)."""

    @property
    def self_addr(self) -> str: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_addr(self) -> str | None: ...

    def propose(self, command: bytes, timeout: float) -> Future[object]: ...

    def read_barrier(self, timeout: float) -> Future[int]: ...

    def wait_ready(self, timeout: float) -> bool: ...

    def add_member(self, addr: str, timeout: float) -> Future[None]: ...

    def remove_member(self, addr: str, timeout: float) -> Future[None]: ...

    def status(self, timeout: float = 2.0) -> RaftStatus: ...


class ReplicaStateMachine:
    """The StoreFSM as Raft drives it: a command this replica cannot apply while
    the others can (only a CONFIG with other shard settings) stops the replica
    instead of letting it diverge; ``fatal`` then says why and every request is
    refused with that message."""

    def __init__(self, fsm: StoreFSM) -> None:
        self._fsm = fsm
        self.fatal: str | None = None

    def apply(self, command: bytes, index: int) -> object:
        if self.fatal is not None:
            return None
        try:
            return self._fsm.apply(command, index)
        except ConfigMismatch as exc:
            self.fatal = f"refused by the cluster: {exc}"
            log.critical("%s", self.fatal)
            return None

    def snapshot(self) -> bytes:
        return self._fsm.snapshot()

    def restore(self, data: bytes) -> None:
        try:
            self._fsm.restore(data)
        except ConfigMismatch as exc:
            self.fatal = f"refused by the cluster: {exc}"
            log.critical("%s", self.fatal)


class TouchRecorder:
    """Keys read on this node, waiting to be replicated as one TOUCH.

    ``record`` is one list append (atomic under the GIL, no lock on the read
    path). ``drain`` takes everything recorded so far, keeps the last read of
    each key (so the batch moves keys in the order they were last read) and
    caps the batch: recency is best effort, and every replica applies the same
    TOUCH, so a dropped read never makes replicas differ.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._keys: list[str] = []
        self._max_keys = max_keys

    def record(self, key: str) -> None:
        self._keys.append(key)

    def drain(self) -> tuple[str, ...]:
        keys, self._keys = self._keys, []
        if not keys:
            return ()
        ordered = dict.fromkeys(reversed(keys))  # last read first, once each
        return tuple(reversed(list(ordered)[: self._max_keys]))


@dataclass(frozen=True, slots=True)
class ReplicationTimings:
    """Deadlines and periods of the service (seconds)."""

    write_timeout: float = 5.0
    read_timeout: float = 5.0
    touch_period: float = 0.005
    announce_period: float = 0.25


class ReplicatedService:
    """KVService over a StoreFSM replicated by Raft; see the module docstring.

    ``me`` is this node's MEMBER entry (its Raft, HTTP and gRPC addresses).
    Thread-safe. Start the upkeep thread with :meth:`start`; :meth:`close`
    stops it (the Agent closes the Raft node afterwards).
    """

    def __init__(
        self,
        fsm: StoreFSM,
        raft: Consensus,
        replica: ReplicaStateMachine,
        *,
        me: Member,
        max_value_bytes: int,
        timings: ReplicationTimings | None = None,
        checks: Mapping[str, HealthCheck] | None = None,
    ) -> None:
        self._fsm = fsm
        self._store = fsm.store
        self._raft = raft
        self._replica = replica
        self._me = me
        self._max_value_bytes = max_value_bytes
        self._timings = timings or ReplicationTimings()
        self._checks = dict(checks or {})
        self._touches = TouchRecorder()
        self._closed = False
        self._stop = threading.Event()
        self._upkeep: threading.Thread | None = None
        self._announce_pending: Future[object] | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the thread that flushes touches and announces this node."""
        self._upkeep = threading.Thread(target=self._run_upkeep, name="lrukv-upkeep", daemon=True)
        self._upkeep.start()

    def close(self) -> None:
        """Refuse further calls and stop the upkeep thread. Idempotent."""
        self._closed = True
        self._stop.set()
        if self._upkeep is not None and self._upkeep is not threading.current_thread():
            self._upkeep.join(timeout=5)

    # ----------------------------------------------------------------- writes

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._check_open()
        self._propose(self._checked_put(key, value, ttl))

    def _checked_put(self, key: str, value: bytes, ttl: float | None) -> Put:
        # Validate before proposing: apply never refuses for a node's own limits.
        expires = self._store.check_put(key, value, ttl)
        if len(value) > self._max_value_bytes:
            raise ValueTooLarge(
                f"value is {len(value)} bytes; the limit is {self._max_value_bytes}",
                size=len(value),
                limit=self._max_value_bytes,
            )
        return Put(key, value, expires)

    def write_many(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        self._check_open()
        store = self._store

        def validate(op: WriteOp) -> Command:
            if isinstance(op, PutOp):
                return self._checked_put(op.key, op.value, op.ttl)
            store.check_key(op.key)
            return Delete(op.key)

        # The valid operations become ONE BATCH command: one Raft entry, applied
        # at one index on every replica.
        batch, positions, results = prepare_writes(ops, validate, atomic=atomic)
        if batch is None:
            return [r for r in results if r is not None]
        return write_results(results, positions, ops, self._propose(batch))

    def delete(self, key: str) -> bool:
        self._check_open()
        self._store.check_key(key)
        return self._propose(Delete(key)) is not None

    def _propose(self, command: Command) -> object:
        timeout = self._timings.write_timeout
        data = commands.encode(command, time=time.time())
        return self._wait(self._raft.propose(data, timeout), timeout)

    # ------------------------------------------------------------------ reads

    def get(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> bytes:
        self._check_open()
        self._read_barrier(consistency)
        value = self._store.peek(key)
        if value is None:
            raise KeyNotFound(key)
        self._touches.record(key)
        return value

    def get_many(
        self,
        keys: Sequence[str],
        *,
        consistency: Consistency = Consistency.DEFAULT,
        max_bytes: int | None = None,
    ) -> list[GetResult]:
        self._check_open()
        self._read_barrier(consistency)  # one barrier for the whole batch
        # Peek and record, as a single get does: only the replicated TOUCH moves keys.
        results, found = bounded_answer(keys, self._store.peek, max_bytes)
        record = self._touches.record
        for key in found:
            record(key)
        return results

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        self._check_open()
        self._read_barrier(consistency)
        return self._store.keys()

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        self._check_open()
        self._read_barrier(consistency)
        return self._store.items()

    def stats(self) -> StoreStats:
        self._check_open()
        return store_stats(self._store, max_value_bytes=self._max_value_bytes)

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        self._check_open()
        self._read_barrier(consistency)
        return remaining_ttl(self._store, key)

    def _read_barrier(self, consistency: Consistency) -> None:
        if consistency is Consistency.STALE:
            return
        if consistency is Consistency.DEFAULT and self._raft.is_leader:
            return
        timeout = self._timings.read_timeout
        self._wait(self._raft.read_barrier(timeout), timeout)

    # --------------------------------------------------------------- cluster

    def servers(self) -> list[ServerInfo]:
        leader = self._raft.leader_addr
        members = self._fsm.members
        if self._me.raft_addr not in members:
            members[self._me.raft_addr] = self._me
        return [
            ServerInfo(m.node_id, m.grpc_addr, m.http_addr, m.raft_addr == leader)
            for m in sorted(members.values(), key=lambda m: m.node_id)
        ]

    def cluster_status(self, *, digest: bool = False) -> ClusterStatus:
        raft = self._raft.status()
        directory = self._fsm.members

        def describe(addr: str, reachable: bool) -> MemberStatus:
            known = directory.get(addr)
            if known is None:
                return MemberStatus("", addr, "", "", reachable)
            return MemberStatus(known.node_id, addr, known.http_addr, known.grpc_addr, reachable)

        members = tuple(describe(m.addr, m.reachable) for m in raft.members)
        leader = None
        if raft.leader_addr is not None:
            leader = next((m for m in members if m.raft_addr == raft.leader_addr), None)
            leader = leader or describe(raft.leader_addr, False)
        sha = self._fsm.digest()[1] if digest else None
        return ClusterStatus(
            node_id=self._me.node_id,
            role=raft.role.value,
            term=raft.term,
            commit_index=raft.commit_index,
            applied_index=raft.applied_index,
            leader=leader,
            members=members,
            digest=sha,
        )

    def add_member(self, raft_addr: str) -> None:
        self._check_open()
        _check_raft_addr(raft_addr)
        timeout = self._timings.write_timeout
        self._wait(self._raft.add_member(raft_addr, timeout), timeout)

    def remove_member(self, raft_addr: str) -> None:
        self._check_open()
        _check_raft_addr(raft_addr)
        if raft_addr == self._me.raft_addr and self._raft.is_leader:
            raise InvalidRequest(
                "the leader cannot remove itself; ask another member once leadership moved"
            )
        timeout = self._timings.write_timeout
        self._wait(self._raft.remove_member(raft_addr, timeout), timeout)
        self._propose(Forget(raft_addr))

    def leader_member(self) -> Member | None:
        """The leader's MEMBER entry, if a leader is known and has announced itself."""
        leader = self._raft.leader_addr
        return None if leader is None else self._fsm.members.get(leader)

    def health(self) -> Health:
        if self._closed:
            return Health(live=False, ready=False, checks={"service": "closed"})
        checks = {"store": self._replica.fatal or "ok"}
        checks["raft"] = self._raft_health()
        for name, check in self._checks.items():
            checks[name] = check()
        return Health(live=True, ready=all(v in _HEALTHY for v in checks.values()), checks=checks)

    def _raft_health(self) -> str:
        if self._raft.leader_addr is None:
            return "no leader known"
        if not self._raft.wait_ready(0):
            return "catching up with the leader"
        return "ok"

    # -------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        if self._replica.fatal is not None:
            raise Unavailable(self._replica.fatal)

    def _wait(self, future: Future[T], timeout: float) -> T:
        try:
            return future.result(timeout + 1.0)  # the future has its own deadline
        except NotLeader:
            raise self._not_leader() from None
        except TimeoutError:
            raise Timeout(f"no outcome within {timeout:g}s; it may still be applied") from None

    def _not_leader(self) -> NotLeader:
        leader = self.leader_member()
        if leader is None:
            return NotLeader(leader_raft=self._raft.leader_addr)
        return NotLeader(leader.grpc_addr, leader.http_addr, leader_raft=leader.raft_addr)

    def _run_upkeep(self) -> None:
        timings = self._timings
        next_announce = 0.0
        while not self._stop.wait(timings.touch_period):
            try:
                keys = self._touches.drain()
                if keys:
                    # Fire and forget: a lost TOUCH only loses recency, on every replica alike.
                    data = commands.encode(Touch(keys), time=time.time())
                    self._raft.propose(data, timings.write_timeout)
                now = time.monotonic()
                if now >= next_announce:
                    next_announce = now + timings.announce_period
                    self._announce()
            except Exception:
                log.exception("replication upkeep failed; retrying")

    def _announce(self) -> None:
        """Establish the cluster's CONFIG (first leader) and this node's MEMBER entry."""
        raft = self._raft
        if raft.leader_addr is None or self._replica.fatal is not None:
            return
        pending = self._announce_pending
        if pending is not None and not pending.done():
            return
        timeout = self._timings.write_timeout
        wanted: list[Command] = []
        if raft.is_leader and self._fsm.cluster_config is None:
            wanted.append(self._fsm.config)
        if self._fsm.members.get(self._me.raft_addr) != self._me:
            wanted.append(self._me)
        if wanted:
            batch = commands.Batch(tuple(wanted))
            self._announce_pending = raft.propose(commands.encode(batch, time=time.time()), timeout)


def _check_raft_addr(addr: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidRequest(f"a Raft address is HOST:PORT, not {addr!r}")
