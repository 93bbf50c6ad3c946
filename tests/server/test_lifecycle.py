"""Start-up, shutdown and worker restarts of the real ``lrukv-server`` process."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.conftest import StartServer
from tests.harness import REPO_ROOT, ServerProcess, server_command
from tests.server.faults import MARKER_DIR_ENV, SLOW_KEY

TIMEOUT = 10
FAULT_SERVER = [sys.executable, "-m", "tests.server.fault_server"]


def _put(server: ServerProcess, key: str, value: bytes) -> int:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request("PUT", f"/v1/{key}", body=value)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _get(server: ServerProcess, key: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request("GET", f"/v1/{key}")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_for_files(directory: Path, count: int, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while len(list(directory.iterdir())) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} requests were not in flight after {timeout}s")
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_drains_in_flight_http_and_grpc_requests(
    lrukv_server_factory: StartServer, tmp_path: Path, sig: signal.Signals
) -> None:
    markers = tmp_path / "in-flight"
    markers.mkdir()
    data_dir = tmp_path / "data"
    server = lrukv_server_factory(
        "-d", "file", command=FAULT_SERVER, data_dir=data_dir, env={MARKER_DIR_ENV: str(markers)}
    )
    http_status: list[int] = []
    http_thread = threading.Thread(
        target=lambda: http_status.append(_put(server, f"{SLOW_KEY}-http", b"from http"))
    )
    http_thread.start()
    with grpc.insecure_channel(server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        grpc_call = kv.Put.future(
            kv_pb2.PutRequest(key=f"{SLOW_KEY}-grpc", value=b"from grpc"), timeout=30
        )
        _wait_for_files(markers, 2)  # both requests are inside their handlers now
        server.proc.send_signal(sig)
        http_thread.join(30)
        assert http_status == [201], server.output()
        grpc_call.result()  # raises if the drain cut it off
    assert server.proc.wait(30) == 0, server.output()
    assert not server.worker_alive()
    # The drained writes were logged and flushed: a new server replays them.
    again = lrukv_server_factory("-d", "file", data_dir=data_dir)
    assert _get(again, f"{SLOW_KEY}-http") == (200, b"from http")
    assert _get(again, f"{SLOW_KEY}-grpc") == (200, b"from grpc")


def test_sigterm_flushes_the_transaction_log(
    lrukv_server_factory: StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = lrukv_server_factory(
        "-d", "file", "--txlog-fsync", "never", "-i", "1000", data_dir=data_dir
    )
    with grpc.insecure_channel(server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        for i in range(100):
            kv.Put(kv_pb2.PutRequest(key=f"rpc-{i}", value=b"%d" % i), timeout=TIMEOUT)
    for i in range(100):
        assert _put(server, f"http-{i}", b"%d" % i) == 201
    assert server.stop() == 0, server.output()
    again = lrukv_server_factory("-d", "file", "-i", "1000", data_dir=data_dir)
    assert "replayed 200 events" in again.stdout()
    assert _get(again, "rpc-99") == (200, b"99")
    assert _get(again, "http-0") == (200, b"0")


@pytest.mark.parametrize("logged", [False, True], ids=["log-off", "log-on"])
def test_a_dead_worker_is_replaced(
    lrukv_server_factory: StartServer, tmp_path: Path, logged: bool
) -> None:
    args = ["-d", "file"] if logged else []
    server = lrukv_server_factory(*args)
    assert _put(server, "before-crash", b"v") == 201
    old_worker = server.worker_pid
    # The worker dies the hardest way (as under the OOM killer); the master starts another.
    subprocess.run(["kill", "-KILL", str(old_worker)], check=True)
    new_worker = server.wait_for_new_worker()
    assert new_worker != old_worker
    assert _put(server, "after-crash", b"w") == 201
    if logged:
        assert _get(server, "before-crash") == (200, b"v")
        assert "by replaying the transaction log" in server.stderr()
    else:
        assert _get(server, "before-crash")[0] == 404
        assert "EMPTY store" in server.stderr()
    assert server.stop() == 0, server.output()


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run lrukv-server to completion (for start-up failures); never leaves it running."""
    return subprocess.run(
        [*server_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "0"], "shards must be a positive int"),
        (["-d", "postgres"], "LRUKV_PG_DSN is not set"),
    ],
)
def test_bad_settings_exit_2_with_one_clear_line(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert message in _one_error_line(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--loggerMode", "loud"], "unknown log mode 'loud'"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_and_one_error_line(
    args: list[str], message: str
) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: lrukv-server ")
    last = result.stderr.splitlines()[-1]
    assert last.startswith("lrukv-server: error: ") and message in last
    assert "Traceback" not in result.stderr
    assert "ready" not in result.stdout


@pytest.mark.parametrize("log", [[], ["-d", "file"]])
def test_a_bad_fsync_policy_is_named_with_the_valid_ones(log: list[str]) -> None:
    result = _run(*log, "--txlog-fsync", "sometimes")
    assert result.returncode == 2
    assert "invalid fsync policy 'sometimes'" in result.stderr
    assert "always, interval:MS" in result.stderr and "never" in result.stderr
    assert "(-d" not in result.stderr  # the log flag is not what is wrong
    assert "Traceback" not in result.stderr
    assert "ready" not in result.stdout


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The start-up failure's message: stderr must be exactly one ``lrukv-server:
    error:`` line (docs/api.md), nothing on stdout."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{result.stderr}"
    assert lines[0].startswith("lrukv-server: error: "), result.stderr
    assert result.stdout == "", result.stdout
    return lines[0].removeprefix("lrukv-server: error: ")


def _taken_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_taken_http_port_exits_1_with_one_line() -> None:
    with _taken_port() as holder:
        port = holder.getsockname()[1]
        result = _run("--http-port", str(port), "--grpc-port", "0")
    assert result.returncode == 1
    assert _one_error_line(result) == (
        f"cannot listen for HTTP on 127.0.0.1:{port}: Address already in use"
    )


@pytest.mark.parametrize("mode", ["prod", "development"])
def test_a_taken_grpc_port_exits_3_with_one_line(mode: str) -> None:
    # In development mode too: gunicorn's "Starting gunicorn", "Booting worker"
    # and "Worker exiting" lines used to surround the error.
    with _taken_port() as holder:
        port = holder.getsockname()[1]
        result = _run("--http-port", "0", "--grpc-port", str(port), "-l", mode)
    assert result.returncode == 3
    assert _one_error_line(result) == (
        f"cannot listen for gRPC on 127.0.0.1:{port}: Address already in use"
    )


def test_a_taken_raft_port_exits_3_with_one_line(tmp_path: Path) -> None:
    # PySyncObj used to log a two-exception traceback before lrukv's line.
    with _taken_port() as holder:
        port = holder.getsockname()[1]
        result = _run("--http-port", "0", "--grpc-port", "0", "--raft-addr",
                      f"127.0.0.1:{port}", "--cluster-secret", "s" * 20,
                      "--data-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 3
    assert _one_error_line(result) == (
        f"cannot listen for Raft on 127.0.0.1:{port}: Address already in use"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_reason_for_a_shutdown_is_logged(
    lrukv_server_factory: StartServer, sig: signal.Signals
) -> None:
    server = lrukv_server_factory()
    server.proc.send_signal(sig)
    assert server.proc.wait(30) == 0
    reasons = [line for line in server.stderr().splitlines() if "shutting down" in line]
    assert len(reasons) == 1, server.stderr()
    assert reasons[0].endswith(
        f"shutting down: {sig.name} received; draining in-flight requests for up to 10s"
    )


def test_an_unopenable_transaction_log_exits_3_with_one_line(tmp_path: Path) -> None:
    # A directory where the log file should be: the worker cannot open it.
    (tmp_path / "data" / "txlog.log").mkdir(parents=True)
    result = _run("--http-port", "0", "--grpc-port", "0", "-d", "file",
                  "--data-dir", str(tmp_path / "data"))  # fmt: skip
    assert result.returncode == 3
    message = _one_error_line(result)
    assert message.startswith(f"transaction log {tmp_path / 'data' / 'txlog.log'}: "), message


def test_an_uncreatable_data_directory_exits_3_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = _run("--http-port", "0", "--grpc-port", "0", "-d", "file",
                  "--data-dir", str(tmp_path / "file" / "data"))  # fmt: skip
    assert result.returncode == 3
    assert _one_error_line(result) == (
        f"cannot create the data directory {tmp_path / 'file' / 'data'}: Not a directory"
    )


def test_the_originals_observability_flags_start_a_server_with_no_warning(
    lrukv_server_factory: StartServer,
) -> None:
    server = lrukv_server_factory("-m", "-t", "-j", "http://127.0.0.1:14268/api/traces")
    assert "not implemented" not in server.stderr()
    assert _put(server, "k", b"v") == 201


def test_help_and_version() -> None:
    help_text = _run("--help")
    assert help_text.returncode == 0
    assert "LRUKV_ITEMS_PER_SHARD" in help_text.stdout
    assert "--itemPerShard" in help_text.stdout
    version = _run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("lrukv-server ")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_default_run_is_one_node_on_8080_and_50051_on_loopback(tmp_path: Path) -> None:
    if not (_free(8080) and _free(50051)):
        pytest.skip("ports 8080 or 50051 are in use on this machine")
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            server_command(), stdout=subprocess.PIPE, stderr=stderr, cwd=tmp_path, text=True
        )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "ready" in line:
                break
        if proc.poll() == 1 and "cannot listen" in stderr_path.read_text():
            pytest.skip("another process took port 8080 or 50051 meanwhile")
        assert "lrukv-server: HTTP listening on http://127.0.0.1:8080" in lines
        assert "lrukv-server: gRPC listening on 127.0.0.1:50051" in lines
        assert any("transaction log off" in line for line in lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, stderr_path.read_text()
    assert not (tmp_path / "lrukv-data").exists()  # no files without a transaction log
