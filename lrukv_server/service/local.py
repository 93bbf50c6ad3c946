"""LocalService: the KVService of a single node, over its own store.

The store is a plain :class:`lrukv.ShardedMap` when the transaction log is off,
or the transaction log's ``LoggedStore`` (a ShardedMap whose writes are
recorded first) when it is on; both have the methods of :class:`Store`.

On a single node there is nobody to lag behind, so every consistency level is
served from the local store, and the node reports itself as the leader.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from lrukv import ShardedMap
from lrukv.errors import KeyNotFound
from lrukv_server.errors import Unavailable
from lrukv_server.service.base import Consistency, Health, ServerInfo, StoreStats

__all__ = ["LocalService", "LoggedStoreLike", "Store"]

_CLOSED_MESSAGE = "the server is shutting down"


class Store(Protocol):
    """The part of ShardedMap's interface that LocalService uses."""

    def put(
        self, key: str, value: bytes, ttl: float | None = None, *, expires_at: float | None = None
    ) -> None: ...

    def get(self, key: str, default: bytes | None = None) -> bytes | None: ...

    def delete(self, key: str) -> bool: ...

    def keys(self) -> Iterator[str]: ...

    def items(self) -> Iterator[tuple[str, bytes]]: ...


class _LogHealthLike(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...


@runtime_checkable
class LoggedStoreLike(Protocol):
    """What a store backed by a transaction log adds: its log's health, and close."""

    def log_health(self) -> _LogHealthLike: ...

    def close(self) -> None: ...


class LocalService:
    """KVService over one local store.

    Thread safety: the store is thread-safe; this class adds only an immutable
    node description and a ``closed`` flag, which is a plain attribute read on
    every call (a request racing with ``close()`` either runs before the store
    is closed or gets Unavailable).

    >>> import lrukv
    >>> svc = LocalService(lrukv.ShardedMap(), node=ServerInfo("n1", "h:1", "h:2", True))
    >>> svc.put("k", b"v"); svc.get("k")
    b'v'
    >>> svc.close(); svc.get("k")
    Traceback (most recent call last):
    ...
    lrukv_server.errors.Unavailable: the server is shutting down
    """

    def __init__(self, store: Store, *, node: ServerInfo) -> None:
        self._store = store
        self._node = node
        self._closed = False

    @property
    def store(self) -> Store:
        """The store served (for the agent's start-up report and for tests)."""
        return self._store

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        self._store.put(key, value, ttl)

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
        return self._store.delete(key)

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

    def stats(self) -> StoreStats:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        core = _core_map(self._store)
        counters = core.stats()
        return StoreStats(
            size=counters.size,
            capacity=core.capacity,
            shards=core.shards,
            items_per_shard=core.items_per_shard,
            bytes=counters.bytes,
            max_bytes=core.max_bytes,
            max_key_bytes=core.max_key_bytes,
            max_value_bytes=core.max_value_bytes,
            hits=counters.hits,
            misses=counters.misses,
            evictions={cause.value: count for cause, count in counters.evictions.items()},
        )

    def ttl(self, key: str, *, consistency: Consistency = Consistency.DEFAULT) -> float | None:
        if self._closed:
            raise Unavailable(_CLOSED_MESSAGE)
        # expires_at neither moves the key to the front nor counts a hit: asking
        # whether a key exists must not keep it alive.
        core = _core_map(self._store)
        core.check_key(key)  # a bad key is a bad request, as for get
        expires = core.expires_at(key)
        if expires is None:
            return None
        return max(expires - time.time(), 0.0)

    def health(self) -> Health:
        if self._closed:
            return Health(live=False, ready=False, checks={"service": "closed"})
        checks = {"store": "ok"}
        ready = True
        if isinstance(self._store, LoggedStoreLike):
            log = self._store.log_health()
            checks["txlog"] = "ok" if log.ok else log.detail
            ready = log.ok
        else:
            checks["txlog"] = "off"
        return Health(live=True, ready=ready, checks=checks)

    def close(self) -> None:
        """Refuse further calls, then close the store (which flushes its log). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self._store, LoggedStoreLike):
            self._store.close()


def _core_map(store: Store) -> ShardedMap:
    """The ShardedMap behind *store* (a LoggedStore wraps one as ``.store``): it
    has the sizes, limits and counters that ``stats`` and ``ttl`` read."""
    if isinstance(store, ShardedMap):
        return store
    inner = getattr(store, "store", None)
    if isinstance(inner, ShardedMap):
        return inner
    raise TypeError(f"cannot read the statistics of a {type(store).__name__}")
