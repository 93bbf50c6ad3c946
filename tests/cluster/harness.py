"""Start real Raft node processes (tests/cluster/node_proc.py) on loopback and talk to them.

    with Cluster(tmp_path, size=3) as cluster:      # every process ended by PID on exit
        leader = cluster.wait_leader()
        leader.call("propose", value="a")

Raft ports are picked free up front (the members must know each other's
addresses before any starts); a restarted node keeps its port and data dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-cluster-secret-0123456789"
T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """*count* distinct free loopback ports (held open together while picked)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.05) -> T:
    """Poll *check* until it returns something other than None/False; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last_error})")
        time.sleep(every)


class NodeStartError(RuntimeError):
    """The node process exited before it printed its control address."""


class Node:
    """One node process (not started until ``start()``)."""

    def __init__(self, root: Path, raft_addr: str, secret: str, snapshot_entries: int) -> None:
        self.raft_addr = raft_addr
        self.secret = secret
        self.snapshot_entries = snapshot_entries
        self.data_dir = root / raft_addr.replace(":", "_")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.data_dir / "stderr.log"
        self.proc: subprocess.Popen[str] | None = None
        self.control: tuple[str, int] | None = None
        self.starts = 0

    def start(self, peers: Sequence[str] = (), join: str | None = None) -> Node:
        args = [
            sys.executable, "-m", "tests.cluster.node_proc",
            "--self", self.raft_addr,
            "--peers", ",".join(peers),
            "--secret", self.secret,
            "--data-dir", str(self.data_dir),
            "--snapshot-entries", str(self.snapshot_entries),
        ]  # fmt: skip
        if join:
            args += ["--join", join]
        self.starts += 1
        with open(self.stderr_path, "a") as err:
            err.write(f"---- start {self.starts}\n")
            err.flush()
            self.proc = subprocess.Popen(
                args, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("node_proc: control "):
            self.proc.wait(timeout=10)
            raise NodeStartError(
                f"{self.raft_addr} exited {self.proc.returncode}: {self.log()[-2000:]}"
            )
        host, port = line.split()[-1].rsplit(":", 1)
        self.control = (host, int(port))
        return self

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, op: str, wait: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send one request (*fields* as JSON); wait up to *wait* s for the answer."""
        assert self.control is not None, "not started"
        with socket.create_connection(self.control, timeout=wait) as sock:
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            with sock.makefile("rb") as f:
                line = f.readline()
        if not line:
            raise ConnectionError(f"{self.raft_addr}: no answer to {op}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def stream(self, op: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """Send one request and yield every answer line until the node closes the
        connection (or dies: lines it wrote before dying still arrive)."""
        assert self.control is not None, "not started"
        with socket.create_connection(self.control, timeout=60) as sock:
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            with sock.makefile("rb") as f:
                while True:
                    try:
                        line = f.readline()
                    except ConnectionResetError:
                        return
                    if not line:
                        return
                    yield json.loads(line)

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def state(self, items: bool = False) -> dict[str, Any]:
        return self.call("state", items=items)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap (a SIGSTOPped process dies too)."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def stop(self) -> int:
        """SIGTERM (SIGCONT first, in case it was stopped); SIGKILL after 10 s."""
        assert self.proc is not None
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class Cluster:
    """*size* nodes that list each other as peers; ``add_node()`` makes more, unstarted."""

    def __init__(
        self, root: Path, size: int = 3, snapshot_entries: int = 50_000, start: bool = True
    ) -> None:
        self.root = root
        self.snapshot_entries = snapshot_entries
        self.nodes = [
            Node(root, f"127.0.0.1:{port}", SECRET, snapshot_entries) for port in free_ports(size)
        ]
        self.all: list[Node] = list(self.nodes)
        if start:
            try:
                for node in self.nodes:
                    self.start(node)
            except BaseException:
                self.close()
                raise

    def peers_of(self, node: Node) -> list[str]:
        return [n.raft_addr for n in self.nodes if n is not node]

    def start(self, node: Node) -> Node:
        return node.start(self.peers_of(node))

    def add_node(self, secret: str = SECRET) -> Node:
        node = Node(self.root, f"127.0.0.1:{free_ports(1)[0]}", secret, self.snapshot_entries)
        self.all.append(node)
        return node

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def wait_leader(self, among: list[Node] | None = None, timeout: float = 15.0) -> Node:
        """The node that says it leads and that the others of *among* follow."""
        candidates = among if among is not None else self.alive()

        def leader() -> Node | None:
            statuses = {n.raft_addr: n.status() for n in candidates}
            leaders = [n for n in candidates if statuses[n.raft_addr]["role"] == "leader"]
            if len(leaders) != 1:
                return None
            agreed = all(s["leader_addr"] == leaders[0].raft_addr for s in statuses.values())
            return leaders[0] if agreed else None

        return wait_for("one agreed leader", leader, timeout)

    def close(self) -> None:
        for node in self.all:
            if node.proc is not None:
                with contextlib.suppress(Exception):
                    node.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
