"""Does ``lrukv export`` then ``lrukv import`` move 1M keys, every byte, in <= 30 s each?

    .venv/bin/python benchmarks/bench_export.py          # ~2-4 min; writes
                                                         # benchmarks/results/export.{md,json}
    .venv/bin/python benchmarks/bench_export.py --smoke  # 5k keys, seconds; a temp dir

Issue 12: the CLI moves a whole store. Two fresh ``lrukv-server`` processes with room for
1,048,576 keys (``-s 64 -i 16384``); the source is filled with 1,000,000 keys (100-byte
binary values covering every byte value, untimed, through ``put_many``), then

* ``lrukv -s SOURCE export FILE`` is timed (the NDJSON file, base64 values),
* ``lrukv -s TARGET import FILE`` is timed (``put_many`` batches, 4 in flight),

and both stores are read back whole and compared by SHA-256 of every (key, value), so a
single wrong byte fails the run. Baselines measured in the same run, from the same
process as the benchmark: the SDK's bare ``items()`` stream of the source (what export
adds to it is the file), and ``put_many`` of the same items from memory into a third
fresh server (what import adds to it is reading and decoding the file). Wall times, and
the CLI processes' CPU time; the load average goes in the report.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: make `benchmarks` importable
from benchmarks import machine_load  # noqa: E402
from benchmarks.bench_server import lrukv_server  # noqa: E402
from lrukv_client import Client  # noqa: E402

RESULTS = HERE / "results"
TARGET_SECONDS = 30.0
SERVER_ARGS = ["-s", "64", "-i", "16384"]  # capacity 1,048,576 keys
VALUE_BYTES = 100
LRUKV = str(Path(sys.executable).parent / "lrukv")


def key_of(i: int) -> str:
    return f"key-{i:07d}"


def value_of(i: int) -> bytes:
    """100 bytes that differ per key and, over 256 keys, hold every byte value."""
    start = i % 256
    return bytes((start + j) % 256 for j in range(VALUE_BYTES - 4)) + i.to_bytes(4, "big")


def items(count: int) -> Iterator[tuple[str, bytes]]:
    return ((key_of(i), value_of(i)) for i in range(count))


def fill(target: str, count: int) -> float:
    """put_many every item, 4 batches in flight; returns the seconds it took."""
    started = time.perf_counter()
    with Client(target, timeout=60) as kv, concurrent.futures.ThreadPoolExecutor(4) as pool:
        chunk = 1000
        futures = [
            pool.submit(
                kv.put_many, [(key_of(i), value_of(i)) for i in range(a, min(a + chunk, count))]
            )
            for a in range(0, count, chunk)
        ]
        for future in futures:
            refused = [r for r in future.result() if not r.ok]
            if refused:
                raise RuntimeError(f"fill: {len(refused)} refused, e.g. {refused[0]}")
    return time.perf_counter() - started


def digest(target: str) -> tuple[int, str, float]:
    """(items, SHA-256 of the sorted (key, value) pairs, seconds of the bare stream)."""
    started = time.perf_counter()
    with Client(target, timeout=60) as kv, kv.items() as stream:
        pairs = list(stream)
    streamed = time.perf_counter() - started
    pairs.sort()
    hasher = hashlib.sha256()
    for key, value in pairs:
        hasher.update(key.encode())
        hasher.update(b"\0")
        hasher.update(len(value).to_bytes(4, "big"))
        hasher.update(value)
    return len(pairs), hasher.hexdigest(), streamed


def run_cli(*args: str) -> dict[str, float]:
    """Run ``lrukv ARGS``; its wall time and CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    done = subprocess.run(
        [LRUKV, "--timeout", "60", *args], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"lrukv {' '.join(args)} exited {done.returncode}: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def baseline_put_many(target: str, pairs: list[tuple[str, bytes]]) -> float:
    """put_many of items already in memory, 4 batches in flight (import's floor)."""
    started = time.perf_counter()
    with Client(target, timeout=60) as kv, concurrent.futures.ThreadPoolExecutor(4) as pool:
        parts = [pairs[a : a + 1000] for a in range(0, len(pairs), 1000)]
        for results in pool.map(kv.put_many, parts):
            assert all(r.ok for r in results)
    return time.perf_counter() - started


def measure(count: int, workdir: Path) -> dict[str, Any]:
    dump = workdir / "store.ndjson"
    result: dict[str, Any] = {"keys": count, "value_bytes": VALUE_BYTES}
    with (
        lrukv_server(None, workdir / "source", SERVER_ARGS) as source,
        lrukv_server(None, workdir / "target", SERVER_ARGS) as target,
    ):
        assert source.grpc is not None and target.grpc is not None
        result["fill_s"] = round(fill(source.grpc, count), 3)
        source_count, source_digest, stream_s = digest(source.grpc)
        result["sdk_items_stream_s"] = round(stream_s, 3)
        result["export"] = run_cli("-s", source.grpc, "export", str(dump))
        result["dump_bytes"] = dump.stat().st_size
        with dump.open("rb") as handle:
            result["dump_lines"] = sum(1 for _ in handle)
        result["import"] = run_cli("-s", target.grpc, "import", str(dump))
        target_count, target_digest, _ = digest(target.grpc)
    with lrukv_server(None, workdir / "baseline", SERVER_ARGS) as baseline:
        assert baseline.grpc is not None
        result["sdk_put_many_from_memory_s"] = round(
            baseline_put_many(baseline.grpc, list(items(count))), 3
        )
    result["source"] = {"items": source_count, "sha256": source_digest}
    result["target"] = {"items": target_count, "sha256": target_digest}
    result["round_trip_exact"] = (
        source_count == target_count == count == result["dump_lines"]
        and source_digest == target_digest
    )
    result["export_vs_bare_stream"] = round(result["export"]["wall_s"] / stream_s, 2)
    result["import_vs_put_many"] = round(
        result["import"]["wall_s"] / result["sdk_put_many_from_memory_s"], 2
    )
    result["targets_met"] = {
        "export_within_30s": result["export"]["wall_s"] <= TARGET_SECONDS,
        "import_within_30s": result["import"]["wall_s"] <= TARGET_SECONDS,
    }
    return result


def report(result: dict[str, Any], command: str, load: str, caveat: str | None) -> str:
    exp, imp = result["export"], result["import"]
    met = result["targets_met"]
    lines = [
        "# Export and import of a whole store (issue 12)",
        "",
        f"Command: `{command}` (from the repository root).",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}; {load}.",
        "",
        *([caveat, ""] if caveat else []),
        f"{result['keys']:,} keys of {result['value_bytes']} bytes (binary, every byte value), "
        f"two fresh `lrukv-server {' '.join(SERVER_ARGS)}` over gRPC; dump "
        f"{result['dump_bytes'] / 1e6:,.1f} MB NDJSON.",
        "",
        "| step | wall | CPU of the CLI | target | baseline in the same run |",
        "|---|---|---|---|---|",
        f"| `lrukv export FILE` | **{exp['wall_s']:.1f} s** | {exp['cpu_s']:.1f} s | "
        f"<= 30 s: {'met' if met['export_within_30s'] else 'MISSED'} | SDK `items()` alone: "
        f"{result['sdk_items_stream_s']:.1f} s ({result['export_vs_bare_stream']}x) |",
        f"| `lrukv import FILE` | **{imp['wall_s']:.1f} s** | {imp['cpu_s']:.1f} s | "
        f"<= 30 s: {'met' if met['import_within_30s'] else 'MISSED'} | SDK `put_many` from "
        f"memory: {result['sdk_put_many_from_memory_s']:.1f} s ({result['import_vs_put_many']}x) |",
        "",
        f"Round trip exact: **{result['round_trip_exact']}** — source and target both hold "
        f"{result['target']['items']:,} items with SHA-256 `{result['target']['sha256'][:16]}…` "
        "over every (key, value); the file has one line per key. Filling the source (untimed "
        f"setup, `put_many`, 4 batches in flight) took {result['fill_s']:.1f} s.",
        "",
        "TTLs are not exported (docs/cli.md).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="5k keys, results in a temp dir")
    parser.add_argument("--keys", type=int, default=None)
    args = parser.parse_args()
    count = args.keys or (5_000 if args.smoke else 1_000_000)
    command = "python benchmarks/bench_export.py" + (" --smoke" if args.smoke else "")
    before = machine_load.sample()
    with tempfile.TemporaryDirectory(prefix="lrukv-export-") as tmp:
        workdir = Path(tmp)
        for name in ("source", "target", "baseline"):
            (workdir / name).mkdir()
        result = measure(count, workdir)
        after = machine_load.sample()
        result["load"] = {"before": before, "after": after}
        result["command"] = command
        load = machine_load.describe(before, after)
        text = report(result, command, load, machine_load.caveat(before, after))
        out_dir = workdir / "results" if args.smoke else RESULTS
        out_dir.mkdir(exist_ok=True)
        (out_dir / "export.json").write_text(json.dumps(result, indent=2) + "\n")
        (out_dir / "export.md").write_text(text)
        print(text)
    if not result["round_trip_exact"]:
        print("bench_export: the round trip lost or changed data", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
