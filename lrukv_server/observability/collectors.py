"""Scrape-time collectors: store, transaction log and Raft numbers read when
Prometheus asks, so the request path pays nothing for them.

Each collector reads counters the owning component already keeps as plain ints
(``ShardedMap.stats()``, ``LoggedStore.counters()``, ``RaftNode.status()``,
``ReplicatedService.forwarded_proposals``…) and turns them into metric families.
A component that cannot answer (the Raft thread is busy, the log is closed)
drops its families from that one scrape rather than failing it.

Cost of a scrape: ``ShardedMap.stats()`` takes each shard's lock in turn; without
``--max-bytes`` the byte count walks every item (O(items), ~50 ms per million),
since the core tracks bytes only when it has a byte budget. The Raft status is
taken on the Raft thread (waits at most a tick or two).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from lrukv import ShardedMap
from lrukv_server.errors import Unavailable
from lrukv_server.raft import RaftStatus
from lrukv_server.txlog import LogCounters

__all__ = ["RaftCollector", "StoreCollector", "TxLogCollector"]

log = logging.getLogger(__name__)

_ROLES = ("leader", "follower", "candidate")


class StoreCollector:
    """``lrukv_store_*``: size, bytes, capacity, hits, misses and evictions by
    cause, over the node's ShardedMap, with per-shard items and bytes."""

    def __init__(self, store: ShardedMap) -> None:
        # The FSM restores snapshots into this same map, so holding it is safe.
        self._store = store

    def collect(self) -> Iterator[Metric]:
        store = self._store
        stats = store.stats()
        yield _gauge("lrukv_store_items", "Items in the store now.", stats.size)
        yield _gauge(
            "lrukv_store_capacity_items",
            "Items the store holds before it evicts (shards x items per shard).",
            store.capacity,
        )
        yield _gauge("lrukv_store_shards", "Shards of the store.", store.shards)
        yield _gauge("lrukv_store_bytes", "UTF-8 key bytes plus value bytes held now.", stats.bytes)
        if store.max_bytes is not None:
            yield _gauge(
                "lrukv_store_max_bytes", "The byte budget of keys plus values.", store.max_bytes
            )
        items = GaugeMetricFamily(
            "lrukv_store_shard_items", "Items in each shard now.", labels=["shard"]
        )
        nbytes = GaugeMetricFamily(
            "lrukv_store_shard_bytes", "Key plus value bytes in each shard now.", labels=["shard"]
        )
        for number, (size, shard_bytes) in enumerate(
            zip(stats.shard_sizes, stats.shard_bytes, strict=True)
        ):
            items.add_metric([str(number)], size)
            nbytes.add_metric([str(number)], shard_bytes)
        yield items
        yield nbytes
        yield _counter(
            "lrukv_store_hits", "Reads that found their key, since the node started.", stats.hits
        )
        yield _counter(
            "lrukv_store_misses",
            "Reads that did not find their key, since the node started.",
            stats.misses,
        )
        evictions = CounterMetricFamily(
            "lrukv_store_evictions",
            "Items that left the store without a delete, by cause "
            "(capacity: shard full; bytes: over the byte budget; expired: TTL passed).",
            labels=["cause"],
        )
        for cause, count in stats.evictions.items():
            evictions.add_metric([cause.value], count)
        yield evictions


class _CountedLog(Protocol):
    def counters(self) -> LogCounters: ...


class TxLogCollector:
    """``lrukv_txlog_*``: appends, fsyncs (commits for PostgreSQL), errors,
    the queue of events not yet durable, and health."""

    def __init__(self, logged: _CountedLog, backend: str) -> None:
        self._logged = logged
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        try:
            counters = self._logged.counters()
        except Exception:  # a closed or broken log must not break the whole scrape
            log.debug("transaction log counters unavailable", exc_info=True)
            return
        labels = {"backend": self._backend}
        yield _counter(
            "lrukv_txlog_appends",
            "Events appended to the transaction log since the node started.",
            counters.appends,
            labels,
        )
        yield _counter(
            "lrukv_txlog_fsyncs",
            "Times the log made events durable since the node started "
            "(fsyncs of the file; commits for PostgreSQL).",
            counters.syncs,
            labels,
        )
        yield _counter(
            "lrukv_txlog_errors",
            "Writes the log refused or could not make durable (each failed to the client).",
            counters.errors,
            labels,
        )
        yield _gauge(
            "lrukv_txlog_queue_depth",
            "Events taken by the log but not yet durable (not fsynced or committed).",
            counters.queue_depth,
            labels,
        )
        yield _gauge(
            "lrukv_txlog_last_sequence",
            "Sequence number of the newest event in the log.",
            counters.last_seq,
            labels,
        )
        yield _gauge(
            "lrukv_txlog_healthy",
            "1 while the log accepts writes, 0 while it refuses them.",
            1 if counters.healthy else 0,
            labels,
        )


class _RaftSource(Protocol):
    def status(self, timeout: float = 2.0) -> RaftStatus: ...

    @property
    def leader_changes(self) -> int: ...


class RaftCollector:
    """``lrukv_raft_*``: role, term, commit and applied index, peers, leader
    changes and writes forwarded to the leader."""

    def __init__(self, raft: _RaftSource, forwarded: Callable[[], int]) -> None:
        self._raft = raft
        self._forwarded = forwarded

    def collect(self) -> Iterator[Metric]:
        yield _counter(
            "lrukv_raft_leader_changes",
            "Times this node saw a new leader since it started (the first included).",
            self._raft.leader_changes,
        )
        yield _counter(
            "lrukv_raft_forwarded_writes",
            "Writes this node took while not the leader, forwarded to the leader.",
            self._forwarded(),
        )
        try:
            status = self._raft.status(timeout=1.0)
        except Unavailable:
            log.debug("raft status unavailable for a scrape", exc_info=True)
            return
        role = GaugeMetricFamily(
            "lrukv_raft_role", "1 for the role this node has now, else 0.", labels=["role"]
        )
        for name in _ROLES:
            role.add_metric([name], 1 if status.role.value == name else 0)
        yield role
        yield _gauge("lrukv_raft_term", "The current Raft term.", status.term)
        yield _gauge(
            "lrukv_raft_commit_index", "The highest log index known committed.", status.commit_index
        )
        yield _gauge(
            "lrukv_raft_applied_index",
            "The highest log index applied to this node's store.",
            status.applied_index,
        )
        yield _gauge(
            "lrukv_raft_log_entries",
            "Entries in this node's Raft journal since its last snapshot.",
            status.log_entries,
        )
        yield _gauge(
            "lrukv_raft_has_quorum",
            "1 while this node is connected to a majority (itself included).",
            1 if status.has_quorum else 0,
        )
        peers = GaugeMetricFamily(
            "lrukv_raft_peers",
            "Other voting members by whether this node has a live connection to them.",
            labels=["state"],
        )
        others = [m for m in status.members if not m.is_self]
        reachable = sum(1 for m in others if m.reachable)
        peers.add_metric(["reachable"], reachable)
        peers.add_metric(["unreachable"], len(others) - reachable)
        yield peers


def _gauge(
    name: str, documentation: str, value: float, labels: dict[str, str] | None = None
) -> GaugeMetricFamily:
    if not labels:
        return GaugeMetricFamily(name, documentation, value=value)
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _counter(
    name: str, documentation: str, value: float, labels: dict[str, str] | None = None
) -> CounterMetricFamily:
    """A counter family; *name* without ``_total`` (prometheus_client adds it)."""
    if not labels:
        return CounterMetricFamily(name, documentation, value=value)
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family
