"""StoreConfig: the settings of a ShardedMap as a frozen, validated value.

The server composes it into its own config; in a cluster, ``shards``,
``items_per_shard`` and ``max_bytes`` are part of the replicated state and must
match on every node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lrukv._keys import DEFAULT_MAX_KEY_BYTES
from lrukv._limits import validate_sizes
from lrukv.sharded_map import EvictionCallback, ShardedMap

__all__ = ["StoreConfig"]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Geometry and limits of a store. Defaults match the original service (10 x 100).

    >>> StoreConfig(shards=0).validate()
    Traceback (most recent call last):
    ...
    lrukv.errors.InvalidConfig: shards must be a positive int, not 0
    """

    shards: int = 10
    items_per_shard: int = 100
    max_bytes: int | None = None
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    max_value_bytes: int | None = None

    def validate(self) -> StoreConfig:
        """Raise InvalidConfig if any value is out of range; return self."""
        validate_sizes(
            self.shards,
            self.items_per_shard,
            self.max_bytes,
            self.max_key_bytes,
            self.max_value_bytes,
        )
        return self

    @property
    def capacity(self) -> int:
        """Total item capacity."""
        return self.shards * self.items_per_shard

    def build(
        self,
        *,
        clock: Callable[[], float] = time.time,
        on_evict: EvictionCallback | None = None,
        reap_on_read: bool = True,
    ) -> ShardedMap:
        """Create an empty ShardedMap with these settings (``reap_on_read``: see ShardedMap)."""
        self.validate()
        return ShardedMap(
            self.shards,
            self.items_per_shard,
            max_bytes=self.max_bytes,
            max_key_bytes=self.max_key_bytes,
            max_value_bytes=self.max_value_bytes,
            clock=clock,
            on_evict=on_evict,
            reap_on_read=reap_on_read,
        )
