"""How fast is lrukv-server over HTTP and gRPC, next to a bare Flask app and a bare grpcio servicer?

    .venv/bin/python benchmarks/bench_server.py --repeats 5   # ~9 min (3 repeats: ~6); writes
                                                              # benchmarks/results/server.{md,json}
    .venv/bin/python benchmarks/bench_server.py --smoke    # a few seconds; writes to a temp dir

Servers (each started fresh for every repeat, pinned to CPU 0 where the machine
has two or more):

* ``lrukv-server`` as shipped (gunicorn, one gthread worker of 8 threads; gRPC
  with 16 workers; transaction log off; ``-i 1000`` so the keys never evict).
* the baselines: ``baselines/flask_dict_app.py`` on the same gunicorn settings,
  and ``baselines/grpc_dict_server.py`` (the generated servicer over a dict, 16
  workers). The targets: lrukv HTTP >= 0.8 x bare Flask; lrukv gRPC >= 0.8 x bare grpcio.

Load (pinned to CPU 1): 1000 keys ``bench-0000``.. preloaded with 100-byte values,
then GET and PUT (overwrites) round-robin over them.

* HTTP: ``wrk -t1 -c32`` with a Lua script that reports p50/p99. Where wrk is
  missing (``apt-get install wrk``), and always in --smoke, a Python generator of
  32 keep-alive connections is used instead, and the output says so.
* gRPC: ``server_load.py grpc``: one channel with 32 calls kept in flight (futures).

Each (server, API, operation) is measured ``--repeats`` times for ``--seconds``
after a 1 s warm-up, with the contenders interleaved (their order rotates every
repeat); the reports give the median of the repeats: requests per second, and the
p50 and p99 latency of the median-throughput run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
KEYS = 1000
VALUE = b"v" * 100
HTTP_THREADS = 8
GRPC_WORKERS = 16
TARGET_RATIO = 0.8

sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` importable
from benchmarks.server_load import preload_grpc, preload_http  # noqa: E402

_WRK_SCRIPT = """
local keys = {}
for i = 0, %(keys)d - 1 do keys[i] = string.format("/v1/bench-%%04d", i) end
local body = string.rep("v", %(value_size)d)
local n = 0
request = function()
  n = n + 1
  local path = keys[n %% %(keys)d]
  if "%(op)s" == "get" then return wrk.format("GET", path) end
  return wrk.format("PUT", path, {["Content-Type"] = "application/octet-stream"}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "non2xx": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Run:
    """One measurement."""

    repeat: int
    server: str  # lrukv | bare
    api: str  # http | grpc
    op: str  # get | put
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    server_cpu_pct: float  # CPU the server's processes used, % of one CPU
    load_cpu_pct: float  # CPU the load generator used, % of one CPU


@dataclass
class Setup:
    keys: int
    seconds: float
    warmup: float
    repeats: int
    connections: int
    inflight: int
    server_cpu: str | None
    load_cpu: str | None
    wrk: str | None
    smoke: bool


class Server:
    """A started server process; stop() ends it by its PID."""

    def __init__(self, proc: subprocess.Popen[str], label: str) -> None:
        self.proc = proc
        self.label = label
        self.http: str | None = None
        self.grpc: str | None = None
        self.startup_s: float | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None else []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 30) -> list[str]:
    """Read the process's stdout lines until one matches *pattern*; return them all."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    buffer = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], 0.1)
        if not readable:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines.extend(line.decode(errors="replace") for line in complete)
        if any(re.search(pattern, line) for line in lines):
            return lines
    raise RuntimeError(f"server not ready (exit {proc.poll()}); output so far: {lines}")


def _wait_for_port(target: str, timeout: float = 30) -> None:
    host, port = target.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {target}")


@contextmanager
def lrukv_server(
    cpu: str | None, workdir: Path, extra_args: Sequence[str] = (), ready_timeout: float = 30
) -> Iterator[Server]:
    """Start lrukv-server as the benchmark runs it; *extra_args* are appended."""
    command = [
        *_pin(cpu),
        str(Path(sys.executable).parent / "lrukv-server"),
        "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
        "-i", str(KEYS), "--http-threads", str(HTTP_THREADS),
        "--grpc-workers", str(GRPC_WORKERS), "--data-dir", str(workdir / "lrukv-data"),
        *extra_args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir
    )
    server = Server(proc, "lrukv-server")
    try:
        lines = _read_until(proc, r"ready [\d.]+s after start", ready_timeout)
        text = "\n".join(lines)
        server.http = re.findall(r"HTTP listening on http://(\S+)", text)[0]
        server.grpc = re.findall(r"gRPC listening on (\S+)", text)[0]
        server.startup_s = float(re.findall(r"ready ([\d.]+)s after start", text)[0])
        yield server
    finally:
        server.stop()


@contextmanager
def bare_flask(cpu: str | None, workdir: Path) -> Iterator[Server]:
    port = _free_port()
    command = [
        *_pin(cpu), sys.executable, "-m", "gunicorn", "--chdir", str(HERE / "baselines"),
        "-w", "1", "-k", "gthread", "--threads", str(HTTP_THREADS), "--log-level", "warning",
        "--no-control-socket", "-b", f"127.0.0.1:{port}", "flask_dict_app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, cwd=workdir
    )
    server = Server(proc, "bare Flask + gunicorn")
    try:
        server.http = f"127.0.0.1:{port}"
        _wait_for_port(server.http)
        yield server
    finally:
        server.stop()


@contextmanager
def bare_grpc(cpu: str | None, workdir: Path) -> Iterator[Server]:
    command = [
        *_pin(cpu), sys.executable, str(HERE / "baselines" / "grpc_dict_server.py"),
        "--port", "0", "--workers", str(GRPC_WORKERS),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=workdir
    )
    server = Server(proc, "bare grpcio")
    try:
        lines = _read_until(proc, r"ready on ")
        server.grpc = re.findall(r"ready on (\S+)", "\n".join(lines))[0]
        yield server
    finally:
        server.stop()


def _http_load(setup: Setup, target: str, op: str, seconds: float, workdir: Path) -> dict[str, Any]:
    if setup.wrk is None:
        return _python_load(setup, "http", target, op, seconds)
    script = workdir / f"{op}.lua"
    script.write_text(_WRK_SCRIPT % {"keys": setup.keys, "value_size": len(VALUE), "op": op})
    command = [
        *_pin(setup.load_cpu), setup.wrk, "-t1", f"-c{setup.connections}",
        f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script), f"http://{target}",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    found = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(found.group(1))
    duration = data["duration_us"] / 1e6
    return {
        "requests": data["requests"],
        "seconds": duration,
        "errors": data["socket_errors"] + data["non2xx"],
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "tool": f"wrk -t1 -c{setup.connections}",
    }


def _python_load(setup: Setup, api: str, target: str, op: str, seconds: float) -> dict[str, Any]:
    command = [
        *_pin(setup.load_cpu), sys.executable, str(HERE / "server_load.py"), api,
        "--target", target, "--op", op, "--seconds", str(seconds),
        "--inflight", str(setup.inflight), "--connections", str(setup.connections),
        "--keys", str(setup.keys), "--value-size", str(len(VALUE)),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _measure(setup: Setup, server: Server, api: str, repeat: int, workdir: Path) -> list[Run]:
    target = server.http if api == "http" else server.grpc
    assert target is not None
    (preload_http if api == "http" else preload_grpc)(target, setup.keys, VALUE)
    runs = []
    for op in ("get", "put"):
        load = _http_load if api == "http" else _grpc_load
        if setup.warmup:
            load(setup, target, op, setup.warmup, workdir)
        server_before = _tree_cpu_seconds(server.proc.pid)
        load_before = _children_cpu_seconds()
        started = time.monotonic()
        result = load(setup, target, op, setup.seconds, workdir)
        elapsed = time.monotonic() - started
        server_cpu = 100 * (_tree_cpu_seconds(server.proc.pid) - server_before) / elapsed
        load_cpu = 100 * (_children_cpu_seconds() - load_before) / elapsed
        runs.append(
            Run(
                repeat=repeat,
                server="lrukv" if server.label == "lrukv-server" else "bare",
                api=api,
                op=op,
                rps=result["requests"] / result["seconds"],
                p50_ms=result["p50_ms"],
                p99_ms=result["p99_ms"],
                errors=result["errors"],
                tool=result["tool"],
                server_cpu_pct=server_cpu,
                load_cpu_pct=load_cpu,
            )
        )
        print(
            f"  repeat {repeat} {server.label:22} {api:4} {op:3}: "
            f"{runs[-1].rps:8.0f} req/s  p50 {runs[-1].p50_ms:6.2f} ms  "
            f"p99 {runs[-1].p99_ms:6.2f} ms  errors {runs[-1].errors}  "
            f"cpu server {server_cpu:3.0f}% load {load_cpu:3.0f}%  ({runs[-1].tool})",
            flush=True,
        )
    return runs


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of *pid* and its live descendants (gunicorn's
    master and worker), from /proc; 0 where /proc is missing."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(child) for child in children)
    return total


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's finished children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _grpc_load(setup: Setup, target: str, op: str, seconds: float, workdir: Path) -> dict[str, Any]:
    return _python_load(setup, "grpc", target, op, seconds)


def _median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (API, operation): medians of lrukv and of the baseline, and their ratio."""
    rows = []
    for api in ("http", "grpc"):
        for op in ("get", "put"):
            mine = [r for r in runs if (r.server, r.api, r.op) == ("lrukv", api, op)]
            bare = [r for r in runs if (r.server, r.api, r.op) == ("bare", api, op)]
            if not mine or not bare:
                continue
            lrukv_rps = statistics.median(r.rps for r in mine)
            bare_rps = statistics.median(r.rps for r in bare)
            ratio = lrukv_rps / bare_rps if bare_rps else 0.0
            rows.append(
                {
                    "api": api,
                    "op": op,
                    "lrukv_rps": lrukv_rps,
                    "bare_rps": bare_rps,
                    "ratio": ratio,
                    "meets_target": ratio >= TARGET_RATIO,
                    "lrukv_p50_ms": _median_run(mine).p50_ms,
                    "lrukv_p99_ms": _median_run(mine).p99_ms,
                    "bare_p50_ms": _median_run(bare).p50_ms,
                    "bare_p99_ms": _median_run(bare).p99_ms,
                    "errors": sum(r.errors for r in mine + bare),
                    "lrukv_server_cpu_pct": _median_run(mine).server_cpu_pct,
                    "bare_server_cpu_pct": _median_run(bare).server_cpu_pct,
                    "load_cpu_pct": max(r.load_cpu_pct for r in mine + bare),
                    "tools": sorted({r.tool for r in mine + bare}),
                }
            )
    return rows


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("grpcio", "flask", "gunicorn", "protobuf"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "?"
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_reports(
    out_dir: Path, setup: Setup, runs: list[Run], startups: list[float], command: str
) -> tuple[Path, Path]:
    rows = summarise(runs)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} x {_cpu_model()}, {platform.system()} {platform.release()}"
    versions = _versions()
    report = {
        "command": command,
        "date": when,
        "machine": machine,
        "versions": versions,
        "setup": asdict(setup),
        "summary": rows,
        "lrukv_startup_s": startups,
        "runs": [asdict(r) for r in runs],
    }
    json_path = out_dir / "server.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")

    pinning = (
        f"server on CPU {setup.server_cpu}, load on CPU {setup.load_cpu} (taskset)"
        if setup.server_cpu is not None
        else "not pinned (fewer than two CPUs)"
    )
    http_tool = (
        f"wrk -t1 -c{setup.connections}"
        if setup.wrk
        else f"Python, {setup.connections} keep-alive connections (wrk not used)"
    )
    lines = [
        "# lrukv-server against bare Flask and bare grpcio",
        "",
        f"Command: `{command}`  ",
        f"Date: {when}  ",
        f"Machine: {machine}; {pinning}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "  ",
        f"Load: {setup.keys} keys with {len(VALUE)}-byte values, GET and PUT (overwrite) "
        f"round-robin; HTTP: {http_tool}; gRPC: Python client with {setup.inflight} calls "
        "in flight  ",
        f"Each cell: median of {setup.repeats} runs of {setup.seconds:g} s (after a "
        f"{setup.warmup:g} s warm-up), servers restarted and interleaved every repeat; "
        "latencies are those of the median run.",
        "",
        "| API | op | lrukv req/s | baseline req/s | ratio | target >= 0.8 "
        "| lrukv p50 / p99 ms | baseline p50 / p99 ms | errors | server CPU lrukv / baseline "
        "| load CPU (max) |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        baseline = "bare Flask" if row["api"] == "http" else "bare grpcio"
        lines.append(
            f"| {row['api'].upper()} | {row['op'].upper()} | {row['lrukv_rps']:,.0f} "
            f"| {row['bare_rps']:,.0f} ({baseline}) | {row['ratio']:.2f} "
            f"| {'met' if row['meets_target'] else '**missed**'} "
            f"| {row['lrukv_p50_ms']:.2f} / {row['lrukv_p99_ms']:.2f} "
            f"| {row['bare_p50_ms']:.2f} / {row['bare_p99_ms']:.2f} | {row['errors']} "
            f"| {row['lrukv_server_cpu_pct']:.0f}% / {row['bare_server_cpu_pct']:.0f}% "
            f"| {row['load_cpu_pct']:.0f}% |"
        )
    if startups:
        lines += [
            "",
            f"lrukv-server start-up (process start to ready line, pinned to one CPU): "
            f"median {statistics.median(startups):.2f} s, max {max(startups):.2f} s "
            f"over {len(startups)} starts.",
        ]
    lines += [
        "",
        "CPU columns: % of one CPU used during the measured run (servers: master and "
        "worker together). A server near 100% while the load generator stays below it "
        "means the server, not the load, set the pace.",
    ]
    missed = [r for r in rows if not r["meets_target"]]
    lines += ["", "## Verdict", ""]
    if missed:
        lines.append(
            "Missed: "
            + ", ".join(f"{r['api'].upper()} {r['op'].upper()} ({r['ratio']:.2f})" for r in missed)
            + ". See docs/api.md (Performance) for why."
        )
    else:
        lines.append("Every target met.")
    md_path = out_dir / "server.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds; temp output")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results")
    args = parser.parse_args()

    two_cpus = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    wrk = shutil.which("wrk")
    setup = Setup(
        keys=100 if args.smoke else KEYS,
        seconds=0.3 if args.smoke else args.seconds,
        warmup=0.0 if args.smoke else 1.0,
        repeats=1 if args.smoke else args.repeats,
        connections=8 if args.smoke else args.connections,
        inflight=8 if args.smoke else args.inflight,
        server_cpu="0" if two_cpus else None,
        load_cpu="1" if two_cpus else None,
        wrk=None if args.smoke else wrk,
        smoke=args.smoke,
    )
    if setup.wrk is None:
        reason = "--smoke" if args.smoke else "wrk is not installed (apt-get install wrk)"
        print(f"HTTP load: Python load generator ({reason}); numbers are lower than wrk's")
    if setup.server_cpu is None:
        print("fewer than two CPUs (or no taskset): server and load are not pinned")
    command = "python benchmarks/bench_server.py" + (
        "" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:])
    )

    runs: list[Run] = []
    startups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lrukv-bench-") as tmp:
        workdir = Path(tmp)
        contenders = ["lrukv", "flask", "grpc"]
        for repeat in range(1, setup.repeats + 1):
            for name in contenders[repeat - 1 :] + contenders[: repeat - 1]:
                if name == "lrukv":
                    with lrukv_server(setup.server_cpu, workdir) as server:
                        assert server.startup_s is not None
                        startups.append(server.startup_s)
                        runs += _measure(setup, server, "http", repeat, workdir)
                        runs += _measure(setup, server, "grpc", repeat, workdir)
                elif name == "flask":
                    with bare_flask(setup.server_cpu, workdir) as server:
                        runs += _measure(setup, server, "http", repeat, workdir)
                else:
                    with bare_grpc(setup.server_cpu, workdir) as server:
                        runs += _measure(setup, server, "grpc", repeat, workdir)
        out_dir = args.out or (workdir / "results" if args.smoke else RESULTS)
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path, json_path = write_reports(out_dir, setup, runs, startups, command)
        print(md_path.read_text())
        print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
