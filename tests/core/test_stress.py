"""Readers, writers, deleters, touchers, iterators and snapshotters at once; the
map's invariants must hold at the end and no thread may fail or hang."""

from __future__ import annotations

import random
import threading
import time

from lrukv import ShardedMap


def test_concurrent_mixed_operations_keep_every_invariant() -> None:
    clock_lock = threading.Lock()
    now = [1_000.0]

    def clock() -> float:
        with clock_lock:
            return now[0]

    m = ShardedMap(shards=8, items_per_shard=64, max_bytes=8 * 3_000, clock=clock)
    keys = [f"key-{i}" for i in range(1_500)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def run(body: object) -> threading.Thread:
        def loop() -> None:
            rng = random.Random(threading.get_ident())
            try:
                while not stop.is_set():
                    body(rng)  # type: ignore[operator]
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def writer(rng: random.Random) -> None:
        ttl = rng.choice([None, None, 0.5, 5.0])
        m.put(rng.choice(keys), rng.randbytes(rng.randrange(0, 60)), ttl)

    def reader(rng: random.Random) -> None:
        value = m.get(rng.choice(keys))
        assert value is None or isinstance(value, bytes)

    def deleter(rng: random.Random) -> None:
        m.delete(rng.choice(keys))

    def toucher(rng: random.Random) -> None:
        m.touch(rng.sample(keys, 5))
        m.peek(rng.choice(keys))

    def iterator(rng: random.Random) -> None:
        seen = []
        for key, value in m.items():
            seen.append(key)
            assert isinstance(value, bytes)
            if rng.random() < 0.01:
                break  # abandon it halfway
        assert len(seen) == len(set(seen))

    def maintainer(rng: random.Random) -> None:
        with clock_lock:
            now[0] += 0.05
        if rng.random() < 0.2:
            m.purge_expired()
        if rng.random() < 0.05:
            ShardedMap.from_snapshot(m.snapshot(), clock=clock)._check()
        m.stats()

    workers = [run(body) for body in (writer, writer, reader, reader, deleter, toucher)]
    workers += [run(iterator), run(maintainer)]
    time.sleep(3.0)
    stop.set()
    for thread in workers:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a worker hung"
    assert errors == []
    m._check()
    stats = m.stats()
    assert stats.hits + stats.misses > 0
    assert len(m) <= m.capacity


def test_one_shard_under_heavy_contention_loses_nothing() -> None:
    """Every thread fights for the same shard lock; each thread's own keys must
    read back exactly its last write, and the map must stay consistent."""
    m = ShardedMap(shards=1, items_per_shard=10_000)
    errors: list[str] = []

    def worker(number: int) -> None:
        for i in range(3_000):
            key = f"t{number}-{i % 50}"
            m.put(key, b"%d" % i)
            if m.get(key) != b"%d" % i:
                errors.append(f"{key} lost write {i}")
            m.touch([key])
            if i % 7 == 0:
                m.delete(key)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a thread never got the shard lock"
    assert errors == []
    m._check()


def test_a_held_shard_makes_others_wait_and_its_release_wakes_them() -> None:
    m = ShardedMap(shards=1, items_per_shard=10)
    m.put("k", b"v")
    shard = m._shards[0]
    shard.acquire()  # as if another thread were inside an operation
    result: list[bytes | None] = []
    reader = threading.Thread(target=lambda: result.append(m.get("k")))
    reader.start()
    reader.join(timeout=0.3)
    assert reader.is_alive(), "a get ran while the shard was held"
    assert result == []
    shard.release()
    reader.join(timeout=10)
    assert result == [b"v"]
    assert not shard.locked()
