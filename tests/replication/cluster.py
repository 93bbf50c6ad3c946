"""A cluster of REAL ``lrukv-server`` processes on loopback, for tests.

    cluster = Cluster(tmp_path, size=3)
    cluster.start_all()                 # returns once every node is ready
    leader = cluster.wait_for_leader()  # a Node
    ...
    cluster.stop_all()                  # (the ``cluster`` fixture does this)

Raft ports are free-picked (bound to port 0 and released) before the nodes
start, since every node must know the others' addresses up front; HTTP and gRPC
ports are chosen by the kernel as the single-node harness does. Every process
is ended by its PID at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.harness import ServerProcess, start_server

__all__ = ["SECRET", "Cluster", "Node", "free_port", "http", "wait_until"]

SECRET = "test-cluster-secret-0123456789"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll *check* until it returns something truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, ValueError) as exc:  # a node down or not ready yet
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP request without following redirects: (status, body, headers)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@dataclass
class Node:
    name: str
    raft_addr: str
    data_dir: Path
    args: list[str]
    server: ServerProcess | None = None
    paused: bool = False

    @property
    def up(self) -> ServerProcess:
        assert self.server is not None, f"{self.name} is not running"
        return self.server

    @property
    def url(self) -> str:
        return self.up.http_url

    def status(self, digest: bool = False) -> dict[str, Any]:
        query = "?digest=1" if digest else ""
        code, body, _ = http("GET", f"{self.url}/v1/util/cluster{query}", timeout=5)
        if code != 200:
            raise ValueError(f"{self.name}: /v1/util/cluster answered {code}: {body!r}")
        status: dict[str, Any] = json.loads(body)
        return status

    def pids(self) -> list[int]:
        server = self.up
        return [server.pid, server.worker_pid]


@dataclass
class Cluster:
    tmp_path: Path
    size: int = 3
    extra_args: tuple[str, ...] = ()
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(self.size)]
        for number, addr in enumerate(addrs, start=1):
            peers = ",".join(a for a in addrs if a != addr)
            self.nodes.append(self._node(f"n{number}", addr, ["--peers", peers]))

    def _node(self, name: str, raft_addr: str, membership: list[str]) -> Node:
        data_dir = self.tmp_path / name
        args = [
            "--node-id",
            name,
            "--raft-addr",
            raft_addr,
            *membership,
            "--cluster-secret",
            SECRET,
            *self.extra_args,
        ]
        return Node(name, raft_addr, data_dir, args)

    def add_joiner(self, via: Node) -> Node:
        """A new node (not started) that joins the cluster through *via*."""
        node = self._node(f"n{len(self.nodes) + 1}", f"127.0.0.1:{free_port()}", [])
        node.args += ["--join", via.raft_addr]
        self.nodes.append(node)
        return node

    # ---------------------------------------------------------------- control

    def start(self, node: Node, *args: str) -> Node:
        node.server = start_server(
            self.tmp_path, *node.args, *args, data_dir=node.data_dir, ready_timeout=60
        )
        node.paused = False
        return node

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

    def kill(self, node: Node) -> None:
        """SIGKILL the node's processes (worker and master), by PID."""
        if node.paused:
            self.resume(node)
        node.up.kill()
        node.server = None

    def stop(self, node: Node) -> int:
        if node.paused:
            self.resume(node)
        code = node.up.stop(timeout=30)
        node.server = None
        return code

    def pause(self, node: Node) -> None:
        for pid in node.pids():
            os.kill(pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, node: Node) -> None:
        for pid in node.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        node.paused = False

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.server is None:
                continue
            with contextlib.suppress(Exception):
                if node.paused:
                    self.resume(node)
                if node.up.alive():
                    node.up.stop(timeout=20)  # a TimeoutError: stop() killed it
            node.server = None

    # ---------------------------------------------------------------- queries

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.server is not None and not n.paused]

    def wait_for_leader(self, timeout: float = 20.0, among: list[Node] | None = None) -> Node:
        """The node that the running nodes agree leads (and that says so itself)."""
        candidates = among if among is not None else self.running()

        def agreed() -> Node | None:
            views = {}
            for node in candidates:
                status = node.status()
                views[node.name] = status["leader"]["raft_addr"] if status["leader"] else None
            leaders = set(views.values())
            if len(leaders) != 1 or None in leaders:
                return None
            leader_addr = leaders.pop()
            leader = next((n for n in self.nodes if n.raft_addr == leader_addr), None)
            if leader is None or leader not in candidates or leader.status()["role"] != "leader":
                return None
            return leader

        return wait_until("an agreed leader", agreed, timeout)

    def wait_converged(self, nodes: list[Node] | None = None, timeout: float = 30.0) -> str:
        """Wait until *nodes* report the same applied index and store digest; return it."""
        members = nodes if nodes is not None else self.running()

        def same() -> str | None:
            first = [n.status() for n in members]
            indexes = {s["applied_index"] for s in first}
            if len(indexes) != 1:
                return None
            digests: set[str] = {n.status(digest=True)["digest"] for n in members}
            again = {n.status()["applied_index"] for n in members}
            if len(digests) == 1 and again == indexes:
                return digests.pop()
            return None

        return wait_until("replicas to agree on index and digest", same, timeout)
