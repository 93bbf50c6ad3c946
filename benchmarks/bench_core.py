"""How fast is lrukv.ShardedMap against the LRU caches a Python shop already has?

    .venv/bin/python benchmarks/bench_core.py          # full run: benchmarks/results/core.*
    .venv/bin/python benchmarks/bench_core.py --smoke  # seconds; writes to a temp dir

Every contender runs in this one process on the same seeded operation streams,
interleaved and repeated (contender order rotates each round), so machine noise
hits all of them alike. One-thread streams are interleaved finely: each
contender has its own cache and they take turns over the stream, 5,000
operations each, so the runs a ratio compares are milliseconds apart. They are
timed in CPU time of the thread (time.thread_time_ns), so time the process
spends waiting for a CPU on a shared machine is not counted. Reported per
stream: the median ns/op and ops/s over the repeats, and the ratio of ops/s to
the OrderedDict LRU. Bytes per item is measured with tracemalloc while filling
each container to capacity with keys and values that already exist, so it
counts the container's own overhead. The load average before and after the run
goes into the report.

Streams (100k keys, capacity 50k):
  mixed  80% get / 20% put, keys drawn from a Zipf(0.99) distribution, warm cache
  puts   puts of uniformly random keys into a full cache: most of them evict
  evicting inserts  puts of keys that are not in the full cache (each was evicted
         since it was last put), so every one is an insert that evicts
  hits   gets of keys that are all present, in random order
  mixed, 8 threads  the mixed stream split over 8 threads (wall time: with the
         GIL this measures how each lock behaves under contention)

Contenders: a plain dict (no eviction, no lock: the floor), OrderedDict + one
lock (the baseline: the tightest plain LRU a user would write, closures with
bound methods, see ordereddict_lru), cachetools.LRUCache + lock, lru-dict (C) +
lock, lrukv.ShardedMap with 10 shards (its own per-shard locks).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cachetools
import lru

import lrukv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from benchmarks import machine_load

RESULTS = Path(__file__).resolve().parent / "results"


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes) -> None: ...


class PlainDict:
    """The floor: a dict with no eviction and no lock."""

    def __init__(self, capacity: int) -> None:
        self._data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self._data[key] = value


class Bound:
    """A cache made of two functions, so the benchmark calls them with no lookup."""

    __slots__ = ("get", "put")

    def __init__(
        self, get: Callable[[str], bytes | None], put: Callable[[str, bytes], None]
    ) -> None:
        self.get = get
        self.put = put


def ordereddict_lru(capacity: int) -> Cache:
    """The tightest plain LRU a user would write: closures over an OrderedDict and
    one Lock, its methods bound once; a put moves the key only when it was there
    (a new key is already last) and pops the oldest only on overflow."""
    data: OrderedDict[str, bytes] = OrderedDict()
    lock = threading.Lock()
    data_get, move_to_end, popitem = data.get, data.move_to_end, data.popitem

    def get(key: str) -> bytes | None:
        with lock:
            value = data_get(key)
            if value is not None:
                move_to_end(key)
            return value

    def put(key: str, value: bytes) -> None:
        with lock:
            if key in data:
                data[key] = value
                move_to_end(key)
            else:
                data[key] = value
                if len(data) > capacity:
                    popitem(last=False)

    return Bound(get, put)


class CachetoolsLRU:
    """cachetools.LRUCache with the lock its docs tell you to add."""

    def __init__(self, capacity: int) -> None:
        self._data: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(maxsize=capacity)
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._data[key] = value


class LruDictLRU:
    """lru-dict (a C extension) with a lock."""

    def __init__(self, capacity: int) -> None:
        self._data: lru.LRU[str, bytes] = lru.LRU(capacity)
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value: bytes | None = self._data.get(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._data[key] = value


def sharded_map(capacity: int) -> Cache:
    return lrukv.ShardedMap(shards=10, items_per_shard=capacity // 10)


CONTENDERS: dict[str, Callable[[int], Cache]] = {
    "dict (no LRU, no lock)": PlainDict,
    "OrderedDict + lock": ordereddict_lru,
    "cachetools.LRUCache + lock": CachetoolsLRU,
    "lru-dict + lock": LruDictLRU,
    "lrukv.ShardedMap (10 shards)": sharded_map,
}
BASELINE = "OrderedDict + lock"

Op = tuple[bool, str]  # (is_get, key)


@dataclass(frozen=True)
class Workload:
    name: str
    prefill: Sequence[str]
    ops: Sequence[Op]
    threads: int = 1


def zipf_sampler(rng: random.Random, n: int, s: float) -> Callable[[], int]:
    cumulative = list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))
    total = cumulative[-1]
    return lambda: bisect.bisect_left(cumulative, rng.random() * total)


def make_workloads(keys: int, capacity: int, ops: int, seed: int) -> list[Workload]:
    rng = random.Random(seed)
    names = [f"user:{i:08d}" for i in range(keys)]
    rng.shuffle(names)  # hot ranks land in random shards
    warm = names[:capacity]
    draw = zipf_sampler(rng, keys, 0.99)
    mixed = [(rng.random() < 0.8, names[draw()]) for _ in range(ops)]
    puts = [(False, names[rng.randrange(keys)]) for _ in range(ops)]
    hits = [(True, warm[rng.randrange(capacity)]) for _ in range(ops)]
    # The cold keys, then the warm ones, round and round: each key comes back after
    # `keys` puts of other keys, by which time even the fullest shard evicted it.
    cycle = names[capacity:] + warm
    inserts = [(False, cycle[n % len(cycle)]) for n in range(ops)]
    return [
        Workload("mixed", warm, mixed),
        Workload("puts", warm, puts),
        Workload("evicting inserts", warm, inserts),
        Workload("hits", warm, hits),
        Workload("mixed, 8 threads", warm, mixed, threads=8),
    ]


CHUNK = 5_000  # ops per turn when one-thread streams are interleaved (~5 ms)


def run_interleaved(
    factories: dict[str, Callable[[int], Cache]],
    order: Sequence[str],
    capacity: int,
    work: Workload,
    value: bytes,
) -> dict[str, float]:
    """Return ns/op of each contender for one pass of a one-thread stream.

    Every contender gets its own freshly prefilled cache, then they take turns
    over the stream, CHUNK operations each, in *order*: a contender's time is the
    sum of its chunks' thread CPU times. Runs compared are thus milliseconds
    apart, not a whole pass, so a shift in the machine's load (other tenants
    competing for caches and memory bandwidth) lands on all contenders alike.
    """
    caches = {name: factories[name](capacity) for name in order}
    for cache in caches.values():
        put = cache.put
        for key in work.prefill:
            put(key, value)
    elapsed = dict.fromkeys(order, 0)
    ops = work.ops
    gc.collect()
    gc.disable()
    try:
        for start in range(0, len(ops), CHUNK):
            chunk = ops[start : start + CHUNK]
            for name in order:
                get, put = caches[name].get, caches[name].put
                began = time.thread_time_ns()
                for is_get, key in chunk:
                    if is_get:
                        get(key)
                    else:
                        put(key, value)
                elapsed[name] += time.thread_time_ns() - began
    finally:
        gc.enable()
    return {name: ns / len(ops) for name, ns in elapsed.items()}


def run_once(factory: Callable[[int], Cache], capacity: int, work: Workload, value: bytes) -> float:
    """Return ns/op for one pass of the stream over a freshly prefilled cache."""
    cache = factory(capacity)
    put = cache.put
    for key in work.prefill:
        put(key, value)
    get = cache.get

    def replay(ops: Sequence[Op]) -> None:
        for is_get, key in ops:
            if is_get:
                get(key)
            else:
                put(key, value)

    gc.collect()
    gc.disable()
    try:
        if work.threads == 1:
            started = time.thread_time_ns()
            replay(work.ops)
            elapsed = time.thread_time_ns() - started
        else:
            # Threads share the GIL, so this is about lock behaviour under
            # contention (convoys), not parallel speed-up; wall time is the measure.
            share = len(work.ops) // work.threads
            start = threading.Barrier(work.threads + 1)

            def worker(part: Sequence[Op]) -> None:
                start.wait()
                replay(part)

            threads = [
                threading.Thread(target=worker, args=(work.ops[n * share : (n + 1) * share],))
                for n in range(work.threads)
            ]
            for thread in threads:
                thread.start()
            start.wait()
            started = time.perf_counter_ns()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter_ns() - started
    finally:
        gc.enable()
    return elapsed / len(work.ops)


def bytes_per_item(factory: Callable[[int], Cache], capacity: int) -> float:
    keys = [f"user:{i:08d}" for i in range(capacity)]
    values = [b"v" * 8 for _ in range(capacity)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = factory(capacity)
        for key, value in zip(keys, values, strict=True):
            cache.put(key, value)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del cache
    return (after - before) / capacity


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run into a temp dir")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--ops", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--capacity", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.ops, args.keys, args.capacity = 2, 5_000, 2_000, 1_000
        args.out = Path(tempfile.mkdtemp(prefix="lrukv-bench-core-"))

    value = b"x" * 100
    workloads = make_workloads(args.keys, args.capacity, args.ops, args.seed)
    names = list(CONTENDERS)
    load_before = machine_load.sample()
    samples: dict[tuple[str, str], list[float]] = {}
    for round_no in range(args.repeats):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for work in workloads:
            if work.threads == 1:
                timed = run_interleaved(CONTENDERS, order, args.capacity, work, value)
            else:
                timed = {
                    name: run_once(CONTENDERS[name], args.capacity, work, value) for name in order
                }
            for name in order:
                samples.setdefault((work.name, name), []).append(timed[name])
        print(f"round {round_no + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    memory = {name: bytes_per_item(CONTENDERS[name], args.capacity) for name in names}
    load_after = machine_load.sample()

    results: dict[str, dict[str, dict[str, float]]] = {}
    round_ratios: dict[str, dict[str, list[float]]] = {}
    for work in workloads:
        base = statistics.median(samples[(work.name, BASELINE)])
        results[work.name] = {}
        round_ratios[work.name] = {}
        for name in names:
            ns = statistics.median(samples[(work.name, name)])
            results[work.name][name] = {
                "ns_per_op": ns,
                "ops_per_s": 1e9 / ns,
                "ratio_vs_ordereddict": base / ns,
                "min_ns": min(samples[(work.name, name)]),
                "max_ns": max(samples[(work.name, name)]),
            }
            # Each round's ratio, from two runs made moments apart: on a shared
            # machine their spread says how far to trust the ratio of medians.
            pairs = zip(samples[(work.name, BASELINE)], samples[(work.name, name)], strict=True)
            round_ratios[work.name][name] = [b / n for b, n in pairs]

    command = "python benchmarks/bench_core.py" + (" --smoke" if args.smoke else "")
    lines = [
        "# Core benchmark: lrukv.ShardedMap against single-process LRU caches",
        "",
        f"Command: `{command}` "
        f"({args.repeats} interleaved repeats, {args.ops} ops per stream, {args.keys} keys, "
        f"capacity {args.capacity}, 100-byte values, seed {args.seed}).",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
        f", {time.strftime('%Y-%m-%d')}.  ",
        f"Machine load: {machine_load.describe(load_before, load_after)}.",
        "",
        "Medians over the repeats; ratio = ops/s over the OrderedDict + lock LRU's ops/s. "
        "The baseline is the tightest plain LRU: closures over an OrderedDict and one "
        "threading.Lock with bound methods (`ordereddict_lru` in the script). One-thread "
        "streams: CPU time of the thread, contenders taking turns over the stream 5,000 "
        "operations at a time; 8 threads: wall time, one contender after another. "
        "Per-round x: the ratio within each round, lowest and highest.",
        "",
    ]
    for work in workloads:
        lines += [
            f"## {work.name}",
            "",
            "| contender | ns/op | ops/s | x OrderedDict | per-round x, min-max | min-max ns/op |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in names:
            r = results[work.name][name]
            spread = round_ratios[work.name][name]
            lines.append(
                f"| {name} | {r['ns_per_op']:.0f} | {r['ops_per_s']:,.0f} | "
                f"{r['ratio_vs_ordereddict']:.2f} | {min(spread):.2f}-{max(spread):.2f} | "
                f"{r['min_ns']:.0f}-{r['max_ns']:.0f} |"
            )
        lines.append("")
    sharded, cachetools_name = "lrukv.ShardedMap (10 shards)", "cachetools.LRUCache + lock"
    mixed_ratio = results["mixed"][sharded]["ratio_vs_ordereddict"]
    mixed_rounds = round_ratios["mixed"][sharded]
    puts_ratio = (
        results["puts"][cachetools_name]["ns_per_op"] / results["puts"][sharded]["ns_per_op"]
    )
    inserts = results["evicting inserts"]
    insert_cost = inserts[sharded]["ns_per_op"] / inserts[BASELINE]["ns_per_op"]
    lines += [
        "## targets",
        "",
        "| target | measured | |",
        "|---|---:|---|",
        f"| mixed: ShardedMap >= 1.0x OrderedDict + lock | {mixed_ratio:.2f}x "
        f"(per round {min(mixed_rounds):.2f}-{max(mixed_rounds):.2f}) | "
        f"{'met' if mixed_ratio >= 1.0 else 'missed'} |",
        f"| puts: ShardedMap >= 1.5x cachetools + lock | {puts_ratio:.2f}x | "
        f"{'met' if puts_ratio >= 1.5 else 'missed'} |",
        f"| evicting inserts: ShardedMap's cost / OrderedDict + lock's (lower is better) | "
        f"{insert_cost:.2f}x | (tracked; issue 12 measured 1.95x) |",
        "",
    ]
    lines += [
        "## memory",
        "",
        "Container only (tracemalloc while filling to capacity with existing keys and "
        "8-byte values). What the server's store holds per item, key and value included, "
        "on 1M keys: `benchmarks/results/memory.md` (bench_memory.py).",
        "",
        "| contender | bytes per item (container only) |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {memory[name]:.0f} |" for name in names]
    report = "\n".join(lines) + "\n"

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "core.md").write_text(report)
    (args.out / "core.json").write_text(
        json.dumps(
            {
                "command": command,
                "params": {k: v for k, v in vars(args).items() if k != "out"},
                "python": platform.python_version(),
                "machine_load": {"before": load_before, "after": load_after},
                "cpus": os.cpu_count(),
                "results": results,
                "round_ratios": round_ratios,
                "bytes_per_item": memory,
            },
            indent=2,
        )
        + "\n"
    )
    print(report)
    print(f"wrote {args.out / 'core.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
