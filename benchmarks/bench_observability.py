"""What do metrics (-m) and tracing (-t) cost lrukv-server, against both off, in one run?

    .venv/bin/python benchmarks/bench_observability.py --repeats 3   # ~8 min; writes
                                            # benchmarks/results/observability.{md,json}
    .venv/bin/python benchmarks/bench_observability.py --smoke       # seconds; temp dir

Configurations, each a fresh ``lrukv-server`` (as bench_server.py runs it: one
gunicorn gthread worker of 8 threads, 16 gRPC workers, ``-i 1000``, log off,
pinned to CPU 0 where there are two):

* ``off``: neither (request ids are always on, so they are in every row);
* ``metrics``: ``-m`` (a no-op until Prometheus metrics land: then it measures them);
* ``tracing 100%``: ``-t --trace-sample-ratio 1``, every request traced;
* ``tracing 1%``: ``-t --trace-sample-ratio 0.01``.

Tracing exports for real: to an OTLP/HTTP receiver on loopback in this process
(tests/observability/otlp_receiver.py; it answers each export as a collector
does and counts its bytes without decoding it), pinned with the load to CPU 1,
so the server pays the whole export (encoding, the HTTP POST) and the receiver
takes next to nothing from the load generator.

Load (CPU 1): 1000 keys preloaded with 100-byte values, then GET and PUT
round-robin: HTTP with ``wrk -t1 -c32`` (a Python generator where wrk is
missing, and in --smoke), gRPC with ``server_load.py grpc`` (32 calls in flight).
Each (configuration, API, operation) is measured ``--repeats`` times for
``--seconds`` after a 1 s warm-up; the configurations are interleaved (their
order rotates every repeat) so a change in the machine's load hits all alike.

Reported per (API, operation): the median throughput of each configuration and
its ratio to ``off``, and the server's CPU time per request (from /proc), the
steadier number on a shared machine. Targets (the cost is 1 - ratio):
metrics <= 10%, tracing at 100% sampling <= 25%, at 1% <= 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` and `tests` importable
from benchmarks import machine_load  # noqa: E402
from benchmarks.bench_server import (  # noqa: E402
    KEYS,
    VALUE,
    Setup,
    _grpc_load,
    _http_load,
    _tree_cpu_seconds,
    lrukv_server,
)
from benchmarks.server_load import preload_grpc, preload_http  # noqa: E402
from tests.observability.otlp_receiver import Receiver, otlp_receiver  # noqa: E402

CONFIGS: dict[str, list[str]] = {
    "off": [],
    "metrics": ["-m"],
    "tracing 100%": ["-t", "--trace-sample-ratio", "1"],
    "tracing 1%": ["-t", "--trace-sample-ratio", "0.01"],
}
TARGETS = {"metrics": 0.10, "tracing 100%": 0.25, "tracing 1%": 0.05}


@dataclass
class Run:
    repeat: int
    config: str
    api: str
    op: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us_per_request: float
    tool: str


def _args_for(config: str, receiver: Receiver) -> list[str]:
    args = list(CONFIGS[config])
    if "-t" in args:
        args += ["-j", receiver.endpoint]
    return args


def _measure(setup: Setup, config: str, server: Any, repeat: int, workdir: Path) -> list[Run]:
    runs = []
    for api in ("http", "grpc"):
        target = server.http if api == "http" else server.grpc
        (preload_http if api == "http" else preload_grpc)(target, setup.keys, VALUE)
        load = _http_load if api == "http" else _grpc_load
        for op in ("get", "put"):
            if setup.warmup:
                load(setup, target, op, setup.warmup, workdir)
            cpu_before = _tree_cpu_seconds(server.proc.pid)
            result = load(setup, target, op, setup.seconds, workdir)
            cpu = _tree_cpu_seconds(server.proc.pid) - cpu_before
            requests = max(1, result["requests"])
            run = Run(
                repeat=repeat,
                config=config,
                api=api,
                op=op,
                rps=result["requests"] / result["seconds"],
                p50_ms=result["p50_ms"],
                p99_ms=result["p99_ms"],
                errors=result["errors"],
                server_cpu_us_per_request=1e6 * cpu / requests,
                tool=result["tool"],
            )
            runs.append(run)
            print(
                f"  repeat {repeat} {config:13} {api:4} {op:3}: {run.rps:8.0f} req/s  "
                f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  "
                f"cpu {run.server_cpu_us_per_request:6.0f} us/req  errors {run.errors}",
                flush=True,
            )
    return runs


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """Per (api, op, config): medians over the repeats, and ratios to ``off``."""
    rows = []
    for api in ("http", "grpc"):
        for op in ("get", "put"):
            base = [r for r in runs if r.api == api and r.op == op and r.config == "off"]
            base_rps = statistics.median(r.rps for r in base)
            base_cpu = statistics.median(r.server_cpu_us_per_request for r in base)
            for config in CONFIGS:
                mine = [r for r in runs if r.api == api and r.op == op and r.config == config]
                rps = statistics.median(r.rps for r in mine)
                cpu = statistics.median(r.server_cpu_us_per_request for r in mine)
                ratio = rps / base_rps if base_rps else float("nan")
                target = TARGETS.get(config)
                rows.append(
                    {
                        "api": api,
                        "op": op,
                        "config": config,
                        "rps": rps,
                        "ratio": ratio,
                        "cost_pct": 100 * (1 - ratio),
                        "cpu_us_per_request": cpu,
                        "cpu_ratio": cpu / base_cpu if base_cpu else float("nan"),
                        "p50_ms": statistics.median(r.p50_ms for r in mine),
                        "p99_ms": statistics.median(r.p99_ms for r in mine),
                        "errors": sum(r.errors for r in mine),
                        "target_cost_pct": None if target is None else 100 * target,
                        "met": None if target is None else (1 - ratio) <= target,
                        "met_cpu": None
                        if target is None
                        else (cpu / base_cpu - 1 if base_cpu else 1.0) <= target,
                    }
                )
    return rows


def write_reports(
    out_dir: Path,
    setup: Setup,
    runs: list[Run],
    *,
    command: str,
    load_note: str,
    exports: tuple[int, int],
) -> tuple[Path, Path]:
    rows = summarise(runs)
    tool_http = next((r.tool for r in runs if r.api == "http"), "")
    tool_grpc = next((r.tool for r in runs if r.api == "grpc"), "")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    json_path = out_dir / "observability.json"
    json_path.write_text(
        json.dumps(
            {
                "command": command,
                "when": stamp,
                "machine_load": load_note,
                "setup": asdict(setup),
                "otlp_exports": {"requests": exports[0], "bytes": exports[1]},
                "summary": rows,
                "runs": [asdict(r) for r in runs],
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        "# Observability overhead: metrics and tracing against both off",
        "",
        f"Command: `{command}` ({stamp}).",
        "",
        f"Load: HTTP {tool_http}; gRPC {tool_grpc}; {setup.keys} keys, 100-byte values; "
        f"{setup.repeats} interleaved repeats of {setup.seconds:g} s per row; "
        f"server pinned to CPU {setup.server_cpu}, load and OTLP receiver to CPU "
        f"{setup.load_cpu}. Machine: {load_note}. The receiver took {exports[0]} "
        f"OTLP exports ({exports[1] / 1e6:.1f} MB).",
        "",
        "Cost = 1 - throughput ratio to `off` (median of the repeats). CPU/request is the "
        "server's CPU time per request (both processes, from /proc): on a shared machine "
        "the steadier measure of what a feature adds; `CPU cost` = CPU ratio - 1. "
        "While `-m` is still a no-op its rows show the noise floor of this run.",
        "",
        "| API | op | config | req/s | ratio | cost | target | met | CPU µs/req | CPU cost "
        "| met (CPU) | p50 ms | p99 ms |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        target = "" if row["target_cost_pct"] is None else f"≤ {row['target_cost_pct']:.0f}%"
        met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
        met_cpu = "" if row["met_cpu"] is None else ("yes" if row["met_cpu"] else "**no**")
        lines.append(
            f"| {row['api']} | {row['op']} | {row['config']} | {row['rps']:.0f} | "
            f"{row['ratio']:.3f} | {row['cost_pct']:.1f}% | {target} | {met} | "
            f"{row['cpu_us_per_request']:.0f} | {100 * (row['cpu_ratio'] - 1):.0f}% | {met_cpu} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} |"
        )
    md_path = out_dir / "observability.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds; temp output")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results")
    args = parser.parse_args()

    two_cpus = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    setup = Setup(
        keys=100 if args.smoke else KEYS,
        seconds=0.3 if args.smoke else args.seconds,
        warmup=0.0 if args.smoke else 1.0,
        repeats=1 if args.smoke else args.repeats,
        connections=8 if args.smoke else args.connections,
        inflight=8 if args.smoke else args.inflight,
        server_cpu="0" if two_cpus else None,
        load_cpu="1" if two_cpus else None,
        wrk=None if args.smoke else shutil.which("wrk"),
        smoke=args.smoke,
    )
    if two_cpus:
        os.sched_setaffinity(0, {1})  # this process runs the OTLP receiver: off the server's CPU
    command = "python benchmarks/bench_observability.py" + (
        "" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:])
    )
    before = machine_load.sample()
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="lrukv-bench-obs-") as tmp,
        otlp_receiver(keep=False) as receiver,
    ):
        workdir = Path(tmp)
        names = list(CONFIGS)
        for repeat in range(1, setup.repeats + 1):
            shift = (repeat - 1) % len(names)
            for config in names[shift:] + names[:shift]:
                # A generous start deadline: on a saturated shared machine start-up
                # alone has taken over 30 s.
                with lrukv_server(
                    setup.server_cpu, workdir, _args_for(config, receiver), ready_timeout=120
                ) as server:
                    runs += _measure(setup, config, server, repeat, workdir)
        time.sleep(0.1)
        load_note = machine_load.describe(before, machine_load.sample())
        out_dir = args.out or (workdir / "results" if args.smoke else RESULTS)
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path, json_path = write_reports(
            out_dir,
            setup,
            runs,
            command=command,
            load_note=load_note,
            exports=(receiver.requests, receiver.bytes),
        )
        print(md_path.read_text())
        print(f"wrote {md_path} and {json_path}")
        if receiver.requests == 0:
            print("error: no span reached the OTLP receiver", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
