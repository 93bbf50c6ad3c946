"""ShardedMap: a thread-safe LRU store of str keys and bytes values.

Structure
---------
The store is ``shards`` independent LRU shards. Each shard owns an intrusive,
circular, doubly-linked recency list (a sentinel node whose ``next`` is the most
recently used item and whose ``prev`` is the least recently used), a size, a byte
count and its own lock. A key's shard is ``crc32(utf8(key)) % shards``: the same
in every process, so replicas evict the same keys.

One dict maps every key to its list node. That index is the only structure
shared by all shards, and it is why the stable hash is only computed when a key
is first inserted (or missed): a hit or an overwrite finds the node, and through
it the shard, with one dict lookup. Every change to the index entry of a key is
made while holding that key's shard lock, so under the lock ``index[key]`` is the
truth; outside it, a lookup is a hint that is re-checked after locking.

Thread safety
-------------
Every public method is safe to call from many threads. An operation on one key
holds one shard lock for a few attribute updates. ``keys()``, ``items()`` and
``stats()`` visit the shards one at a time and never hold a lock while the
caller runs; ``snapshot()``, ``restore()`` and ``clear()`` take all shard locks
in shard order (so they cannot deadlock with each other) for as long as it takes
to copy or swap references.

Recency
-------
``get``, ``put`` and ``touch`` make a key the most recently used of its shard.
``peek``, ``in``, ``keys()``, ``items()`` and ``snapshot()`` do not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Final
from zlib import crc32

from lrukv import snapshot as snapshot_format
from lrukv._keys import DEFAULT_MAX_KEY_BYTES, encode_key, shard_index
from lrukv._limits import validate_sizes
from lrukv._shard import UNBOUNDED, Node, Shard, key_bytes
from lrukv.errors import (
    InvalidConfig,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    KeyNotFound,
    SnapshotMismatch,
    ValueTooLarge,
)
from lrukv.stats import EvictionCause, Stats

__all__ = ["EvictionCallback", "ShardedMap"]

EvictionCallback = Callable[[str, bytes, EvictionCause], None]
"""Called as ``on_evict(key, value, cause)`` after the evicting operation released its lock."""


class ShardedMap:
    """A thread-safe LRU map from ``str`` to ``bytes``, split into locked shards.

    Capacity is ``shards * items_per_shard`` items; a put into a full shard evicts
    that shard's least recently used item. With ``max_bytes``, each shard also
    keeps its key plus value bytes within ``max_bytes // shards``.

    >>> m = ShardedMap(shards=1, items_per_shard=2)
    >>> m.put("a", b"1"); m.put("b", b"2")
    >>> m.get("a")              # "a" becomes the most recently used
    b'1'
    >>> m.put("c", b"3")        # the shard is full: "b" is evicted
    >>> sorted(m.keys())
    ['a', 'c']
    >>> m.stats().evictions[EvictionCause.CAPACITY]
    1
    """

    def __init__(
        self,
        shards: int = 10,
        items_per_shard: int = 100,
        *,
        max_bytes: int | None = None,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        max_value_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
        on_evict: EvictionCallback | None = None,
        reap_on_read: bool = True,
    ) -> None:
        """Create an empty map.

        ``clock`` returns seconds since the epoch (TTL expiry times are absolute,
        so they survive restarts and mean the same on every replica); tests pass
        a fake. ``on_evict`` is called once per evicted item, after the lock is
        released; an exception it raises propagates to the caller of the
        operation, which has completed.

        ``reap_on_read`` (default True) lets a read remove the expired key it
        finds. A replica of a replicated store passes False: there a read must
        change nothing, because removing a key on the replica's own clock would
        make it evict differently from the others; expired keys are then removed
        by ``purge_expired(now=...)`` or by eviction, at the same log index everywhere.
        """
        validate_sizes(shards, items_per_shard, max_bytes, max_key_bytes, max_value_bytes)
        if not callable(clock):
            raise InvalidConfig("clock must be callable")

        self._nshards: Final = shards
        self._items_per_shard: Final = items_per_shard
        self._max_bytes: Final = max_bytes
        self._max_key_bytes: Final = max_key_bytes
        self._max_value_bytes: Final = UNBOUNDED if max_value_bytes is None else max_value_bytes
        budget = UNBOUNDED if max_bytes is None else max_bytes // shards
        self._shards: Final = tuple(Shard(items_per_shard, budget) for _ in range(shards))
        self._index: dict[str, Node] = {}
        self._clock = clock
        self._on_evict = on_evict
        self._reap_on_read = reap_on_read
        # No byte budget and no callback: puts of new keys may take the inlined path.
        self._plain = max_bytes is None and on_evict is None

    # ------------------------------------------------------------------ reads

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        """Return the value of *key* and make it the most recently used, or *default*.

        Cost: O(1). Raises InvalidKey for a key that could never be stored.

        >>> m = ShardedMap(); m.put("k", b"v")
        >>> m.get("k"), m.get("missing")
        (b'v', None)
        """
        try:
            node = self._index.get(key)
        except TypeError:  # unhashable: zero cost unless raised
            raise InvalidKey(f"key must be str, not {type(key).__name__}") from None
        if node is not None:
            shard = node.shard
            free = shard.free
            try:
                free.pop()  # take the shard's token: its lock (see Shard)
            except IndexError:
                shard.wait_for_token()
            try:
                # The node may have been deleted or reused for another key between
                # the lookup and the lock; a dead node's key is "".
                if node.key == key:
                    expires = node.expires
                    if expires is None or expires > self._clock():
                        head = shard.head
                        first = head.next
                        if first is not node:
                            prev = node.prev
                            after = node.next
                            prev.next = after
                            after.prev = prev
                            node.prev = head
                            node.next = first
                            first.prev = node
                            head.next = node
                        shard.hits += 1
                        return node.value
            finally:
                free.append(True)
                if shard.waiters:
                    shard.wake_a_waiter()
        elif (
            key.__class__ is str
            and key.isascii()
            and key.isprintable()
            and 0 < len(key) <= self._max_key_bytes
        ):
            self._count_miss(key)
            return default
        return self._get_slow(key, default, touch=True)

    def peek(self, key: str, default: bytes | None = None) -> bytes | None:
        """Return the value of *key* without changing its recency, or *default*.

        Cost: O(1). Counts a hit or a miss like ``get``.
        """
        try:
            node = self._index.get(key)
        except TypeError:  # unhashable: zero cost unless raised
            raise InvalidKey(f"key must be str, not {type(key).__name__}") from None
        if node is not None:
            shard = node.shard
            free = shard.free
            try:
                free.pop()  # take the shard's token: its lock (see Shard)
            except IndexError:
                shard.wait_for_token()
            try:
                if node.key == key:
                    expires = node.expires
                    if expires is None or expires > self._clock():
                        shard.hits += 1
                        return node.value
            finally:
                free.append(True)
                if shard.waiters:
                    shard.wake_a_waiter()
        elif (
            key.__class__ is str
            and key.isascii()
            and key.isprintable()
            and 0 < len(key) <= self._max_key_bytes
        ):
            self._count_miss(key)
            return default
        return self._get_slow(key, default, touch=False)

    def _count_miss(self, key: str) -> None:
        """Count a plain miss of a valid key (for an ASCII key, ``len`` is the
        UTF-8 length and isprintable() rules out control characters).

        The unlocked index lookup that found nothing is the answer: the read is
        ordered before any insert racing it. Only the counter needs a lock, and
        any shard's will do, because stats() reports the total of misses; so the
        key's cached, per-process hash() picks the shard, not the stable crc32
        of its encoding (which would cost an encode and a checksum per miss).
        """
        shard = self._shards[hash(key) % self._nshards]
        free = shard.free
        try:
            free.pop()  # take the shard's token: its lock (see Shard)
        except IndexError:
            shard.wait_for_token()
        try:
            shard.misses += 1
        finally:
            free.append(True)
            if shard.waiters:
                shard.wake_a_waiter()

    def _get_slow(self, key: str, default: bytes | None, *, touch: bool) -> bytes | None:
        """The miss path: validate, find the shard by hash, settle under its lock."""
        shard = self._shards[shard_index(encode_key(key, self._max_key_bytes), self._nshards)]
        evicted: list[tuple[str, bytes, EvictionCause]] = []
        shard.acquire()
        try:
            node = self._index.get(key)
            if node is None:
                shard.misses += 1
                return default
            expires = node.expires
            if expires is not None and expires <= self._clock():
                if self._reap_on_read:
                    self._unlink(shard, node, EvictionCause.EXPIRED, evicted)
                shard.misses += 1
                return default
            if touch:
                self._move_to_front(shard, node)
            shard.hits += 1
            return node.value
        finally:
            shard.release()
            if evicted:
                self._notify(evicted)

    def __getitem__(self, key: str) -> bytes:
        """``m[key]``: like ``get`` but raises KeyNotFound (a KeyError) on a miss."""
        value = self.get(key)
        if value is None:
            raise KeyNotFound(key)
        return value

    def __contains__(self, key: object) -> bool:
        """``key in m``: true for a live, unexpired key. Does not change recency or stats."""
        node = self._index.get(key) if isinstance(key, str) else None
        if node is None:
            return False
        shard = node.shard
        free = shard.free
        try:
            free.pop()  # take the shard's token: its lock (see Shard)
        except IndexError:
            shard.wait_for_token()
        try:
            if node.key != key:
                return False
            expires = node.expires
            return expires is None or expires > self._clock()
        finally:
            free.append(True)
            if shard.waiters:
                shard.wake_a_waiter()

    def __len__(self) -> int:
        """Number of items, expired-but-not-yet-reaped ones included. Cost: O(shards)."""
        return sum(shard.size for shard in self._shards)

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def keys(self) -> Iterator[str]:
        """Iterate over live keys, shard by shard, each shard most recent first.

        Snapshot semantics: each shard is copied under its own lock, one shard at
        a time, and the lock is released before any key is yielded. A key is
        reported at most once; a write made during the iteration is seen if its
        shard had not been copied yet. A consumer that stops halfway, or never
        resumes, holds no lock and blocks nobody. Cost: O(n) overall, O(shard)
        per lock hold.
        """
        for key, _value in self._iter_entries():
            yield key

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Iterate over live (key, value) pairs with the semantics of ``keys()``."""
        return self._iter_entries()

    def values(self) -> Iterator[bytes]:
        """Iterate over live values with the semantics of ``keys()``."""
        for _key, value in self._iter_entries():
            yield value

    def _iter_entries(self) -> Iterator[tuple[str, bytes]]:
        for shard in self._shards:
            shard.acquire()
            try:
                now = self._clock()
                head = shard.head
                node = head.next
                batch = []
                while node is not head:
                    expires = node.expires
                    if expires is None or expires > now:
                        batch.append((node.key, node.value))
                    node = node.next
            finally:
                shard.release()
            yield from batch

    # ----------------------------------------------------------------- writes

    def put(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        expires_at: float | None = None,
    ) -> None:
        """Store *value* under *key* as the most recently used item of its shard.

        ``ttl`` is seconds from now; ``expires_at`` is an absolute clock time (what
        a replicated log carries, so every replica expires the key at the same
        moment). Give at most one. Evicts the shard's least recently used items
        when the shard is over its item count or byte budget.

        Cost: O(1), plus O(k) for k items evicted by the byte budget.

        >>> m = ShardedMap(clock=lambda: 100.0)
        >>> m.put("session", b"token", ttl=30)
        >>> m.expires_at("session")
        130.0
        """
        if value.__class__ is not bytes:
            raise InvalidValue(f"value must be bytes, not {type(value).__name__}")
        value_len = len(value)
        if value_len > self._max_value_bytes:
            raise ValueTooLarge(
                f"value is {value_len} bytes; the limit is {self._max_value_bytes}",
                size=value_len,
                limit=self._max_value_bytes,
            )
        expires = None if ttl is None and expires_at is None else self._expiry(ttl, expires_at)

        try:
            node = self._index.get(key)
        except TypeError:  # unhashable: zero cost unless raised
            raise InvalidKey(f"key must be str, not {type(key).__name__}") from None
        if node is not None:
            shard = node.shard
            if shard.budget == UNBOUNDED:
                # Overwrite in place: with no byte budget, nothing can be evicted.
                free = shard.free
                try:
                    free.pop()  # take the shard's token: its lock (see Shard)
                except IndexError:
                    shard.wait_for_token()
                try:
                    if node.key == key:
                        node.value = value
                        node.expires = expires
                        head = shard.head
                        first = head.next
                        if first is not node:
                            prev = node.prev
                            after = node.next
                            prev.next = after
                            after.prev = prev
                            node.prev = head
                            node.next = first
                            first.prev = node
                            head.next = node
                        return
                finally:
                    free.append(True)
                    if shard.waiters:
                        shard.wake_a_waiter()
        elif self._plain and isinstance(key, str) and key.isprintable():
            # A new key with no byte budget and no callback: the common insert,
            # inlined because each call and allocation here is a measurable share
            # of a put. isprintable() rules out control characters and lone
            # surrogates, so only the UTF-8 length is left to check.
            encoded = key.encode()
            encoded_len = len(encoded)
            if not 0 < encoded_len <= self._max_key_bytes:
                raise InvalidKey(
                    "key must not be empty"
                    if not encoded_len
                    else f"key is {encoded_len} bytes; the limit is {self._max_key_bytes}"
                )
            shard = self._shards[crc32(encoded) % self._nshards]
            index = self._index
            free = shard.free
            try:
                free.pop()  # take the shard's token: its lock (see Shard)
            except IndexError:
                shard.wait_for_token()
            try:
                head = shard.head
                if shard.size < shard.capacity:
                    node = Node()
                    # Before indexing: a thread holding an unlocked hint reads it.
                    node.shard = shard
                    # setdefault both checks for a racing insert and indexes the node.
                    if index.setdefault(key, node) is node:
                        node.key = key
                        node.value = value
                        node.expires = expires
                        first = head.next
                        node.prev = head
                        node.next = first
                        first.prev = node
                        head.next = node
                        shard.size += 1
                        return
                elif index.setdefault(key, head) is head:
                    # Full. The sentinel sits just before the most recent item, so
                    # it takes the new one and the least recently used node becomes
                    # the sentinel: an eviction and an insert with no relinking.
                    tail = head.prev
                    old_key = tail.key
                    del index[old_key]
                    old_expires = tail.expires
                    if old_expires is not None and old_expires <= self._clock():
                        shard.evicted_expired += 1
                    else:
                        shard.evicted_capacity += 1
                    tail.key = ""  # dead, for threads holding a stale index hint
                    tail.value = b""
                    head.key = key
                    head.value = value
                    head.expires = expires
                    shard.head = tail
                    return
            finally:
                free.append(True)
                if shard.waiters:
                    shard.wake_a_waiter()
        self._put_slow(key, value, expires)

    def check_put(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        expires_at: float | None = None,
    ) -> float | None:
        """Validate a put without storing anything; return its absolute expiry time.

        Raises exactly what ``put`` would for bad input, so a write-ahead log can
        validate an event before recording it, then apply it with
        ``put(key, value, expires_at=<returned value>)``. Cost: O(len(key)).
        """
        if value.__class__ is not bytes:
            raise InvalidValue(f"value must be bytes, not {type(value).__name__}")
        encoded = encode_key(key, self._max_key_bytes)
        if len(value) > self._max_value_bytes:
            raise ValueTooLarge(
                f"value is {len(value)} bytes; the limit is {self._max_value_bytes}",
                size=len(value),
                limit=self._max_value_bytes,
            )
        budget = self._shards[0].budget
        if len(encoded) + len(value) > budget:
            raise ValueTooLarge(
                f"key and value are {len(encoded) + len(value)} bytes; "
                f"each shard holds at most {budget}",
                size=len(encoded) + len(value),
                limit=budget,
            )
        return None if ttl is None and expires_at is None else self._expiry(ttl, expires_at)

    def check_key(self, key: str) -> None:
        """Raise InvalidKey if *key* could never be stored. Cost: O(len(key))."""
        encode_key(key, self._max_key_bytes)

    def _put_slow(self, key: str, value: bytes, expires: float | None) -> None:
        """Insert a new key, or overwrite one under a byte budget."""
        encoded = encode_key(key, self._max_key_bytes)
        shard = self._shards[shard_index(encoded, self._nshards)]
        charge = len(encoded) + len(value)
        if charge > shard.budget:
            raise ValueTooLarge(
                f"key and value are {charge} bytes; each shard holds at most {shard.budget}",
                size=charge,
                limit=shard.budget,
            )
        evicted: list[tuple[str, bytes, EvictionCause]] = []
        shard.acquire()
        try:
            index = self._index
            node = index.get(key)
            if node is not None:
                shard.nbytes += len(value) - len(node.value)
                self._move_to_front(shard, node)
            else:
                head = shard.head
                if shard.size >= shard.capacity:
                    # Evict the least recently used node and make it the sentinel;
                    # the old sentinel, just before the most recent item, takes
                    # the new one (see put).
                    tail = head.prev
                    old_key = tail.key
                    old_expires = tail.expires
                    cause = (
                        EvictionCause.EXPIRED
                        if old_expires is not None and old_expires <= self._clock()
                        else EvictionCause.CAPACITY
                    )
                    self._count_eviction(shard, cause)
                    if self._on_evict is not None:
                        evicted.append((old_key, tail.value, cause))
                    del index[old_key]
                    shard.nbytes -= key_bytes(old_key) + len(tail.value)
                    tail.key = ""
                    tail.value = b""
                    shard.head = tail
                    node = head
                else:
                    node = Node()
                    node.shard = shard
                    first = head.next
                    node.prev = head
                    node.next = first
                    first.prev = node
                    head.next = node
                    shard.size += 1
                node.key = key
                shard.nbytes += charge
                index[key] = node
            node.value = value
            node.expires = expires
            while shard.nbytes > shard.budget:
                # The new item alone fits (checked above), so the loop stops before it.
                self._unlink(shard, shard.head.prev, EvictionCause.BYTES, evicted)
        finally:
            shard.release()
            if evicted:
                self._notify(evicted)

    def __setitem__(self, key: str, value: bytes) -> None:
        """``m[key] = value``: ``put`` without a TTL."""
        self.put(key, value)

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it was present (expired keys count as absent).

        Cost: O(1).

        >>> m = ShardedMap(); m.put("k", b"v")
        >>> m.delete("k"), m.delete("k")
        (True, False)
        """
        return self.pop(key, None) is not None

    def pop(
        self, key: str, default: bytes | None = None, *, now: float | None = None
    ) -> bytes | None:
        """Remove *key* and return its value, or return *default*. Atomic. Cost: O(1).

        An expired key is removed too, and answers *default*; ``now`` (default:
        the clock) decides whether it has expired, so replicas applying the same
        delete with the same ``now`` answer the same."""
        try:
            hint = self._index.get(key)
        except TypeError:  # unhashable: zero cost unless raised
            raise InvalidKey(f"key must be str, not {type(key).__name__}") from None
        if hint is not None:
            shard = hint.shard  # a node never leaves the shard of the key it was made for
        else:
            shard = self._shards[shard_index(encode_key(key, self._max_key_bytes), self._nshards)]
        evicted: list[tuple[str, bytes, EvictionCause]] = []
        shard.acquire()
        try:
            node = self._index.get(key)
            if node is None:
                return default
            value = node.value
            expires = node.expires
            live = expires is None or expires > (self._clock() if now is None else now)
            self._unlink(shard, node, None if live else EvictionCause.EXPIRED, evicted)
            return value if live else default
        finally:
            shard.release()
            if evicted:
                self._notify(evicted)

    def __delitem__(self, key: str) -> None:
        """``del m[key]``: raises KeyNotFound if absent."""
        if not self.delete(key):
            raise KeyNotFound(key)

    def touch(self, keys: Iterable[str], *, now: float | None = None) -> int:
        """Make each present key the most recently used of its shard, in the order
        given; return how many were present.

        This is how replicas apply a batch of reads made elsewhere (a replicated
        ``TOUCH``) without reading values. Expired keys are not revived; ``now``
        (default: the clock) decides which are expired, so replicas applying the
        same command with the same ``now`` move the same keys.
        Cost: O(len(keys)).
        """
        touched = 0
        if now is None:
            now = self._clock()
        for key in keys:
            try:
                node = self._index.get(key)
            except TypeError:  # unhashable: zero cost unless raised
                raise InvalidKey(f"key must be str, not {type(key).__name__}") from None
            if node is None:
                continue
            shard = node.shard
            shard.acquire()
            try:
                if node.key == key:
                    expires = node.expires
                    if expires is None or expires > now:
                        self._move_to_front(shard, node)
                        touched += 1
            finally:
                shard.release()
        return touched

    def expires_at(self, key: str) -> float | None:
        """Return the absolute expiry time of a live *key*, or None if it never expires.

        Raises KeyNotFound if the key is absent or expired. Does not change recency.
        """
        try:
            node = self._index.get(key)
        except TypeError:  # unhashable: zero cost unless raised
            raise InvalidKey(f"key must be str, not {type(key).__name__}") from None
        if node is not None:
            shard = node.shard
            shard.acquire()
            try:
                if node.key == key:
                    expires = node.expires
                    if expires is None or expires > self._clock():
                        return expires
            finally:
                shard.release()
        raise KeyNotFound(key)

    def purge_expired(self, *, now: float | None = None) -> int:
        """Remove every item expired at ``now`` (default: the clock); return how
        many. Cost: O(n), one shard locked at a time. Expired items are otherwise
        removed lazily, when read or when they reach the tail of a full shard."""
        purged = 0
        fixed_now = now
        for shard in self._shards:
            evicted: list[tuple[str, bytes, EvictionCause]] = []
            shard.acquire()
            try:
                now = self._clock() if fixed_now is None else fixed_now
                head = shard.head
                node = head.prev  # oldest first, so callbacks see eviction order
                while node is not head:
                    before = node.prev
                    expires = node.expires
                    if expires is not None and expires <= now:
                        self._unlink(shard, node, EvictionCause.EXPIRED, evicted)
                        purged += 1
                    node = before
            finally:
                shard.release()
            if evicted:
                self._notify(evicted)
        return purged

    def clear(self) -> None:
        """Remove every item. Counters are kept. Cost: O(n)."""
        self._lock_all()
        try:
            self._clear_locked()
        finally:
            self._unlock_all()

    # -------------------------------------------------------------- snapshots

    def snapshot(self) -> bytes:
        """Serialise the whole map, recency order and expiry times included, in
        the versioned format of :mod:`lrukv.snapshot`.

        All shard locks are held only while references are copied; encoding runs
        after they are released. Expired-but-unreaped items are included, so a
        restored map is exactly this one. Cost: O(total bytes).

        >>> m = ShardedMap(shards=2, items_per_shard=4); m.put("a", b"1"); m.put("b", b"2")
        >>> m.get("a")
        b'1'
        >>> copy = ShardedMap.from_snapshot(m.snapshot())
        >>> list(copy.items()) == list(m.items())
        True
        """
        self._lock_all()
        try:
            entries = tuple(tuple(shard.entries_lru_first()) for shard in self._shards)
        finally:
            self._unlock_all()
        return snapshot_format.encode(
            snapshot_format.SnapshotData(
                self._nshards, self._items_per_shard, self._max_bytes, entries
            )
        )

    def restore(self, blob: bytes, *, strict: bool = True) -> None:
        """Replace all state with the snapshot in *blob*; previous items are discarded.

        With ``strict`` (the default, and what replicas must use) the snapshot's
        shards, items per shard and max_bytes must equal this map's, else
        SnapshotMismatch. Without it, the entries are re-inserted oldest first
        and this map's limits apply, evicting as a put would. The blob is fully
        verified before anything changes: on any error the map is untouched.
        Counters are kept.
        """
        data = snapshot_format.decode(blob)
        mine = (self._nshards, self._items_per_shard, self._max_bytes)
        theirs = (data.shards, data.items_per_shard, data.max_bytes)
        if strict and theirs != mine:
            raise SnapshotMismatch(
                "snapshot geometry (shards, items_per_shard, max_bytes) is "
                f"{theirs}, this store's is {mine}"
            )
        # Validate every entry before touching state, so a bad blob changes nothing.
        checked = [
            [
                (key, encode_key(key, self._max_key_bytes), value, expires)
                for key, value, expires in shard_entries
            ]
            for shard_entries in data.entries
        ]
        if strict:
            for number, shard_entries in enumerate(checked):
                if len(shard_entries) > self._items_per_shard:
                    raise SnapshotMismatch(f"shard {number} holds more items than its capacity")
                for key, encoded, _value, _expires in shard_entries:
                    if shard_index(encoded, self._nshards) != number:
                        raise SnapshotMismatch(f"key {key!r} is stored in the wrong shard")
                shard_bytes = sum(
                    len(encoded) + len(value) for _k, encoded, value, _e in shard_entries
                )
                if shard_bytes > self._shards[number].budget:
                    raise SnapshotMismatch(f"shard {number} exceeds this store's byte budget")
        self._lock_all()
        try:
            self._clear_locked()
            if strict:
                for shard, shard_entries in zip(self._shards, checked, strict=True):
                    for key, encoded, value, expires in shard_entries:
                        self._insert_front_locked(shard, key, len(encoded), value, expires)
        finally:
            self._unlock_all()
        if not strict:
            # Oldest first across all shards is only an approximation of global
            # recency, but within each shard the order is exact.
            for shard_entries in checked:
                for key, _encoded, value, expires in shard_entries:
                    self.put(key, value, expires_at=expires)

    @classmethod
    def from_snapshot(
        cls,
        blob: bytes,
        *,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        max_value_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
        on_evict: EvictionCallback | None = None,
    ) -> ShardedMap:
        """Build a new map with the snapshot's geometry and contents."""
        data = snapshot_format.decode(blob)
        store = cls(
            data.shards,
            data.items_per_shard,
            max_bytes=data.max_bytes,
            max_key_bytes=max_key_bytes,
            max_value_bytes=max_value_bytes,
            clock=clock,
            on_evict=on_evict,
        )
        store.restore(blob)
        return store

    # ------------------------------------------------------------------ stats

    @property
    def shards(self) -> int:
        """Number of shards."""
        return self._nshards

    @property
    def items_per_shard(self) -> int:
        """Item capacity of each shard."""
        return self._items_per_shard

    @property
    def capacity(self) -> int:
        """Total item capacity: shards x items_per_shard."""
        return self._nshards * self._items_per_shard

    @property
    def max_bytes(self) -> int | None:
        """Total byte budget (split evenly across shards), or None."""
        return self._max_bytes

    @property
    def max_key_bytes(self) -> int:
        """Longest key accepted, in UTF-8 bytes."""
        return self._max_key_bytes

    @property
    def max_value_bytes(self) -> int | None:
        """Largest value accepted, or None for no limit beyond the byte budget."""
        return None if self._max_value_bytes == UNBOUNDED else self._max_value_bytes

    def stats(self) -> Stats:
        """Counters since creation, read one shard at a time. Cost: O(shards)."""
        hits = misses = 0
        by_cause = dict.fromkeys(EvictionCause, 0)
        sizes: list[int] = []
        nbytes: list[int] = []
        for shard in self._shards:
            shard.acquire()
            try:
                hits += shard.hits
                misses += shard.misses
                by_cause[EvictionCause.CAPACITY] += shard.evicted_capacity
                by_cause[EvictionCause.BYTES] += shard.evicted_bytes
                by_cause[EvictionCause.EXPIRED] += shard.evicted_expired
                sizes.append(shard.size)
                nbytes.append(shard.nbytes if self._max_bytes is not None else shard.sum_bytes())
            finally:
                shard.release()
        return Stats(
            hits=hits,
            misses=misses,
            evictions=by_cause,
            size=sum(sizes),
            bytes=sum(nbytes),
            shard_sizes=tuple(sizes),
            shard_bytes=tuple(nbytes),
        )

    def __repr__(self) -> str:
        return (
            f"ShardedMap(shards={self._nshards}, items_per_shard={self._items_per_shard}, "
            f"max_bytes={self._max_bytes}, len={len(self)})"
        )

    def _check(self) -> None:
        """Assert every internal invariant. For tests: takes all locks, O(n)."""
        self._lock_all()
        try:
            seen = 0
            for number, shard in enumerate(self._shards):
                head = shard.head
                count = total = 0
                node = head.next
                prev = head
                while node is not head:
                    assert node.prev is prev, f"shard {number}: broken back link at {node.key!r}"
                    assert node.shard is shard, f"{node.key!r} points at another shard"
                    assert node.key, "a dead node is still linked"
                    assert self._index.get(node.key) is node, f"{node.key!r} not indexed"
                    encoded = node.key.encode("utf-8")
                    assert shard_index(encoded, self._nshards) == number, (
                        f"{node.key!r} is in shard {number}, it hashes elsewhere"
                    )
                    count += 1
                    total += len(encoded) + len(node.value)
                    prev = node
                    node = node.next
                    assert count <= shard.capacity, f"shard {number} over capacity"
                assert head.prev is prev, f"shard {number}: tail link broken"
                assert head.shard is shard and head.key == "", f"shard {number}: bad sentinel"
                assert count == shard.size, f"shard {number}: size {shard.size}, list {count}"
                if self._max_bytes is not None:
                    assert total == shard.nbytes, f"shard {number}: {shard.nbytes} != {total} bytes"
                assert total <= shard.budget, f"shard {number} over its byte budget"
                seen += count
            assert seen == len(self._index), f"index has {len(self._index)}, lists {seen}"
        finally:
            self._unlock_all()

    # -------------------------------------------------------------- internals

    def _expiry(self, ttl: float | None, expires_at: float | None) -> float:
        if ttl is not None and expires_at is not None:
            raise InvalidTTL("give ttl or expires_at, not both")
        number = ttl if ttl is not None else expires_at
        # Name the argument the caller gave: a server passes a client's ?ttl= here.
        what = "ttl" if ttl is not None else "expires_at"
        unit = "seconds" if ttl is not None else "seconds since the epoch"
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidTTL(f"{what} must be a number of {unit}, not {type(number).__name__}")
        if not math.isfinite(number) or number <= 0:
            shown = f"{number:g}" if isinstance(number, float) else repr(number)
            raise InvalidTTL(f"{what} must be a positive number of {unit}, not {shown}")
        return float(self._clock() + number if ttl is not None else number)

    def _move_to_front(self, shard: Shard, node: Node) -> None:
        head = shard.head
        node.prev.next = node.next
        node.next.prev = node.prev
        first = head.next
        node.prev = head
        node.next = first
        first.prev = node
        head.next = node

    def _insert_front_locked(
        self, shard: Shard, key: str, key_len: int, value: bytes, expires: float | None
    ) -> None:
        node = shard.new_node(key, value, expires)
        head = shard.head
        first = head.next
        node.prev = head
        node.next = first
        first.prev = node
        head.next = node
        shard.size += 1
        shard.nbytes += key_len + len(value)
        self._index[key] = node

    def _unlink(
        self,
        shard: Shard,
        node: Node,
        cause: EvictionCause | None,
        evicted: list[tuple[str, bytes, EvictionCause]],
    ) -> None:
        """Remove *node* (shard lock held). ``cause`` None means an explicit delete."""
        node.prev.next = node.next
        node.next.prev = node.prev
        key = node.key
        del self._index[key]
        shard.size -= 1
        shard.nbytes -= key_bytes(key) + len(node.value)
        if cause is not None:
            self._count_eviction(shard, cause)
            if self._on_evict is not None:
                evicted.append((node.key, node.value, cause))
        node.key = ""  # marks the node dead for threads holding a stale index hint
        node.value = b""

    @staticmethod
    def _count_eviction(shard: Shard, cause: EvictionCause) -> None:
        if cause is EvictionCause.CAPACITY:
            shard.evicted_capacity += 1
        elif cause is EvictionCause.BYTES:
            shard.evicted_bytes += 1
        else:
            shard.evicted_expired += 1

    def _notify(self, evicted: list[tuple[str, bytes, EvictionCause]]) -> None:
        callback = self._on_evict
        if callback is not None:
            for key, value, cause in evicted:
                callback(key, value, cause)

    def _clear_locked(self) -> None:
        for shard in self._shards:
            node = shard.head.next
            while node is not shard.head:
                node.key = ""
                node = node.next
            shard.reset()
        self._index.clear()

    def _lock_all(self) -> None:
        for shard in self._shards:
            shard.acquire()

    def _unlock_all(self) -> None:
        for shard in reversed(self._shards):
            shard.release()
