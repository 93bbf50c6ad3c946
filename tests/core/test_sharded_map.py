"""ShardedMap behaviour a user depends on: recency, eviction, TTL, byte budget,
bad input, iteration that never blocks writers, and the eviction hook."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable

import pytest

import lrukv
from lrukv import (
    EvictionCause,
    InvalidConfig,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    KeyNotFound,
    ShardedMap,
    ValueTooLarge,
)


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def keys_in_shard(shard: int, shards: int, count: int) -> list[str]:
    """Keys that all hash to *shard*, so tests can fill one shard on purpose."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        key = f"key-{i}"
        if zlib.crc32(key.encode()) % shards == shard:
            found.append(key)
        i += 1
    return found


# ---------------------------------------------------------------- basics


def test_put_get_delete_round_trip_binary_values() -> None:
    m = ShardedMap()
    value = bytes(range(256))
    m.put("bin", value)
    assert m.get("bin") == value
    assert m["bin"] == value
    assert "bin" in m
    assert len(m) == 1
    assert m.delete("bin") is True
    assert m.get("bin") is None
    assert m.delete("bin") is False
    with pytest.raises(KeyNotFound):
        m["bin"]
    with pytest.raises(KeyError):  # KeyNotFound is a KeyError too
        del m["bin"]


def test_overwrite_replaces_value_without_growing() -> None:
    m = ShardedMap(shards=2, items_per_shard=2)
    m["k"] = b"1"
    m["k"] = b"2"
    assert m["k"] == b"2"
    assert len(m) == 1


def test_get_returns_default_and_pop_is_atomic_take() -> None:
    m = ShardedMap()
    assert m.get("absent", b"dflt") == b"dflt"
    m.put("k", b"v")
    assert m.pop("k") == b"v"
    assert m.pop("k", b"gone") == b"gone"


def test_unicode_keys_are_stored_by_their_utf8_length() -> None:
    m = ShardedMap(max_key_bytes=8)
    m.put("ключ", b"v")  # 4 characters, 8 bytes: fits exactly
    assert m.get("ключ") == b"v"
    with pytest.raises(InvalidKey, match="9 bytes"):
        m.put("ключa", b"v")


# ---------------------------------------------------------------- recency


def test_full_shard_evicts_its_least_recently_used_key() -> None:
    m = ShardedMap(shards=4, items_per_shard=3)
    a, b, c, d = keys_in_shard(2, 4, 4)
    for key in (a, b, c):
        m.put(key, b"x")
    m.get(a)  # a becomes most recent; b is now the oldest
    m.put(d, b"x")
    assert b not in m
    assert all(key in m for key in (a, c, d))
    assert m.stats().evictions[EvictionCause.CAPACITY] == 1


def test_eviction_is_per_shard_other_shards_keep_their_keys() -> None:
    m = ShardedMap(shards=4, items_per_shard=2)
    in_zero = keys_in_shard(0, 4, 5)
    in_one = keys_in_shard(1, 4, 2)
    for key in in_one + in_zero:
        m.put(key, b"x")
    assert all(key in m for key in in_one)
    assert m.stats().shard_sizes == (2, 2, 0, 0)


def test_peek_and_contains_and_iteration_do_not_change_recency() -> None:
    m = ShardedMap(shards=1, items_per_shard=2)
    m.put("old", b"1")
    m.put("new", b"2")
    assert m.peek("old") == b"1"
    assert "old" in m
    assert list(m.keys()) == ["new", "old"]
    m.put("third", b"3")  # "old" is still least recent
    assert "old" not in m


def test_touch_makes_keys_most_recent_in_order_given() -> None:
    m = ShardedMap(shards=1, items_per_shard=3)
    for key in ("a", "b", "c"):
        m.put(key, b"x")
    assert m.touch(["a", "missing", "b"]) == 2
    assert list(m.keys()) == ["b", "a", "c"]


def test_keys_and_items_list_most_recent_first_within_a_shard() -> None:
    m = ShardedMap(shards=1, items_per_shard=10)
    for i in range(5):
        m.put(f"k{i}", str(i).encode())
    m.get("k1")
    assert list(m.keys()) == ["k1", "k4", "k3", "k2", "k0"]
    assert dict(m.items())["k3"] == b"3"
    assert sorted(m.values()) == [b"0", b"1", b"2", b"3", b"4"]


# ---------------------------------------------------------------- TTL


def test_ttl_expires_at_the_fake_clock_time() -> None:
    clock = FakeClock()
    m = ShardedMap(clock=clock)
    m.put("session", b"t", ttl=30)
    assert m.expires_at("session") == 1_030.0
    clock.now = 1_029.999
    assert m.get("session") == b"t"
    clock.now = 1_030.0
    assert m.get("session") is None
    assert "session" not in m
    stats = m.stats()
    assert stats.evictions[EvictionCause.EXPIRED] == 1
    assert stats.misses == 1


