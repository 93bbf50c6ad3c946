"""The installed ``lrukv`` command, as a user runs it, against the real server:
binary-safe pipes, exit codes, one-line errors, completion, and a short real
``lrukv bench`` whose JSON result and plots are checked.

Every command runs with a timeout (subprocess.run kills it on expiry); servers
are stopped by PID at teardown by the harness fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lrukv_client import Client
from tests.conftest import StartServer
from tests.harness import ServerProcess

LRUKV = Path(sys.executable).parent / "lrukv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(
    *args: str,
    server: str | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    if server is not None:
        environ["LRUKV_SERVER"] = server
    environ.update(env or {})
    return subprocess.run(
        [str(LRUKV), *args],
        input=input,
        capture_output=True,
        env=environ,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lrukv: error: ")
    assert b"Traceback" not in result.stderr
    return lines[0]


def test_the_originals_commands_over_a_pipe(lrukv_server: ServerProcess) -> None:
    server = lrukv_server.rpc_addr
    assert run("put", "key-a", "Hello, key-value store!", server=server).stdout == b"OK\n"
    assert run("get", "key-a", server=server).stdout == b"Hello, key-value store!"
    binary = os.urandom(4096) + b"\n\x00\r\n"
    assert run("put", "bin", "-", input=binary, server=server).returncode == 0
    assert run("get", "bin", server=server).stdout == binary
    assert run("getkeys", server=server).stdout.split() == [b"bin", b"key-a"]
    items = run("getkeysvalues", server=server).stdout.decode().splitlines()
    assert items[1] == "key-a\tHello, key-value store!"
    assert items[0].startswith("bin\tbase64:")
    assert run("delete", "key-a", server=server).stdout == b"deleted\n"
    missing = run("get", "key-a", server=server)
    assert missing.returncode == 1
    assert missing.stdout == b""
    assert "key not found: key-a" in one_error_line(missing)


def test_the_http_transport_over_a_pipe(lrukv_server: ServerProcess) -> None:
    # CliRunner covers every command on both transports; here the installed
    # command proves its HTTP path end to end, binary-safe, in three runs.
    server = f"http://{lrukv_server.http_addr}"
    binary = os.urandom(4096) + b"\n\x00\r\n"
    assert run("put", "a/b", "-", input=binary, server=server).returncode == 0
    assert run("get", "a/b", server=server).stdout == binary
    listed = json.loads(run("--json", "items", server=server).stdout)
    assert listed["key"] == "a/b" and listed["encoding"] == "base64"


def test_non_utf8_argument_bytes_are_stored_exactly(lrukv_server: ServerProcess) -> None:
    raw = b"caf\xe9 latin-1"  # not UTF-8: argv carries it with surrogateescape
    result = subprocess.run(
        [os.fsencode(str(LRUKV)), b"--server", lrukv_server.rpc_addr.encode(), b"put", b"k", raw],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert run("get", "k", server=lrukv_server.rpc_addr).stdout == raw


def test_a_bad_key_is_a_usage_error_from_the_server(lrukv_server: ServerProcess) -> None:
    result = run("put", "bad\x01key", "v", server=lrukv_server.rpc_addr)
    assert result.returncode == 2
    assert "control character" in one_error_line(result)


def test_a_stopped_server_exits_3_within_the_timeout(lrukv_server: ServerProcess) -> None:
    address = lrukv_server.rpc_addr
    assert lrukv_server.stop() == 0
    # subprocess.run's timeout is the guard: a hang fails the test instead of blocking it.
    result = run("--timeout", "1", "get", "k", server=address, timeout=30)
    assert result.returncode == 3
    assert "unavailable" in one_error_line(result)


def test_closing_stdout_early_ends_quietly(lrukv_server: ServerProcess) -> None:
    from lrukv_client import Client

    with Client(lrukv_server.rpc_addr) as kv:
        for i in range(1000):  # about 1 MB of lines: more than a pipe buffers
            kv.put(f"k{i:04}", b"v" * 1000)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    environ["LRUKV_SERVER"] = lrukv_server.rpc_addr
    proc = subprocess.Popen(
        [str(LRUKV), "items"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"k")
        proc.stdout.close()
        assert proc.wait(60) == 141
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_shell_completion_completes_command_names() -> None:
    result = run(env={"_LRUKV_COMPLETE": "complete_bash", "COMP_WORDS": "lrukv getk",
                      "COMP_CWORD": "1"})  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.split() == [b"getkeys", b"getkeysvalues"]


def test_bench_runs_a_short_real_load(lrukv_server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run(
        "--json", "bench", "--duration", "2", "--clients", "4", "--processes", "2",
        "--distribution", "zipf", "--keyspace", "500", "--mix", "get=70,put=25,delete=5",
        "--private-ratio", "0.2", "--output", str(out), "--plot", "--progress",
        server=lrukv_server.rpc_addr, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    printed = json.loads(result.stdout)
    written = json.loads(out.read_text())
    assert printed["run_id"] == written["run_id"]
    assert written["format"] == "lrukv-bench/1"
    assert written["config"]["clients"] == 4
    assert written["ops"]["errors"] == 0 and written["errors"] == {}
    assert written["ops"]["completed"] > 0
    assert written["throughput_ops_s"] > 0
    latency = written["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert set(written["by_op"]) == {"get", "put", "delete"}
    assert sum(written["timeline"]["ops"]) == written["ops"]["completed"]
    assert written["correctness"]["checked_reads"] > 0
    assert written["correctness"]["errors"] == 0
    assert written["passed"] is True
    assert len(written["plots"]) == 2
    for plot in written["plots"]:
        assert Path(plot).read_bytes().startswith(PNG_MAGIC)


def test_bench_with_a_tiny_capacity_counts_evictions_not_errors(
    lrukv_server_factory: StartServer, tmp_path: Path
) -> None:
    small = lrukv_server_factory("--shards", "1", "--items-per-shard", "30")
    out = tmp_path / "bench.json"
    result = run(
        "-t", "http", "bench", "--ops", "3000", "--clients", "2", "--keyspace", "300",
        "--private-keys", "20", "--private-ratio", "0.3", "--mix", "get=1,put=1",
        "--no-preload", "--output", str(out),
        server=small.http_addr, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    check = json.loads(out.read_text())["correctness"]
    assert check["evicted"] > 0
    assert check["errors"] == 0
    assert b"correctness PASSED" in result.stdout


def _start_bench(
    args: list[str], server: str, global_args: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    environ["LRUKV_SERVER"] = server
    return subprocess.Popen(
        [str(LRUKV), *global_args, "bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )


def _wait_for_load(proc: subprocess.Popen[bytes]) -> None:
    """Block until the bench says its timed load began (stderr line)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"load started" in line:
            return
    raise AssertionError(f"the bench ended before its load started (exit {proc.wait()})")


