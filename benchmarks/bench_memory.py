"""How many bytes does the server's store hold per item, against a plain dict?

    .venv/bin/python benchmarks/bench_memory.py          # 1M keys: benchmarks/results/memory.*
    .venv/bin/python benchmarks/bench_memory.py --smoke  # seconds; writes to a temp dir

Each contender is filled in a fresh child process (so one's freed memory cannot
hide another's) with ``--keys`` items: keys ``user:%08d`` (13 ASCII characters)
and distinct 100-byte values, made inside the measured window as a server makes
them per request. Bytes per item is the growth of the child's resident set size
(VmRSS) over the fill divided by the number of items: what the process really
holds, allocator rounding and all (tracemalloc counts requested sizes, which
understates small objects by up to 15 bytes each). Contenders run interleaved,
``--repeats`` times each; the report gives the median.

Contenders:
  dict                        key -> value; no order, no eviction, no lock: the floor
  OrderedDict                 key -> value, the container of the usual Python LRU
  ShardedMap (server)         what ``lrukv-server`` builds: StoreConfig(shards=10,
                              items_per_shard=keys/10 + headroom, max_value_bytes=1 MiB).build()
                              inside a StoreFSM, filled by applying PUT commands
  ShardedMap (server), TTLs   the same, every PUT with an expiry time

Alongside, the ShardedMap's bytes per item are split by object from
sys.getsizeof (rounded up to pymalloc's 16-byte size classes), so the table says
where the bytes go.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from benchmarks import machine_load
from lrukv import StoreConfig
from lrukv_server.config import DEFAULT_MAX_VALUE_BYTES
from lrukv_server.fsm import StoreFSM
from lrukv_server.fsm.commands import Put

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_BYTES_PER_ITEM = 290  # issue 12: the server's store, 1M keys, 100-byte values
VALUE_BYTES = 100
EXPIRES_AT = 4_102_444_800.0  # 2100-01-01: far in the future, so nothing expires

Filler = Callable[[int], object]


def key_of(i: int) -> str:
    return f"user:{i:08d}"


def value_of(i: int) -> bytes:
    return i.to_bytes(4, "big") * (VALUE_BYTES // 4)  # distinct per key


def fill_dict(n: int) -> object:
    data: dict[str, bytes] = {}
    for i in range(n):
        data[key_of(i)] = value_of(i)
    return data


def fill_ordereddict(n: int) -> object:
    data: OrderedDict[str, bytes] = OrderedDict()
    for i in range(n):
        data[key_of(i)] = value_of(i)
    return data


def server_fsm(n: int) -> StoreFSM:
    """The store as ``lrukv-server`` builds it (agent._open_store), sized to hold n
    keys: crc32 spreads keys over shards like a fair die, so each gets six standard
    deviations of headroom (an item count costs no memory until items arrive)."""
    shards = 10
    config = StoreConfig(
        shards=shards,
        items_per_shard=n // shards + 6 * math.isqrt(n // shards) + 10,
        max_value_bytes=DEFAULT_MAX_VALUE_BYTES,
    )
    return StoreFSM(config.build())


def fill_server(n: int, *, ttl: bool = False) -> object:
    fsm = server_fsm(n)
    apply = fsm.apply_command
    now = time.time()
    for i in range(n):
        # A distinct float per key, as each request brings its own.
        expires = EXPIRES_AT + i if ttl else None
        apply(Put(key_of(i), value_of(i), expires), i + 1, time=now)
    assert len(fsm.store) == n
    return fsm


CONTENDERS: dict[str, Filler] = {
    "dict": fill_dict,
    "OrderedDict": fill_ordereddict,
    "ShardedMap (server)": fill_server,
    "ShardedMap (server), TTLs": lambda n: fill_server(n, ttl=True),
}
SERVER = "ShardedMap (server)"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (this benchmark needs Linux)")


def child(name: str, keys: int) -> None:
    """Fill one contender in this (fresh) process; print bytes per item as JSON."""
    filler = CONTENDERS[name]
    filler(100)  # import and warm every code path before the baseline sample
    gc.collect()
    gc.disable()  # a collection during the fill would only add noise
    before = rss_bytes()
    kept = filler(keys)
    after = rss_bytes()
    print(json.dumps({"name": name, "bytes_per_item": (after - before) / keys}))
    del kept


def measure(name: str, keys: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, "--keys", str(keys)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.splitlines()[-1])["bytes_per_item"])


def pymalloc_size(nbytes: int) -> int:
    """What pymalloc really hands out for a request: 16-byte size classes up to 512."""
    return nbytes if nbytes > 512 else -(-nbytes // 16) * 16


def breakdown(keys: int) -> list[tuple[str, float]]:
    """Bytes per item of the server's store, by object (sys.getsizeof, rounded)."""
    fsm = server_fsm(keys)
    for i in range(keys):
        fsm.apply_command(Put(key_of(i), value_of(i)), i + 1, time=0.0)
    store = fsm.store
    index = store._index
    node = next(iter(index.values()))
    return [
        ("key (str, 13 ASCII characters)", pymalloc_size(sys.getsizeof(key_of(0)))),
        (f"value (bytes, {VALUE_BYTES})", pymalloc_size(sys.getsizeof(value_of(0)))),
        (
            f"list node ({len(type(node).__slots__)} slots: {', '.join(type(node).__slots__)})",
            pymalloc_size(sys.getsizeof(node)),
        ),
        ("index dict (its table, shared out)", sys.getsizeof(index) / keys),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run into a temp dir")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.keys)
        return 0
    if args.smoke:
        args.keys, args.repeats = 20_000, 1
        args.out = Path(tempfile.mkdtemp(prefix="lrukv-bench-memory-"))

    load_before = machine_load.sample()
    samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_no in range(args.repeats):
        for name in CONTENDERS:
            samples[name].append(measure(name, args.keys))
        print(f"round {round_no + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    parts = breakdown(min(args.keys, 1_000_000))
    load_after = machine_load.sample()
    medians = {name: statistics.median(values) for name, values in samples.items()}

    command = "python benchmarks/bench_memory.py" + (" --smoke" if args.smoke else "")
    server = medians[SERVER]
    lines = [
        "# Memory: bytes per item of the server's store",
        "",
        f"Command: `{command}` ({args.keys:,} keys `user:%08d`, distinct {VALUE_BYTES}-byte "
        f"values, {args.repeats} interleaved repeats, median; each fill in a fresh process).",
        f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}.  ",
        f"Machine load: {machine_load.describe(load_before, load_after)}.",
        "",
        "Bytes per item = growth of the process's resident set size over the fill / keys: "
        "key, value and the container's own structures, as the process really holds them. "
        "The server's store is `StoreConfig(shards=10, items_per_shard=keys/10 + headroom, "
        "max_value_bytes=1 MiB).build()` in a `StoreFSM`, filled by applying PUT commands, "
        "as `lrukv-server` builds it.",
        "",
        "| contender | bytes per item | x dict | min-max |",
        "|---|---:|---:|---:|",
    ]
    for name in CONTENDERS:
        lines.append(
            f"| {name} | {medians[name]:.0f} | {medians[name] / medians['dict']:.2f} | "
            f"{min(samples[name]):.0f}-{max(samples[name]):.0f} |"
        )
    lines += [
        "",
        "## target",
        "",
        "| target | measured | |",
        "|---|---:|---|",
        f"| server's store <= {TARGET_BYTES_PER_ITEM} bytes per item (1M keys, "
        f"{VALUE_BYTES}-byte values) | {server:.0f} | "
        f"{'met' if server <= TARGET_BYTES_PER_ITEM else 'missed'}"
        f"{'' if args.keys == 1_000_000 else ' (not a 1M-key run)'} |",
        "",
        "## where the server's bytes go (per item, from sys.getsizeof)",
        "",
        "| part | bytes |",
        "|---|---:|",
    ]
    lines += [f"| {part} | {size:.0f} |" for part, size in parts]
    lines += [f"| total | {sum(size for _, size in parts):.0f} |", ""]
    report = "\n".join(lines) + "\n"

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.md").write_text(report)
    (args.out / "memory.json").write_text(
        json.dumps(
            {
                "command": command,
                "params": {"keys": args.keys, "repeats": args.repeats, "value_bytes": VALUE_BYTES},
                "python": platform.python_version(),
                "machine_load": {"before": load_before, "after": load_after},
                "bytes_per_item": medians,
                "samples": samples,
                "breakdown": dict(parts),
                "target": TARGET_BYTES_PER_ITEM,
            },
            indent=2,
        )
        + "\n"
    )
    print(report)
    print(f"wrote {args.out / 'memory.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
