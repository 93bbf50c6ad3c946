"""Does ``lrukv export`` then ``lrukv import`` move 1M keys, every byte, in <= 30 s each?

    .venv/bin/python benchmarks/bench_export.py          # ~2-4 min; writes
                                                         # benchmarks/results/export.{md,json}
    .venv/bin/python benchmarks/bench_export.py --smoke  # 5k keys, seconds; a temp dir

Issue 12: the CLI moves a whole store. Two fresh ``lrukv-server`` processes with room for
1,048,576 keys (``-s 64 -i 16384``); the source is filled with 1,000,000 keys (100-byte
binary values covering every byte value, untimed, through ``put_many``), then

* ``lrukv -s SOURCE export FILE`` is timed (the NDJSON file, base64 values),
* ``lrukv -s TARGET import FILE`` is timed (``put_many`` batches, 4 in flight),

and every file and target store is compared with the source by SHA-256 of every (key,
value), so a single wrong byte fails the run. Export runs three ways (gRPC item stream,
gRPC ``--batched``, HTTP item stream); the HTTP file is imported over gRPC and over HTTP,
each into a fresh server. Baselines measured in the same run, from the benchmark's own
process: the SDK's bare gRPC ``items()`` stream of the source, and the ``put_many`` from
memory that filled it (4 batches in flight, like import). Wall times, and the CLI
processes' CPU time; the load average goes in the report.
"""

from __future__ import annotations

import argparse
import base64
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
    return len(pairs), _hash(pairs), streamed


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


def file_digest(path: Path) -> tuple[int, str]:
    """(lines, SHA-256 as :func:`digest`) of a dump file: what an export wrote."""
    pairs = []
    with path.open("rb") as handle:
        for line in handle:
            item = json.loads(line)
            pairs.append((item["key"], base64.b64decode(item["value"])))
    pairs.sort()
    return len(pairs), _hash(pairs)


def _hash(pairs: list[tuple[str, bytes]]) -> str:
    hasher = hashlib.sha256()
    for key, value in pairs:
        hasher.update(key.encode())
        hasher.update(b"\0")
        hasher.update(len(value).to_bytes(4, "big"))
        hasher.update(value)
    return hasher.hexdigest()


EXPORTS = {  # name -> (transport, extra export arguments)
    "gRPC, item stream": ("grpc", []),
    "gRPC, --batched": ("grpc", ["--batched"]),
    "HTTP, item stream": ("http", []),
}
IMPORTS = ("grpc", "http")


def _address(server: Any, transport: str) -> str:
    return str(server.grpc) if transport == "grpc" else f"http://{server.http}"


def measure(count: int, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"keys": count, "value_bytes": VALUE_BYTES}
    with lrukv_server(None, workdir / "source", SERVER_ARGS) as source:
        assert source.grpc is not None
        # Filling a fresh server from memory with put_many is also import's baseline.
        result["fill_put_many_from_memory_s"] = round(fill(source.grpc, count), 3)
        source_count, source_digest, stream_s = digest(source.grpc)
        result["source"] = {"items": source_count, "sha256": source_digest}
        result["sdk_grpc_items_stream_s"] = round(stream_s, 3)
        exports: dict[str, Any] = {}
        for name, (transport, extra) in EXPORTS.items():
            dump = workdir / f"{transport}{len(exports)}.ndjson"
            run = run_cli("-s", _address(source, transport), "export", *extra, str(dump))
            lines, file_sha = file_digest(dump)
            exports[name] = {
                **run,
                "file": str(dump),
                "bytes": dump.stat().st_size,
                "lines": lines,
                "exact": lines == count and file_sha == source_digest,
            }
        result["exports"] = exports
    dump = Path(exports["HTTP, item stream"]["file"])
    imports: dict[str, Any] = {}
    for transport in IMPORTS:
        with lrukv_server(None, workdir / f"target-{transport}", SERVER_ARGS) as target:
            assert target.grpc is not None
            run = run_cli("-s", _address(target, transport), "import", str(dump))
            target_count, target_digest, _ = digest(target.grpc)
        imports[transport] = {
            **run,
            "items": target_count,
            "exact": target_count == count and target_digest == source_digest,
        }
    result["imports"] = imports
    result["round_trip_exact"] = all(e["exact"] for e in [*exports.values(), *imports.values()])
    best_export = min(e["wall_s"] for e in exports.values())
    best_import = min(i["wall_s"] for i in imports.values())
    result["targets_met"] = {
        "export_within_30s": best_export <= TARGET_SECONDS,
        "import_within_30s": best_import <= TARGET_SECONDS,
    }
    return result


def report(result: dict[str, Any], command: str, load: str, caveat: str | None) -> str:
    met = result["targets_met"]
    stream_s = result["sdk_grpc_items_stream_s"]
    fill_s = result["fill_put_many_from_memory_s"]
    rows = [
        f"| `lrukv export` over {name} | **{e['wall_s']:.1f} s** | {e['cpu_s']:.1f} s | "
        f"{e['exact']} | {e['wall_s'] / stream_s:.2f}x the SDK's bare gRPC `items()` "
        f"({stream_s:.1f} s) |"
        for name, e in result["exports"].items()
    ]
    rows += [
        f"| `lrukv import` over {transport} | **{i['wall_s']:.1f} s** | {i['cpu_s']:.1f} s | "
        f"{i['exact']} | {i['wall_s'] / fill_s:.2f}x the SDK's `put_many` from memory "
        f"({fill_s:.1f} s) |"
        for transport, i in result["imports"].items()
    ]
    lines = [
        "# Export and import of a whole store (issue 12)",
        "",
        f"Command: `{command}` (from the repository root).",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}; {load}.",
        "",
        *([caveat, ""] if caveat else []),
        f"{result['keys']:,} keys of {result['value_bytes']} bytes (binary, every byte value) "
        f"in a fresh `lrukv-server {' '.join(SERVER_ARGS)}`, exported three ways; the HTTP "
        "export imported into a fresh server over each transport. Each file and each target "
        "store is compared with the source by SHA-256 over every (key, value).",
        "",
        "| step | wall | CPU of the CLI | every byte | baseline in the same run |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Targets (<= 30 s each, best way): export "
        f"{'met' if met['export_within_30s'] else 'MISSED'}, import "
        f"{'met' if met['import_within_30s'] else 'MISSED'}. Round trip exact: "
        f"**{result['round_trip_exact']}**.",
        "",
        "TTLs are not exported (docs/cli.md). `--batched` reads with GetKeys + GetMany: every "
        "key becomes recently used and counts as a hit.",
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
        for name in ("source", *(f"target-{t}" for t in IMPORTS)):
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