def _wait_for_private_writes(server: str, timeout: float = 20.0) -> None:
    """Block until the timed load has written private keys (``...w<n>:p<i>``), so
    some operations have completed when the test interrupts the bench. Waiting
    for "load started" alone raced with a busy machine: the interrupt could land
    before the first operation finished."""
    deadline = time.monotonic() + timeout
    with Client(server) as client:
        while time.monotonic() < deadline:
            listed = client.keys()
            if sum(":p" in key for key in listed) >= 2:
                return
            time.sleep(0.05)
    raise AssertionError("the bench wrote no private key")


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_stops_the_bench_and_still_reports(
    lrukv_server: ServerProcess, tmp_path: Path, processes: str
) -> None:
    out = tmp_path / "bench.json"
    args = ["--duration", "60", "-c", "2", "-p", processes, "--no-progress", "-o", str(out)]
    proc = _start_bench(args, lrukv_server.rpc_addr)
    try:
        _wait_for_load(proc)
        _wait_for_private_writes(lrukv_server.rpc_addr)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    data = json.loads(out.read_text())
    assert data["interrupted"] is True
    assert data["ops"]["completed"] > 0
    assert data["correctness"]["errors"] == 0
    assert b"[interrupted]" in stdout


def test_a_server_dying_mid_run_is_counted_and_the_run_ends_on_time(
    lrukv_server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    args = ["--duration", "3", "-c", "2", "--no-progress", "-o", str(out)]
    proc = _start_bench(args, lrukv_server.rpc_addr, ("--timeout", "0.5"))
    try:
        _wait_for_load(proc)
        assert lrukv_server.stop() == 0
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 6, stdout.decode()  # operations failed
    data = json.loads(out.read_text())
    assert data["errors"].get("Unavailable", 0) > 0
    assert data["ops"]["errors"] == sum(data["errors"].values())
    assert sum(data["timeline"]["errors"]) == data["ops"]["errors"]
    assert data["correctness"]["errors"] == 0  # failed writes are "maybe", never "wrong"
    assert b"errors by kind: Unavailable=" in stdout


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_stats_exists_and_ttl(lrukv_server: ServerProcess, transport: str) -> None:
    # In process (CliRunner) against the real server: a dozen commands, each
    # of which would pay the interpreter's start-up as a subprocess.
    from typer.testing import CliRunner

    from lrukv_client.cli import app

    server = lrukv_server.rpc_addr if transport == "grpc" else f"http://{lrukv_server.http_addr}"

    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, ["-s", server, *args], env={"LRUKV_TRANSPORT": None})

    assert cli("put", "session", "x", "--ttl", "300").exit_code == 0
    assert cli("put", "forever", "y").exit_code == 0
    assert cli("get", "absent").exit_code == 1  # one miss

    stats = cli("--json", "stats")
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert (data["size"], data["capacity"], data["shards"], data["items_per_shard"]) == (
        2, 1000, 10, 100,
    )  # fmt: skip
    assert data["misses"] == 1 and data["max_key_bytes"] == 1024
    assert data["evictions"] == {"capacity": 0, "bytes": 0, "expired": 0}
    assert "2 of 1,000 items" in cli("stats").stdout

    assert cli("exists", "session").stdout == "exists\n"
    absent = cli("exists", "nope")
    assert (absent.exit_code, absent.stdout) == (1, "absent\n")
    assert 0 < float(cli("ttl", "session").stdout) <= 300
    assert cli("ttl", "forever").stdout == "none\n"
    assert json.loads(cli("--json", "ttl", "forever").stdout) == {"key": "forever", "ttl": None}
    missing = cli("ttl", "nope")
    assert missing.exit_code == 1
    assert "key not found: nope" in missing.stderr

    # And once through the installed command.
    installed = run("stats", server=server)
    assert installed.returncode == 0, installed.stderr
    assert b"of 1,000 items" in installed.stdout


def test_bench_leaves_the_users_keys_alone(lrukv_server: ServerProcess, tmp_path: Path) -> None:
    server = lrukv_server.rpc_addr
    with Client(server) as kv:
        for i in range(50):
            kv.put(f"user:{i}", b"mine")
    # The default keyspace (1,000) does not fit beside 50 keys in 1,000 places.
    refused = run("bench", "--ops", "100", "-o", "-", server=server, timeout=120)
    assert refused.returncode == 2
    assert "would evict" in one_error_line(refused)
    result = run(
        "bench", "--ops", "500", "--keyspace", "200", "--prefix", "mine/", "-o", "-",
        server=server, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    with Client(server) as kv:
        assert sorted(kv.keys()) == sorted(f"user:{i}" for i in range(50))
    kept = run(
        "bench", "--ops", "100", "--keyspace", "20", "--prefix", "mine/", "--keep", "-o", "-",
        server=server, timeout=120,
    )  # fmt: skip
    assert kept.returncode == 0, kept.stderr.decode()
    with Client(server) as kv:
        listed = kv.keys()
    assert any(key.startswith("mine/") for key in listed)
