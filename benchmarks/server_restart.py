"""Restart to ready: how long a real ``lrukv-server`` takes, from exec until it serves.

Used by bench_txlog.py. ``restart_to_ready`` starts the installed ``lrukv-server``
(the script beside this interpreter) on two free loopback ports and times, from
just before the exec:

* http  until ``GET /v1/<probe key>`` returned the expected value (the master
        binds the HTTP port early, so the request waits in the backlog until the
        worker serves it: no polling interval is added);
* grpc  until ``grpc.health.v1.Health/Check`` answered SERVING (fast reconnect
        back-off, so a refused connection is retried within ~20 ms);
* ready the later of the two: when both APIs answer.

When both answer, it reads the CPU time (user + system) that the server's
master and worker processes have used so far: on a shared machine the wall time
grows with the load, the CPU time much less. It also reads the server's own
start-up lines: its "ready X s after start"
(measured from the process's start time in /proc) and the recovery report's
seconds (open + replay + apply inside the worker). The server is stopped with
SIGTERM and waited for, by its PID, before returning.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["python_start", "restart_to_ready"]

_READY = re.compile(r"lrukv-server: ready ([\d.]+)s after start")
_RECOVERED = re.compile(r"recovered from .* in ([\d.]+)s")
_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 20),
]


def _free_ports(count: int) -> list[int]:
    holders = [socket.socket() for _ in range(count)]
    try:
        for holder in holders:
            holder.bind(("127.0.0.1", 0))
        return [int(holder.getsockname()[1]) for holder in holders]
    finally:
        for holder in holders:
            holder.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of *pid* (all its threads) and of its children,
    the reaped ones included (fields 14-17 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of *pid* and its live children (the gunicorn worker)."""
    total = _cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        with contextlib.suppress(OSError):
            total += _cpu_seconds(int(child))
    return total


def _http_answers(port: int, key: str, expect: bytes, started: float, deadline: float) -> float:
    while time.perf_counter() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=deadline - time.perf_counter())
        try:
            conn.request("GET", f"/v1/{key}")
            response = conn.getresponse()
            body = response.read()
            if response.status == 200 and body == expect:
                return time.perf_counter() - started
            raise RuntimeError(f"GET /v1/{key} answered {response.status}: {body[:200]!r}")
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            time.sleep(0.01)  # not bound yet, or the master was still starting
        finally:
            conn.close()
    raise TimeoutError("HTTP did not answer in time")


def _grpc_serving(port: int, started: float, deadline: float, out: dict[str, object]) -> None:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=_FAST_RECONNECT) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while time.perf_counter() < deadline:
                try:
                    reply = check(
                        health_pb2.HealthCheckRequest(service=""),
                        timeout=max(0.01, deadline - time.perf_counter()),
                        wait_for_ready=True,
                    )
                except grpc.RpcError:
                    time.sleep(0.01)
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    out["grpc_s"] = time.perf_counter() - started
                    return
                time.sleep(0.01)
            out["error"] = "gRPC health was not SERVING in time"
    except Exception as exc:  # reported by the caller
        out["error"] = repr(exc)


def python_start(code: str) -> dict[str, float]:
    """Wall and CPU seconds of ``python -c <code>`` with this interpreter: with
    "pass", the interpreter's own start; with "import lrukv_server.cli", that
    plus every import the server's master makes before it forks its worker."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def restart_to_ready(
    log_path: Path,
    workdir: Path,
    *,
    probe_key: str,
    expect: bytes,
    items_per_shard: int,
    timeout: float = 180.0,
) -> dict[str, float]:
    """Start lrukv-server on the file log at *log_path* and time it until ready
    (see the module docstring). Returns seconds: http_s, grpc_s, ready_s, cpu_s,
    server_ready_s (its own figure) and server_recovery_s."""
    http_port, grpc_port = _free_ports(2)
    command = [
        str(Path(sys.executable).parent / "lrukv-server"),
        "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "-i", str(items_per_shard), "-d", f"file:{log_path}", "--txlog-fsync", "never",
        "--data-dir", str(workdir), "--log-mode", "prod",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    stdout_path = workdir / "restart.stdout"
    grpc_result: dict[str, object] = {}
    with open(stdout_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env
        )
    try:
        deadline = started + timeout
        prober = threading.Thread(
            target=_grpc_serving, args=(grpc_port, started, deadline, grpc_result), daemon=True
        )
        prober.start()
        http_s = _http_answers(http_port, probe_key, expect, started, deadline)
        prober.join(max(0.0, deadline - time.perf_counter()))
        if "grpc_s" not in grpc_result:
            raise RuntimeError(f"gRPC: {grpc_result.get('error', 'no answer')}")
        cpu_s = _tree_cpu_seconds(proc.pid)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = stdout_path.read_text(errors="replace")
    ready = _READY.search(text)
    recovered = _RECOVERED.search(text)
    if ready is None or recovered is None:
        raise RuntimeError(f"start-up lines not found in the server's output:\n{text}")
    grpc_s = float(grpc_result["grpc_s"])  # type: ignore[arg-type]
    with contextlib.suppress(OSError):
        stdout_path.unlink()
    return {
        "http_s": http_s,
        "grpc_s": grpc_s,
        "ready_s": max(http_s, grpc_s),
        "cpu_s": cpu_s,
        "server_ready_s": float(ready.group(1)),
        "server_recovery_s": float(recovered.group(1)),
    }
