"""One Raft node in its own process, for the cluster tests and the benchmark:
``python -m tests.cluster.node_proc --self 127.0.0.1:P --peers A,B --secret S --data-dir D``.

It runs a RaftNode over a ListFSM and answers one JSON request per line on a
control port (127.0.0.1, picked by the kernel), printed first thing as
``node_proc: control 127.0.0.1:PORT``. If the node cannot start (say, joining
with the wrong secret) it prints ``node_proc: error ...`` to stderr and exits 2.

Requests (``{"op": ...}``), each answered with one JSON line:

* ``propose`` value, timeout: ``{"ok": true, "result": n}`` or ``{"ok": false,
  "error": "NotLeader"|"Timeout"|"Unavailable"|..., "leader": addr}``
* ``propose_many`` prefix, count, timeout, in_flight: proposes ``prefix-0…``
  with up to in_flight outstanding; ``{"acked": [...], "errors": {name: n}}``
* ``propose_stream`` (same fields): the same, but answers one line
  ``{"ack": value}`` per acknowledged proposal as it happens, then ``{"end": true}``
  (so a test can kill the cluster in the middle and know what was acknowledged)
* ``barrier`` timeout, ``status``, ``state`` (ListFSM summary; ``items`` too
  with ``"items": true``), ``add`` / ``remove`` addr, ``snapshot``
* ``bench`` seconds, in_flight, size: closed-loop proposals from this process,
  ``{"done": n, "seconds": s, "latencies_ms": [...]}`` (a sample)
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import json
import logging
import queue
import random
import signal
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict
from typing import Any

from lrukv_server.raft import RaftConfig, RaftNode
from tests.cluster.list_fsm import ListFSM


def error_reply(exc: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "error": type(exc).__name__,
        "message": str(exc),
        "leader": getattr(exc, "leader_raft", None),
    }


class Control:
    def __init__(self, node: RaftNode, fsm: ListFSM) -> None:
        self.node = node
        self.fsm = fsm

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        timeout = float(req.get("timeout", 5.0))
        if op == "propose":
            try:
                result = self.node.propose(req["value"].encode(), timeout).result()
            except Exception as exc:
                return error_reply(exc)
            return {"ok": True, "result": result}
        if op == "propose_many":
            return self.propose_many(req["prefix"], int(req["count"]), timeout, req["in_flight"])
        if op == "barrier":
            try:
                return {"ok": True, "index": self.node.read_barrier(timeout).result()}
            except Exception as exc:
                return error_reply(exc)
        if op == "status":
            status = asdict(self.node.status())
            status["role"] = status["role"].value
            return {"ok": True, **status}
        if op == "state":
            reply: dict[str, Any] = {"ok": True, **self.fsm.summary()}
            if req.get("items"):
                reply["items"] = [item.decode() for item in list(self.fsm.items)]
            return reply
        if op in ("add", "remove"):
            change = self.node.add_member if op == "add" else self.node.remove_member
            try:
                change(req["addr"], timeout).result()
            except Exception as exc:
                return error_reply(exc)
            return {"ok": True}
        if op == "snapshot":
            self.node.force_snapshot()
            return {"ok": True}
        if op == "bench":
            return self.bench(float(req["seconds"]), int(req["in_flight"]), int(req["size"]))
        return {"ok": False, "error": "BadRequest", "message": f"unknown op {op!r}"}

    def propose_many(
        self, prefix: str, count: int, timeout: float, in_flight: int
    ) -> dict[str, Any]:
        slots = threading.BoundedSemaphore(in_flight)
        acked: list[str] = []
        errors: dict[str, int] = {}
        lock = threading.Lock()

        def done(value: str, future: Future[object]) -> None:
            exc = future.exception()
            with lock:
                if exc is None:
                    acked.append(value)
                else:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            slots.release()

        for i in range(count):
            slots.acquire()
            value = f"{prefix}-{i}"
            future = self.node.propose(value.encode(), timeout)
            future.add_done_callback(functools.partial(done, value))
        for _ in range(in_flight):
            slots.acquire()
        return {"ok": True, "acked": acked, "errors": errors}

    def propose_stream(self, req: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
        slots = threading.BoundedSemaphore(int(req["in_flight"]))
        acks: queue.SimpleQueue[str | None] = queue.SimpleQueue()

        def done(value: str, future: Future[object]) -> None:
            if future.exception() is None:
                acks.put(value)  # the Raft thread never waits on the socket
            slots.release()

        def proposer() -> None:
            for i in range(int(req["count"])):
                slots.acquire()
                value = f"{req['prefix']}-{i}"
                future = self.node.propose(value.encode(), float(req.get("timeout", 5.0)))
                future.add_done_callback(functools.partial(done, value))
            for _ in range(int(req["in_flight"])):
                slots.acquire()
            acks.put(None)

        threading.Thread(target=proposer, daemon=True).start()
        while (value := acks.get()) is not None:
            send({"ack": value})
        send({"end": True})

    def bench(self, seconds: float, in_flight: int, size: int) -> dict[str, Any]:
        slots = threading.BoundedSemaphore(in_flight)
        latencies: list[float] = []
        failures: dict[str, int] = {}
        lock = threading.Lock()
        payload = random.randbytes(size)

        def done(started: float, future: Future[object]) -> None:
            took = time.perf_counter() - started
            exc = future.exception()
            with lock:
                if exc is None:
                    latencies.append(took)
                else:
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            slots.release()

        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            slots.acquire()
            started = time.perf_counter()
            future = self.node.propose(payload, 5.0)
            future.add_done_callback(functools.partial(done, started))
        for _ in range(in_flight):
            slots.acquire()
        took = time.perf_counter() - start
        return {
            "ok": True,
            "done": len(latencies),
            "failures": failures,
            "seconds": took,
            "latencies_ms": [x * 1000 for x in latencies],
        }


def serve(control: Control) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                try:
                    req = json.loads(line)
                    if req["op"] == "propose_stream":
                        control.propose_stream(req, self.send)
                        continue
                    reply = control.handle(req)
                except Exception as exc:
                    reply = error_reply(exc)
                self.send(reply)

        def send(self, reply: dict[str, Any]) -> None:
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()

    socketserver.ThreadingTCPServer.daemon_threads = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--self", dest="self_addr", required=True)
    parser.add_argument("--peers", default="")
    parser.add_argument("--join")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--snapshot-entries", type=int, default=50_000)
    args = parser.parse_args()
    faulthandler.register(signal.SIGUSR1)  # stacks to stderr.log, for a stuck test
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = RaftConfig(
        self_addr=args.self_addr,
        peers=tuple(p for p in args.peers.split(",") if p),
        join_addr=args.join,
        secret=args.secret,
        data_dir=args.data_dir,
        snapshot_min_entries=args.snapshot_entries,
    )
    fsm = ListFSM()
    try:
        node = RaftNode(config, fsm)
    except Exception as exc:
        print(f"node_proc: error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 2
    server = serve(Control(node, fsm))
    host, port = server.socket.getsockname()[:2]
    print(f"node_proc: control {host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()  # until SIGTERM (graceful) or SIGKILL
    node.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
