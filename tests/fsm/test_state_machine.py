"""StoreFSM: deterministic apply, snapshots that keep recency, strict restore."""

from __future__ import annotations

import random

import pytest

import lrukv
from lrukv.errors import CorruptSnapshot
from lrukv_server.fsm import (
    Batch,
    Command,
    Config,
    ConfigMismatch,
    Delete,
    Noop,
    Purge,
    Put,
    StoreFSM,
    Touch,
    commands,
)


def _replica(clock: float = 1_000.0) -> StoreFSM:
    # A replica's own clock must not matter: each gets a different one.
    store = lrukv.ShardedMap(4, 8, clock=lambda: clock, reap_on_read=False)
    return StoreFSM(store)


def _digest(fsm: StoreFSM) -> list[list[tuple[str, bytes, float | None]]]:
    """(key, value, expiry) per shard in recency order: what eviction depends on."""
    from lrukv import snapshot as fmt

    return [list(shard) for shard in fmt.decode(fsm.store.snapshot()).entries]


def _workload(seed: int, n: int = 3_000) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    t = 1_000.0
    for _ in range(n):
        t += rng.random()
        key = f"k{rng.randrange(80)}"
        roll = rng.random()
        command: Command
        if roll < 0.5:
            expires = t + rng.uniform(-5, 20) if rng.random() < 0.3 else None
            command = Put(key, b"%d" % rng.randrange(10**6), expires)
        elif roll < 0.65:
            command = Delete(key)
        elif roll < 0.9:
            command = Touch(tuple(f"k{rng.randrange(80)}" for _ in range(rng.randrange(1, 6))))
        elif roll < 0.95:
            command = Purge()
        else:
            command = Batch((Put(key, b"b"), Touch((key,)), Delete(f"k{rng.randrange(80)}")))
        out.append(commands.encode(command, time=t))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replicas_with_different_clocks_reach_the_same_state_at_every_index(seed: int) -> None:
    log = _workload(seed)
    a, b = _replica(clock=0.0), _replica(clock=9e9)
    for index, data in enumerate(log, start=1):
        assert a.apply(data, index) == b.apply(data, index)
        if index % 250 == 0:
            assert _digest(a) == _digest(b)
    assert _digest(a) == _digest(b)


def test_a_snapshot_restores_contents_recency_and_index_exactly() -> None:
    source = _replica()
    for index, data in enumerate(_workload(7, 500), start=1):
        source.apply(data, index)
    copy = _replica()
    copy.restore(source.snapshot())
    assert copy.last_applied == 500
    assert _digest(copy) == _digest(source)
    # and from there both go on identically
    for index, data in enumerate(_workload(8, 300), start=501):
        assert source.apply(data, index) == copy.apply(data, index)
    assert _digest(copy) == _digest(source)


def test_restore_refuses_another_geometry_and_damage_changing_nothing() -> None:
    source = StoreFSM(lrukv.ShardedMap(2, 4))
    source.apply_command(Put("a", b"1"), 1, time=0.0)
    target = _replica()
    target.apply_command(Put("mine", b"x"), 1, time=0.0)
    with pytest.raises(ConfigMismatch, match="shards=2, items_per_shard=4"):
        target.restore(source.snapshot())
    damaged = bytearray(_replica().snapshot())
    damaged[-1] ^= 0xFF
    with pytest.raises(CorruptSnapshot):
        target.restore(bytes(damaged))
    assert target.store.get("mine") == b"x"
    assert target.last_applied == 1


def test_indexes_must_increase() -> None:
    fsm = _replica()
    fsm.apply_command(Noop(), 5, time=0.0)
    with pytest.raises(ValueError, match="not after the last applied 5"):
        fsm.apply_command(Noop(), 5, time=0.0)


def test_the_first_config_establishes_the_geometry_and_a_differing_store_is_refused() -> None:
    fsm = _replica()
    fsm.apply_command(Config(4, 8), 1, time=0.0)
    fsm.apply_command(Config(4, 9), 2, time=0.0)  # later ones change nothing
    assert fsm.cluster_config == Config(4, 8)
    other = _replica()  # a 4 x 8 store
    with pytest.raises(ConfigMismatch, match="shards=4, items_per_shard=9"):
        other.apply_command(Config(4, 9), 1, time=0.0)


def test_touch_and_purge_use_the_command_time_not_the_replica_clock() -> None:
    fsm = _replica(clock=0.0)  # by its own clock nothing has expired
    fsm.apply_command(Put("old", b"1", expires_at=50.0), 1, time=10.0)
    fsm.apply_command(Put("new", b"2"), 2, time=10.0)
    assert fsm.apply_command(Touch(("old", "new")), 3, time=100.0) == 1  # "old" is expired
    assert fsm.apply_command(Purge(), 4, time=100.0) == 1
    assert len(fsm.store) == 1 and fsm.store.peek("new") == b"2"


def test_a_replica_read_of_an_expired_key_removes_nothing() -> None:
    fsm = _replica(clock=100.0)
    fsm.apply_command(Put("gone", b"1", expires_at=50.0), 1, time=10.0)
    assert fsm.store.get("gone") is None  # expired by the reader's clock
    assert len(fsm.store) == 1  # but only a replicated command may remove it


def test_delete_answers_the_removed_value() -> None:
    fsm = _replica()
    fsm.apply_command(Put("k", b"v"), 1, time=0.0)
    assert fsm.apply_command(Delete("k"), 2, time=0.0) == b"v"
    assert fsm.apply_command(Delete("k"), 3, time=0.0) is None


def test_the_member_directory_and_cluster_config_travel_in_snapshots() -> None:
    from lrukv_server.fsm import Forget, Member

    fsm = _replica()
    a = Member("n1", "127.0.0.1:7001", "127.0.0.1:8001", "127.0.0.1:9001")
    b = Member("n2", "127.0.0.1:7002", "127.0.0.1:8002", "127.0.0.1:9002")
    fsm.apply_command(Config(4, 8), 1, time=0.0)
    fsm.apply_command(Batch((a, b)), 2, time=0.0)
    assert fsm.apply_command(Forget(a.raft_addr), 3, time=0.0) is True
    copy = _replica()
    copy.restore(fsm.snapshot())
    assert copy.members == {b.raft_addr: b}
    assert copy.cluster_config == Config(4, 8)
    assert copy.last_applied == 3
