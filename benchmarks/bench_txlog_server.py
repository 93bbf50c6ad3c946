"""Do puts through lrukv-server keep their throughput when the transaction log is on?

    .venv/bin/python benchmarks/bench_txlog_server.py          # ~3 min; writes
                                                               # benchmarks/results/txlog-server.*
    .venv/bin/python benchmarks/bench_txlog_server.py --smoke  # seconds; writes to a temp dir

Issue #3 asks that with the file log at fsync=interval, puts keep >= 0.7x of their
in-memory throughput. ``bench_txlog.py`` measures that for the library
(``LoggedStore.put`` against ``ShardedMap.put``); this script measures it where a
user meets it: gRPC PUTs (overwrites of 1000 keys, 100-byte values, 32 calls in
flight) against ``lrukv-server`` with the log off, with ``-d file --txlog-fsync
interval:100`` and with ``-d file --txlog-fsync always``. Server pinned to CPU 0,
load (``server_load.py``) to CPU 1 where there are two; configurations are
interleaved and repeated, each server started fresh; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: make `benchmarks` importable
from benchmarks.bench_server import lrukv_server  # noqa: E402

RESULTS = HERE / "results"
CONFIGS: dict[str, list[str]] = {
    "log off (in memory)": [],
    "file log, fsync=interval:100": ["-d", "file", "--txlog-fsync", "interval:100"],
    "file log, fsync=always": ["-d", "file", "--txlog-fsync", "always"],
}
BASELINE = "log off (in memory)"


def put_load(target: str, seconds: float, load_cpu: str | None) -> dict[str, Any]:
    command = [
        *(["taskset", "-c", load_cpu] if load_cpu is not None else []),
        sys.executable, str(HERE / "server_load.py"), "grpc", "--target", target,
        "--op", "put", "--seconds", str(seconds), "--inflight", "32",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.seconds = 1, 1.0
        args.out = Path(tempfile.mkdtemp(prefix="lrukv-bench-txlog-server-"))
    pinned = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    server_cpu, load_cpu = ("0", "1") if pinned else (None, None)

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    names = list(CONFIGS)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            with (
                tempfile.TemporaryDirectory() as tmp,
                lrukv_server(server_cpu, Path(tmp), CONFIGS[name]) as server,
            ):
                assert server.grpc is not None
                put_load(server.grpc, 1.0, load_cpu)  # warm-up, and preloads the keys
                result = put_load(server.grpc, args.seconds, load_cpu)
            result["rps"] = result["requests"] / result["seconds"]
            runs[name].append(result)
            print(f"repeat {repeat + 1}: {name}: {result['rps']:,.0f} puts/s", file=sys.stderr)

    base = statistics.median(r["rps"] for r in runs[BASELINE])
    command = "python benchmarks/bench_txlog_server.py" + (" --smoke" if args.smoke else "")
    lines = [
        "# Puts through lrukv-server with and without the transaction log",
        "",
        f"Command: `{command}` ({args.repeats} interleaved repeats of {args.seconds:.0f} s "
        f"per configuration; gRPC PUT overwrites, 32 calls in flight; server on CPU "
        f"{server_cpu}, load on CPU {load_cpu}). {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}.",
        "",
        "| configuration | puts/s (median) | x log off | p50 / p99 ms (median run) | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    summary = {}
    for name in names:
        ordered = sorted(runs[name], key=lambda r: r["rps"])
        middle = ordered[(len(ordered) - 1) // 2]
        rps = statistics.median(r["rps"] for r in runs[name])
        summary[name] = {"rps": rps, "ratio": rps / base, "runs": runs[name]}
        lines.append(
            f"| {name} | {rps:,.0f} | {rps / base:.2f} | "
            f"{middle['p50_ms']:.2f} / {middle['p99_ms']:.2f} | "
            f"{sum(r['errors'] for r in runs[name])} |"
        )
    interval = summary["file log, fsync=interval:100"]["ratio"]
    lines += [
        "",
        f"Target (issue #3): with fsync=interval, >= 0.7x of the in-memory put throughput: "
        f"{interval:.2f}x, {'met' if interval >= 0.7 else 'missed'}.",
        "",
    ]
    report = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "txlog-server.md").write_text(report)
    (args.out / "txlog-server.json").write_text(
        json.dumps({"command": command, "results": summary}, indent=2) + "\n"
    )
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
