"""ShardedMap against a reference model, under Hypothesis's stateful testing.

Every rule applies the same operation to both and compares results; after every
step the map's own ``_check()`` asserts its internal invariants and the two
agree on contents, recency order, length and statistics. Eviction order, TTL
under a fake clock, the byte budget and snapshot/restore are all exercised.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lrukv import EvictionCause, KeyNotFound, ShardedMap, ValueTooLarge
from tests.core.model import ModelMap

# Few keys, so that shards fill, keys collide and evictions happen; some are
# multi-byte in UTF-8, which matters for the byte budget.
KEYS = [f"k{i}" for i in range(14)] + ["ключ", "🔑", "a" * 40, "naïve"]
keys = st.sampled_from(KEYS)
values = st.binary(max_size=24)
ttls = st.one_of(st.none(), st.floats(min_value=0.5, max_value=30, allow_nan=False))


class ShardedMapMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock_now = 1_000.0
        self.evicted: list[tuple[str, bytes, EvictionCause]] = []

    @initialize(
        shards=st.integers(1, 4),
        items_per_shard=st.integers(1, 5),
        budgeted=st.booleans(),
        budget_per_shard=st.integers(60, 160),
        callback=st.booleans(),
    )
    def create(
        self,
        shards: int,
        items_per_shard: int,
        budgeted: bool,
        budget_per_shard: int,
        callback: bool,
    ) -> None:
        max_bytes = shards * budget_per_shard if budgeted else None
        # Without a byte budget and a callback, puts take the map's inlined fast
        # paths; with either, the general one. Both must match the model.
        self.callback = callback
        self.real = ShardedMap(
            shards,
            items_per_shard,
            max_bytes=max_bytes,
            clock=lambda: self.clock_now,
            on_evict=(lambda k, v, c: self.evicted.append((k, v, c))) if callback else None,
        )
        self.model = ModelMap(shards, items_per_shard, max_bytes, now=self.clock_now)

    def refused_as_too_large(self, key: str, value: bytes, **kwargs: float) -> bool:
        """An item larger than a shard's byte budget is refused, changing nothing."""
        budget = self.model.budget
        if budget is None or len(key.encode()) + len(value) <= budget:
            return False
        with pytest.raises(ValueTooLarge):
            self.real.put(key, value, **kwargs)
        return True

    @rule(key=keys, value=values, ttl=ttls)
    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.refused_as_too_large(key, value):
            return
        self.real.put(key, value, ttl)
        self.model.put(key, value, None if ttl is None else self.clock_now + ttl)

    @rule(key=keys, value=values, seconds=st.floats(min_value=-5, max_value=30))
    def put_expiring_at(self, key: str, value: bytes, seconds: float) -> None:
        expires_at = self.clock_now + seconds  # may be in the past: stored, already expired
        if self.refused_as_too_large(key, value, expires_at=expires_at):
            return
        self.real.put(key, value, expires_at=expires_at)
        self.model.put(key, value, expires_at)

    @rule(key=keys)
    def expires_at(self, key: str) -> None:
        item = self.model.shard(key).get(key)
        if item is None or self.model.expired(item):
            with pytest.raises(KeyNotFound):
                self.real.expires_at(key)
        else:
            assert self.real.expires_at(key) == item[1]

    @rule(key=keys)
    def get(self, key: str) -> None:
        assert self.real.get(key) == self.model.get(key)

    @rule(key=keys)
    def peek(self, key: str) -> None:
        assert self.real.peek(key) == self.model.get(key, touch=False)

    @rule(key=keys)
    def delete(self, key: str) -> None:
        assert self.real.delete(key) == self.model.delete(key)

    @rule(key=keys)
    def contains(self, key: str) -> None:
        assert (key in self.real) == self.model.contains(key)

    @rule(batch=st.lists(keys, max_size=5))
    def touch(self, batch: list[str]) -> None:
        assert self.real.touch(batch) == self.model.touch(batch)

    @rule(seconds=st.floats(min_value=0.1, max_value=20, allow_nan=False))
    def advance_clock(self, seconds: float) -> None:
        self.clock_now += seconds
        self.model.now = self.clock_now

    @rule()
    def purge_expired(self) -> None:
        assert self.real.purge_expired() == self.model.purge_expired()

    @rule()
    def snapshot_and_restore(self) -> None:
        blob = self.real.snapshot()
        copy = ShardedMap.from_snapshot(blob, clock=lambda: self.clock_now)
        copy._check()
        assert list(copy.items()) == list(self.real.items())
        assert len(copy) == len(self.real)
        # restore() into the live map discards its state and brings back the same.
        saved = [shard.copy() for shard in self.model.data]
        self.real.put("k0", b"scratch")  # state that restore must throw away
        self.model.put("k0", b"scratch", None)
        self.real.restore(blob)
        self.model.data = saved

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        self.real.clear()
        self.model.clear()

    @invariant()
    def agrees_with_model(self) -> None:
        self.real._check()
        assert list(self.real.items()) == self.model.items()
        assert len(self.real) == len(self.model)
        stats = self.real.stats()
        assert stats.hits == self.model.hits
        assert stats.misses == self.model.misses
        assert dict(stats.evictions) == self.model.evictions
        if self.callback:
            assert self.evicted == self.model.evicted_log


ShardedMapMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestShardedMapAgainstModel = ShardedMapMachine.TestCase
