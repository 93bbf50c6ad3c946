"""Counters the store keeps, so observability can be layered on without the core
importing Prometheus or OpenTelemetry."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EvictionCause", "Stats"]


class EvictionCause(enum.Enum):
    """Why an item left the store without being deleted."""

    CAPACITY = "capacity"  # its shard was full (items_per_shard) and it was least recently used
    BYTES = "bytes"  # its shard was over its share of max_bytes and it was least recently used
    EXPIRED = "expired"  # its TTL had passed when the store reaped it


@dataclass(frozen=True, slots=True)
class Stats:
    """A point-in-time view of the store's counters, read shard by shard.

    ``shard_sizes`` and ``shard_bytes`` are per shard, in shard order; ``bytes``
    counts UTF-8 key bytes plus value bytes (not Python object overhead).
    """

    hits: int
    misses: int
    evictions: Mapping[EvictionCause, int]
    size: int
    bytes: int
    shard_sizes: tuple[int, ...]
    shard_bytes: tuple[int, ...]

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses), or 0.0 before any read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0
