"""A plain, obviously-correct reference model of ShardedMap's documented semantics.

Each shard is an OrderedDict (least recently used first). Expired items are
removed lazily exactly where the real map removes them, so lengths, statistics
and eviction causes can be compared exactly, not just lookups.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

from lrukv import EvictionCause

Item = tuple[bytes, float | None]  # value, expires_at


@dataclass
class ModelMap:
    shards: int
    items_per_shard: int
    max_bytes: int | None
    now: float = 1_000.0
    hits: int = 0
    misses: int = 0
    evictions: dict[EvictionCause, int] = field(
        default_factory=lambda: dict.fromkeys(EvictionCause, 0)
    )
    evicted_log: list[tuple[str, bytes, EvictionCause]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data: list[OrderedDict[str, Item]] = [OrderedDict() for _ in range(self.shards)]

    # -- helpers
    def shard(self, key: str) -> OrderedDict[str, Item]:
        return self.data[zlib.crc32(key.encode()) % self.shards]

    @property
    def budget(self) -> int | None:
        return None if self.max_bytes is None else self.max_bytes // self.shards

    def expired(self, item: Item) -> bool:
        return item[1] is not None and item[1] <= self.now

    def evict(self, shard: OrderedDict[str, Item], key: str, cause: EvictionCause) -> None:
        value, _ = shard.pop(key)
        self.evictions[cause] += 1
        self.evicted_log.append((key, value, cause))

    @staticmethod
    def charge(key: str, value: bytes) -> int:
        return len(key.encode()) + len(value)

    def shard_bytes(self, shard: OrderedDict[str, Item]) -> int:
        return sum(self.charge(k, v) for k, (v, _) in shard.items())

    # -- operations, mirroring ShardedMap
    def get(self, key: str, touch: bool = True) -> bytes | None:
        shard = self.shard(key)
        item = shard.get(key)
        if item is None:
            self.misses += 1
            return None
        if self.expired(item):
            self.evict(shard, key, EvictionCause.EXPIRED)
            self.misses += 1
            return None
        if touch:
            shard.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: str, value: bytes, expires: float | None) -> None:
        shard = self.shard(key)
        if key in shard:
            shard[key] = (value, expires)
            shard.move_to_end(key)
        else:
            if len(shard) >= self.items_per_shard:
                lru_key = next(iter(shard))
                cause = (
                    EvictionCause.EXPIRED
                    if self.expired(shard[lru_key])
                    else EvictionCause.CAPACITY
                )
                self.evict(shard, lru_key, cause)
            shard[key] = (value, expires)
        budget = self.budget
        if budget is not None:
            while self.shard_bytes(shard) > budget:
                self.evict(shard, next(iter(shard)), EvictionCause.BYTES)

    def delete(self, key: str) -> bool:
        shard = self.shard(key)
        item = shard.get(key)
        if item is None:
            return False
        if self.expired(item):
            self.evict(shard, key, EvictionCause.EXPIRED)
            return False
        del shard[key]
        return True

    def touch(self, keys: list[str]) -> int:
        touched = 0
        for key in keys:
            shard = self.shard(key)
            item = shard.get(key)
            if item is not None and not self.expired(item):
                shard.move_to_end(key)
                touched += 1
        return touched

    def contains(self, key: str) -> bool:
        item = self.shard(key).get(key)
        return item is not None and not self.expired(item)

    def purge_expired(self) -> int:
        purged = 0
        for shard in self.data:
            for key in [k for k, item in shard.items() if self.expired(item)]:
                self.evict(shard, key, EvictionCause.EXPIRED)
                purged += 1
        return purged

    def items(self) -> list[tuple[str, bytes]]:
        """Live items, shard by shard, most recently used first."""
        return [
            (key, value)
            for shard in self.data
            for key, (value, expires) in reversed(shard.items())
            if not self.expired((value, expires))
        ]

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.data)

    def clear(self) -> None:
        for shard in self.data:
            shard.clear()