def test_absolute_expiry_and_overwrite_without_ttl_clears_it() -> None:
    clock = FakeClock()
    m = ShardedMap(clock=clock)
    m.put("k", b"v", expires_at=1_010.0)
    m.put("k", b"v2")  # a plain put makes the key permanent again
    clock.now = 5_000.0
    assert m.get("k") == b"v2"
    assert m.expires_at("k") is None


def test_expired_keys_are_invisible_to_iteration_and_purged_on_demand() -> None:
    clock = FakeClock()
    m = ShardedMap(clock=clock)
    m.put("short", b"1", ttl=1)
    m.put("long", b"2", ttl=100)
    m.put("forever", b"3")
    clock.now += 10
    assert sorted(m.keys()) == ["forever", "long"]
    assert len(m) == 3  # not yet reaped
    assert m.purge_expired() == 1
    assert len(m) == 2


def test_expired_tail_is_counted_as_expired_when_evicted_for_room() -> None:
    clock = FakeClock()
    m = ShardedMap(shards=1, items_per_shard=1, clock=clock)
    m.put("a", b"1", ttl=1)
    clock.now += 5
    m.put("b", b"2")
    assert m.stats().evictions == {
        EvictionCause.CAPACITY: 0,
        EvictionCause.BYTES: 0,
        EvictionCause.EXPIRED: 1,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0}, "ttl must be a positive number of seconds, not 0"),
        ({"ttl": -1}, "ttl must be a positive number of seconds, not -1"),
        ({"ttl": float("nan")}, "ttl must be a positive number of seconds, not nan"),
        ({"ttl": float("inf")}, "ttl must be a positive number of seconds, not inf"),
        ({"ttl": True}, "ttl must be a number of seconds, not bool"),
        ({"ttl": "10"}, "ttl must be a number of seconds, not str"),
        ({"expires_at": 0}, "expires_at must be a positive number of seconds since the epoch"),
        ({"ttl": 1, "expires_at": 5}, "give ttl or expires_at, not both"),
    ],
)
def test_bad_ttl_is_rejected_and_nothing_is_stored(kwargs: dict[str, object], message: str) -> None:
    m = ShardedMap()
    with pytest.raises(InvalidTTL) as error:
        m.put("k", b"v", **kwargs)  # type: ignore[arg-type]
    assert message in str(error.value)
    with pytest.raises(InvalidTTL) as checked:  # what a write-ahead log validates with
        m.check_put("k", b"v", **kwargs)  # type: ignore[arg-type]
    assert str(checked.value) == str(error.value)
    assert "k" not in m
    m._check()


# ---------------------------------------------------------------- bytes


def test_byte_budget_evicts_oldest_until_the_shard_fits() -> None:
    m = ShardedMap(shards=1, items_per_shard=100, max_bytes=30)
    m.put("a", b"x" * 9)  # 10 bytes
    m.put("b", b"x" * 9)  # 20
    m.put("c", b"x" * 9)  # 30: full to the byte
    m.put("d", b"x" * 19)  # 20 more: a and b must go
    assert list(m.keys()) == ["d", "c"]
    stats = m.stats()
    assert stats.evictions[EvictionCause.BYTES] == 2
    assert stats.bytes == 30


def test_growing_a_value_in_place_evicts_others_not_itself() -> None:
    m = ShardedMap(shards=1, items_per_shard=10, max_bytes=35)
    m.put("a", b"x" * 9)  # 10 bytes
    m.put("b", b"x" * 9)  # 20
    m.put("a", b"x" * 29)  # a grows to 30: 40 > 35, so b goes
    assert list(m.keys()) == ["a"]


def test_item_larger_than_a_shard_budget_is_refused() -> None:
    m = ShardedMap(shards=2, items_per_shard=10, max_bytes=100)  # 50 per shard
    with pytest.raises(ValueTooLarge) as caught:
        m.put("k", b"x" * 60)
    assert caught.value.limit == 50
    assert len(m) == 0


def test_value_size_limit() -> None:
    m = ShardedMap(max_value_bytes=4)
    m.put("ok", b"1234")
    with pytest.raises(ValueTooLarge, match="5 bytes"):
        m.put("big", b"12345")
    with pytest.raises(ValueTooLarge):
        m.check_put("big", b"12345")


