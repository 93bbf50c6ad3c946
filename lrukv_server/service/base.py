"""KVService: the one interface both transports (gRPC and HTTP) call.

Handlers depend on this protocol only, so both transports get the same
semantics and the same errors, and a replicated implementation can stand behind
them without any handler changing.

Contract for implementations
----------------------------
* Errors are raised, never returned: ``lrukv.errors`` for bad input and missing
  keys (KeyNotFound, InvalidKey, ValueTooLarge, InvalidTTL…), and
  ``lrukv_server.errors`` for the service's own (NotLeader, Unavailable…).
* ``put`` and ``delete`` return only once the write is durable to the degree
  configured (transaction log appended and synced per its policy, or committed
  by a Raft quorum). An exception means the write may not be durable and must
  not be reported to the client as done.
* ``get_many`` and ``write_many`` follow the batch semantics of
  :mod:`lrukv_server.service.batch` (per-key results, in order, one command
  per write batch, recency as single gets).
* ``keys`` and ``items`` must not hold locks while the caller consumes them: a
  client that stops reading a stream must never block writers.
* Every method is safe to call from many threads at once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from lrukv_server.service.batch import GetResult, WriteOp, WriteResult

__all__ = [
    "ClusterStatus",
    "Consistency",
    "Health",
    "KVService",
    "MemberStatus",
    "ServerInfo",
    "StoreStats",
]


class Consistency(enum.Enum):
    """How fresh a read must be (as users of Consul and rqlite know the names)."""

    STALE = "stale"  # any node, from local state; may lag
    DEFAULT = "default"  # the node that believes it is the leader
    LINEARIZABLE = "linearizable"  # confirmed through the log before answering

    @classmethod
    def parse(cls, text: str) -> Consistency:
        """Parse a level name, case-insensitively; ValueError names the valid ones."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(level.value for level in cls)
            raise ValueError(f"unknown consistency {text!r}; use one of: {names}") from None


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """One node of the cluster as clients see it."""

    id: str
    rpc_addr: str
    http_addr: str
    is_leader: bool


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """A cluster member as the answering node sees it. Addresses this node has
    not learned yet (the member has not announced itself) are empty."""

    id: str
    raft_addr: str
    http_addr: str
    grpc_addr: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The answering node's view of the cluster (``GET /v1/util/cluster``).

    ``role`` is ``leader``, ``follower`` or ``candidate``; a single node is its
    own leader at term 0. ``digest`` (only when asked for) is the SHA-256 of the
    store's snapshot at ``applied_index``: contents, expiry times and each
    shard's recency order, so equal digests at equal indexes prove replicas agree.
    """

    node_id: str
    role: str
    term: int
    commit_index: int
    applied_index: int
    leader: MemberStatus | None
    members: tuple[MemberStatus, ...]
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """``live``: the process works. ``ready``: it can serve reads and writes now.
    ``checks`` names each part and its state (``"ok"`` or a reason)."""

    live: bool
    ready: bool
    checks: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a node holds and how full it is, for ``lrukv stats`` and load tools.

    ``capacity`` is ``shards * items_per_shard``; ``bytes`` counts UTF-8 key bytes
    plus value bytes. ``max_bytes`` / ``max_value_bytes`` are None when unlimited.
    ``hits`` / ``misses`` count reads since the node started; ``evictions`` maps a
    cause (``capacity``, ``bytes``, ``expired``) to the items that left for it.
    """

    size: int
    capacity: int
    shards: int
    items_per_shard: int
    bytes: int
    max_bytes: int | None
    max_key_bytes: int
    max_value_bytes: int | None
    hits: int
    misses: int
    evictions: Mapping[str, int] = field(default_factory=dict)


@runtime_checkable
class KVService(Protocol):
    """What the API layer needs from the store."""

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store *value* under *key*, optionally expiring after *ttl* seconds."""
        ...

    def get(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> bytes:
        """Return the value of *key*; raise ``lrukv.errors.KeyNotFound`` if absent."""
        ...

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it existed. Deleting an absent key is no error."""
        ...

    def get_many(
        self,
        keys: Sequence[str],
        *,
        consistency: Consistency = Consistency.DEFAULT,
        max_bytes: int | None = None,
    ) -> list[GetResult]:
        """One result per key, in order: its value, or None when absent; an invalid
        key is that key's error. Honours *consistency* as ``get`` does, with one
        read barrier for the whole batch. Found keys become the most recently
        used, in order, as that sequence of gets would make them. A found key
        that would take the answer's value bytes past *max_bytes* is
        answered with BatchTooLarge and left unchanged."""
        ...

    def write_many(self, ops: Sequence[WriteOp], *, atomic: bool = False) -> list[WriteResult]:
        """Apply puts and deletes in order as ONE command; one result per op, in
        order. A refused op is that op's error and the others apply; with
        *atomic* the first refusal is raised and nothing is applied. Durable on
        return, as ``put`` is."""
        ...

    def keys(self, *, consistency: Consistency = Consistency.DEFAULT) -> Iterator[str]:
        """Iterate over live keys (snapshot semantics of ``ShardedMap.keys``)."""
        ...

    def items(
        self, *, consistency: Consistency = Consistency.DEFAULT
    ) -> Iterator[tuple[str, bytes]]:
        """Iterate over live (key, value) pairs, holding no lock between items."""
        ...

    def servers(self) -> list[ServerInfo]:
        """The cluster's nodes; a single node reports itself as leader."""
        ...

    def stats(self) -> StoreStats:
        """This node's size, capacity, limits and counters."""
        ...

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        """Seconds until *key* expires, or None if it never does; raise
        ``lrukv.errors.KeyNotFound`` if absent. Neither a use nor a hit/miss."""
        ...

    def health(self) -> Health:
        """Liveness, readiness and the state of each part (log, raft…)."""
        ...

    def cluster_status(self, *, digest: bool = False) -> ClusterStatus:
        """This node's view of the cluster; with *digest*, the store's digest too."""
        ...

    def add_member(self, raft_addr: str) -> None:
        """Add a voting member (start it with ``--join`` or with the members as
        ``--peers``); InvalidRequest on a node that is not in a cluster."""
        ...

    def remove_member(self, raft_addr: str) -> None:
        """Remove a voting member and forget its addresses."""
        ...

    def close(self) -> None:
        """Flush and release everything; later calls raise Unavailable."""
        ...
