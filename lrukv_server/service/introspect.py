"""What a node can tell about its store without touching it: statistics and a
key's remaining time to live. Shared by the single-node and replicated services.
"""

from __future__ import annotations

import time

from lrukv import ShardedMap
from lrukv_server.service.base import StoreStats

__all__ = ["remaining_ttl", "store_stats"]


def store_stats(store: ShardedMap, *, max_value_bytes: int | None) -> StoreStats:
    """The store's sizes, limits and counters. *max_value_bytes* is the node's
    API limit (a replica's map itself has none: its service checks it)."""
    counters = store.stats()
    return StoreStats(
        size=counters.size,
        capacity=store.capacity,
        shards=store.shards,
        items_per_shard=store.items_per_shard,
        bytes=counters.bytes,
        max_bytes=store.max_bytes,
        max_key_bytes=store.max_key_bytes,
        max_value_bytes=max_value_bytes,
        hits=counters.hits,
        misses=counters.misses,
        evictions={cause.value: count for cause, count in counters.evictions.items()},
    )


def remaining_ttl(store: ShardedMap, key: str) -> float | None:
    """Seconds until *key* expires, None if never; KeyNotFound if absent.

    ``expires_at`` neither moves the key to the front nor counts a hit: asking
    whether a key exists must not keep it alive.
    """
    store.check_key(key)  # a bad key is a bad request, as for get
    expires = store.expires_at(key)
    if expires is None:
        return None
    return max(expires - time.time(), 0.0)
