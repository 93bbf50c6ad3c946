"""Start the REAL ``lrukv-server`` process for tests, on free loopback ports.

    from tests.harness import start_server

    server = start_server(tmp_path, "--shards", "4")     # returns once it is ready
    try:
        ...  # speak HTTP to server.http_url, gRPC to server.rpc_addr
    finally:
        assert server.stop() == 0                         # SIGTERM, wait, exit status

Or use the fixtures from tests/conftest.py: ``lrukv_server`` (one server per
test), ``lrukv_server_factory`` (start several, with arguments; all stopped at
teardown). Every process started here is stopped by its PID at teardown, also
when the test fails.

How it works: the server is started with ``--host 127.0.0.1 --http-port 0
--grpc-port 0`` (the kernel picks free ports, so there is no race on a port
number), its stdout and stderr go to files under *tmp_path*, and start_server
reads the start-up lines the server prints to stdout::

    lrukv-server: HTTP listening on http://127.0.0.1:PORT
    lrukv-server: gRPC listening on 127.0.0.1:PORT
    lrukv-server: ready 0.42s after start (master pid M, worker pid W)

The environment is the test's minus every ``LRUKV_*`` variable (so a
developer's settings cannot change a test), plus *env*.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServerProcess", "ServerStartError", "server_command", "start_server"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_HTTP_LINE = re.compile(r"^lrukv-server: HTTP listening on (https?)://(\S+)$", re.MULTILINE)
_GRPC_LINE = re.compile(r"^lrukv-server: gRPC listening on (\S+)$", re.MULTILINE)
_READY_LINE = re.compile(
    r"^lrukv-server: ready ([\d.]+)s after start \(master pid (\d+), worker pid (\d+)\)$",
    re.MULTILINE,
)
_counter = itertools.count(1)


class ServerStartError(RuntimeError):
    """The server exited or did not get ready; the message has its output."""


def server_command() -> list[str]:
    """The installed ``lrukv-server`` script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "lrukv-server"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lrukv_server"]


@dataclass
class ServerProcess:
    """A running ``lrukv-server``: its process, addresses and output files."""

    proc: subprocess.Popen[bytes]
    http_addr: str  # "127.0.0.1:PORT"
    rpc_addr: str  # "127.0.0.1:PORT"
    data_dir: Path
    stdout_path: Path
    stderr_path: Path
    worker_pid: int
    startup_seconds: float
    args: list[str] = field(default_factory=list)
    scheme: str = "http"  # "https" when the server was started with --tls-cert

    @property
    def pid(self) -> int:
        """The master's PID (the process started)."""
        return self.proc.pid

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.http_addr}"

    @property
    def http_port(self) -> int:
        return int(self.http_addr.rsplit(":", 1)[1])

    @property
    def rpc_port(self) -> int:
        return int(self.rpc_addr.rsplit(":", 1)[1])

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        """stdout and stderr, for assertion messages."""
        return f"--- stdout ---\n{self.stdout()}--- stderr ---\n{self.stderr()}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send *sig* to the master and wait for it to exit; return its exit status.

        If it has not exited after *timeout* seconds, both processes are killed
        and TimeoutError is raised (a graceful stop that hangs is a bug).
        """
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"lrukv-server pid {self.pid} did not exit {timeout}s after signal {sig}; "
                f"killed it\n{self.output()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL the worker, then the master, by PID (the worker only while it is
        still this master's child, so a recycled PID is never hit)."""
        if _parent_of(self.worker_pid) == self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker_pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def wait_for_new_worker(self, timeout: float = 30.0) -> int:
        """After the worker died, wait until the master's new worker printed its
        ready line; remember and return the new worker's PID."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [int(m.group(3)) for m in _READY_LINE.finditer(self.stdout())]
            if pids and pids[-1] != self.worker_pid:
                self.worker_pid = pids[-1]
                return self.worker_pid
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"the master exited ({self.proc.returncode})\n{self.output()}"
                )
            time.sleep(0.02)
        raise ServerStartError(f"no new worker within {timeout}s\n{self.output()}")

    def worker_alive(self) -> bool:
        """Whether the worker process still runs as this master's child."""
        return _parent_of(self.worker_pid) == self.pid


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    if fields[0] == b"Z":  # a zombie is dead
        return None
    return int(fields[1])


def start_server(
    tmp_path: Path,
    *extra_args: str,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    data_dir: Path | None = None,
    ready_timeout: float = 30.0,
) -> ServerProcess:
    """Start ``lrukv-server`` with *extra_args* (after the harness's own, so they
    win) and return once it printed its ready line.

    *command* replaces the server command (e.g. ``[sys.executable, "-m",
    "tests.server.fault_server"]``); *data_dir* defaults to a fresh directory
    under *tmp_path*. Raises ServerStartError, with the server's output, if it
    exits or is not ready within *ready_timeout* seconds (then it is killed).
    """
    number = next(_counter)
    data = data_dir if data_dir is not None else tmp_path / f"data-{number}"
    stdout_path = tmp_path / f"server-{number}.stdout"
    stderr_path = tmp_path / f"server-{number}.stderr"
    args = [
        *(command if command is not None else server_command()),
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--data-dir",
        str(data),
        "--log-mode",
        "development",
        *extra_args,
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    environ["PYTHONUNBUFFERED"] = "1"
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), environ.get("PYTHONPATH", "")) if p
    )
    environ.update(env or {})
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmp_path, env=environ
        )
    deadline = time.monotonic() + ready_timeout
    while True:
        text = stdout_path.read_text(errors="replace")
        ready = _READY_LINE.search(text)
        if ready:
            http = _HTTP_LINE.search(text)
            grpc = _GRPC_LINE.search(text)
            assert http and grpc, text
            return ServerProcess(
                proc=proc,
                http_addr=http.group(2),
                rpc_addr=grpc.group(1),
                data_dir=data,
                stdout_path=stdout_path,
                stderr_path=stderr_path,
                worker_pid=int(ready.group(3)),
                startup_seconds=float(ready.group(1)),
                args=args,
                scheme=http.group(1),
            )
        if proc.poll() is not None:
            raise ServerStartError(
                f"lrukv-server exited with status {proc.returncode} before it was ready\n"
                f"command: {args}\n--- stdout ---\n{text}--- stderr ---\n"
                f"{stderr_path.read_text(errors='replace')}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise ServerStartError(
                f"lrukv-server was not ready after {ready_timeout}s; killed it\n"
                f"command: {args}\n--- stdout ---\n{text}--- stderr ---\n"
                f"{stderr_path.read_text(errors='replace')}"
            )
        time.sleep(0.02)
