"""lrukv: a thread-safe, sharded least-recently-used key-value store.

The core is pure Python with no dependencies; the server (``lrukv_server``) and
the client SDK (``lrukv_client``) are separate packages built on it.

>>> import lrukv
>>> cache = lrukv.ShardedMap(shards=4, items_per_shard=1000)
>>> cache.put("greeting", b"Hello, key-value store!")
>>> cache.get("greeting")
b'Hello, key-value store!'
"""

from lrukv.config import StoreConfig
from lrukv.errors import (
    CorruptSnapshot,
    InvalidArgument,
    InvalidConfig,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    KeyNotFound,
    LrukvError,
    SnapshotError,
    SnapshotMismatch,
    UnsupportedSnapshotVersion,
    ValueTooLarge,
)
from lrukv.sharded_map import EvictionCallback, ShardedMap
from lrukv.stats import EvictionCause, Stats

__version__ = "0.1.0"

__all__ = [
    "CorruptSnapshot",
    "EvictionCallback",
    "EvictionCause",
    "InvalidArgument",
    "InvalidConfig",
    "InvalidKey",
    "InvalidTTL",
    "InvalidValue",
    "KeyNotFound",
    "LrukvError",
    "ShardedMap",
    "SnapshotError",
    "SnapshotMismatch",
    "Stats",
    "StoreConfig",
    "UnsupportedSnapshotVersion",
    "ValueTooLarge",
    "__version__",
]