def test_stats_report_bytes_and_sizes_without_a_budget() -> None:
    m = ShardedMap(shards=2, items_per_shard=10)
    m.put("ab", b"123")
    m.put("é", b"")  # two UTF-8 bytes
    stats = m.stats()
    assert stats.bytes == 5 + 2
    assert stats.size == 2
    assert sum(stats.shard_sizes) == 2


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("k" * 1025, "1025 bytes"),
        ("tab\there", "control character"),
        ("new\nline", "control character"),
        ("nul\x00", "control character"),
        ("del\x7f", "control character"),
        ("\ud800", "surrogate"),
        (b"bytes", "must be str"),
        (42, "must be str"),
        (None, "must be str"),
        (["list"], "must be str"),
    ],
)
def test_bad_keys_raise_invalid_key_everywhere(key: object, reason: str) -> None:
    m = ShardedMap()
    m.put("keep", b"v")
    operations: list[Callable[[], object]] = [
        lambda: m.put(key, b"v"),  # type: ignore[arg-type]
        lambda: m.get(key),  # type: ignore[arg-type]
        lambda: m.peek(key),  # type: ignore[arg-type]
        lambda: m.delete(key),  # type: ignore[arg-type]
        lambda: m.check_key(key),  # type: ignore[arg-type]
    ]
    for operation in operations:
        with pytest.raises(InvalidKey, match=reason):
            operation()
    assert key not in m
    assert list(m.keys()) == ["keep"]
    m._check()


def test_printable_unicode_and_spaces_are_valid_keys() -> None:
    m = ShardedMap()
    for key in ("with space", "emoji🔑", "nbsp\u00a0inside", "日本語", "a/b/c", "..", "%2F"):
        m.put(key, b"v")
        assert m.get(key) == b"v"
    m._check()


@pytest.mark.parametrize("value", ["text", bytearray(b"x"), memoryview(b"x"), 7, None])
def test_non_bytes_values_are_refused(value: object) -> None:
    m = ShardedMap()
    with pytest.raises(InvalidValue):
        m.put("k", value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # InvalidValue is also a TypeError
        m.put("k", value)  # type: ignore[arg-type]
    assert "k" not in m


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shards": 0},
        {"shards": -1},
        {"items_per_shard": 0},
        {"items_per_shard": -100},
        {"shards": 2.5},
        {"shards": True},
        {"max_bytes": -1},
        {"max_bytes": 0},
        {"max_bytes": 5, "shards": 10},
        {"max_value_bytes": -3},
        {"max_key_bytes": 0},
    ],
)
def test_bad_sizes_are_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidConfig):
        ShardedMap(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # InvalidConfig is also a ValueError
        lrukv.StoreConfig(**kwargs).validate()  # type: ignore[arg-type]


def test_store_config_builds_a_matching_map() -> None:
    config = lrukv.StoreConfig(shards=3, items_per_shard=7, max_bytes=300)
    store = config.build()
    assert (store.shards, store.items_per_shard, store.max_bytes) == (3, 7, 300)
    assert config.capacity == store.capacity == 21


# ---------------------------------------------------------------- eviction hook


def test_eviction_callback_sees_key_value_cause_and_may_reenter_the_map() -> None:
    seen: list[tuple[str, bytes, EvictionCause]] = []
    m: ShardedMap

    def on_evict(key: str, value: bytes, cause: EvictionCause) -> None:
        seen.append((key, value, cause))
        # Called after the lock is released, so using the map here cannot deadlock.
        m.put("evicted-count", str(len(seen)).encode())

    m = ShardedMap(shards=1, items_per_shard=2, on_evict=on_evict)
    m.put("a", b"1")
    m.put("b", b"2")
    m.put("c", b"3")
    assert seen[0] == ("a", b"1", EvictionCause.CAPACITY)
    m._check()


def test_deletes_are_not_evictions() -> None:
    seen: list[str] = []
    m = ShardedMap(on_evict=lambda k, v, c: seen.append(k))
    m.put("k", b"v")
    m.delete("k")
    m.clear()
    assert seen == []


# ---------------------------------------------------------------- iteration


def test_abandoned_iterator_holds_no_lock_and_blocks_no_writer() -> None:
    """The original service deadlocked when a stream consumer went away."""
    m = ShardedMap(shards=4, items_per_shard=100)
    for make_iterator in (m.keys, m.items, m.values):
        for i in range(200):
            m.put(f"k{i}", b"v")
        iterator = make_iterator()
        next(iterator)  # the consumer takes one item and stalls forever
        done = threading.Event()

        def writer(done: threading.Event = done) -> None:
            for i in range(400):  # touches every shard, including the one being read
                m.put(f"w{i}", b"v")
                m.delete(f"k{i % 200}")
            m.snapshot()
            m.clear()
            done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(timeout=10)
        assert done.is_set(), "a writer was blocked by an abandoned iterator"
        list(iterator)  # resuming later is still safe


def test_iteration_reports_each_key_once_while_writers_run() -> None:
    m = ShardedMap(shards=8, items_per_shard=1000)
    for i in range(2000):
        m.put(f"k{i}", b"v")
    seen = []
    for key in m:
        seen.append(key)
        m.put(f"new-{len(seen)}", b"v")  # writes during iteration
    assert len(seen) == len(set(seen))
    # Keys present from start to end (nothing evicts: shards are far from full)
    # are in every shard's copy, so each is reported.
    assert {f"k{i}" for i in range(2000)} <= set(seen)


def test_repr_mentions_geometry() -> None:
    assert "items_per_shard=100" in repr(ShardedMap())
