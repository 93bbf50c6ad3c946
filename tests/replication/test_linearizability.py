"""Linearizability of a real three-node cluster while its leader is killed.

Client threads (gRPC and HTTP, each starting at a different node) put, get
and delete a handful of keys with unique values while the main thread
SIGKILLs the leader and restarts it, several times, and SIGSTOPs it (the
others elect a new leader; the old one resumes believing it still leads,
the classic source of stale reads and lost writes). Every operation's
invocation and completion are recorded with ``time.monotonic()`` in this
process and the history is checked key by key (tests/replication/linearizability.py).
After the chaos one more linearizable read of every key through every node
closes the history, so an acknowledged write that was lost shows up as a
read the checker cannot explain; then the replicas must agree.

Small by default, so it runs in CI; a bigger run::

    LRUKV_LINZ_SECONDS=120 LRUKV_LINZ_KILLS=10 LRUKV_LINZ_PAUSES=4 \\
        .venv/bin/python -m pytest tests/replication/test_linearizability.py -s --timeout 1800

Which outcomes count as what (the clients retry writes only after NotLeader,
``retry_writes=False``, so a write is sent at most once to a node that may
apply it):

* a write refused with NotLeader (also TooManyRedirects, which is a row of
  NotLeader answers) or InvalidArgument was not applied: dropped;
* any other write error (a timeout, Unavailable, a dropped connection) leaves
  the outcome unknown: the write may take effect at any time, or never;
* a failed read is dropped;
* reads at the ``default`` level may be stale on a deposed leader, so they are
  not checked for linearizability, only for returning a value some write
  invoked before them wrote.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lrukv_client import Client, HttpClient, Retry
from lrukv_client.errors import (
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    TooManyRedirects,
)
from tests.replication.cluster import Cluster, Node, http
from tests.replication.linearizability import History, Pending, check

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("LRUKV_LINZ_SECONDS", "20"))
KILLS = int(os.environ.get("LRUKV_LINZ_KILLS", "2"))
PAUSES = int(os.environ.get("LRUKV_LINZ_PAUSES", "1"))
PAUSE_SECONDS = 2.0  # a SIGSTOPped leader is deposed, then resumes believing it leads
WORKERS = 6
KEYS = tuple(f"linz-{i}" for i in range(5))
CALL_TIMEOUT = 5.0  # per call, retries included
OPS_PER_SESSION = 50  # then a worker reconnects, starting at another node
SETTLE_SECONDS = 3.0  # of workload after the last restart

KV = Client | HttpClient


@dataclass
class Workload:
    cluster: Cluster
    history: History = field(default_factory=History)
    stop: threading.Event = field(default_factory=threading.Event)
    # (key, value read or None, invoked, completed) of unchecked default-level reads
    default_reads: list[tuple[str, bytes | None, float, float]] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    crashed: list[BaseException] = field(default_factory=list)

    def seeds(self, transport: str, first: int) -> list[str]:
        """The API addresses of the running nodes, starting with node *first*."""
        nodes = self.cluster.nodes[first:] + self.cluster.nodes[:first]
        addrs = []
        for node in nodes:
            server = node.server  # read once: the main thread may be killing it
            if server is not None:
                addrs.append(server.rpc_addr if transport == "grpc" else server.http_addr)
        return addrs

    def run_worker(self, number: int) -> None:
        try:
            self._work(number)
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.crashed.append(exc)

    def _work(self, number: int) -> None:
        rng = random.Random(number)
        transport = "grpc" if number % 2 == 0 else "http"
        name = f"{transport[0]}{number}"
        retry = Retry(deadline=CALL_TIMEOUT, retry_writes=False)
        sequence = 0
        session = 0
        while not self.stop.is_set():
            seeds = self.seeds(transport, (number + session) % len(self.cluster.nodes))
            session += 1
            if not seeds:
                self.stop.wait(0.05)
                continue
            kv: KV
            if transport == "grpc":
                kv = Client(seeds, retry=retry)
            else:
                kv = HttpClient(seeds, retry=retry)
            with kv:
                for _ in range(OPS_PER_SESSION):
                    if self.stop.is_set():
                        break
                    sequence += 1
                    value = f"{name}-{sequence}".encode()
                    if not self._one(kv, name, rng, value):
                        break  # start again from a fresh view of the cluster

    def _one(self, kv: KV, name: str, rng: random.Random, value: bytes) -> bool:
        """One random operation, recorded; False if it failed."""
        key = rng.choice(KEYS)
        roll = rng.random()
        if roll < 0.45:
            op = self.history.invoke(name, "put", key, value)
            return self._write(op, lambda: kv.put(key, value))
        if roll < 0.55:
            op = self.history.invoke(name, "delete", key)
            return self._write(op, lambda: kv.delete(key))
        if roll < 0.93:
            op = self.history.invoke(name, "get", key)
            try:
                op.ok(_get(kv, key, "linearizable"))
            except LrukvClientError as exc:
                self._count("get", exc)
                op.unknown()  # a failed read is dropped
                return False
            return True
        invoked = time.monotonic()
        try:
            found = _get(kv, key, "default")
        except LrukvClientError as exc:
            self._count("get", exc)
            return False
        self.default_reads.append((key, found, invoked, time.monotonic()))
        return True

    def _write(self, op: Pending, call: Callable[[], object]) -> bool:
        try:
            result = call()
        except (NotLeader, TooManyRedirects, InvalidArgument) as exc:
            self._count(op.kind, exc)
            op.not_applied()
            return False
        except LrukvClientError as exc:
            self._count(op.kind, exc)
            op.unknown()
            return False
        op.ok(result if isinstance(result, bool) else None)
        return True

    def _count(self, kind: str, exc: LrukvClientError) -> None:
        self.errors[f"{kind}: {type(exc).__name__}"] += 1


def _faults(kills: int, pauses: int) -> list[str]:
    """Kills and pauses interleaved, kills first: kill, pause, kill, ..."""
    order = []
    for i in range(max(kills, pauses)):
        order += ["kill"] * (i < kills) + ["pause"] * (i < pauses)
    return order


def _critical_log_lines(cluster: Cluster) -> list[str]:
    """What the servers logged at CRITICAL (PySyncObj: a replica truncating entries it applied)."""
    return [
        line.strip()
        for path in sorted(cluster.tmp_path.glob("server-*.stderr"))
        for line in path.read_text(errors="replace").splitlines()
        if " CRITICAL " in line
    ]


def _get(kv: KV, key: str, consistency: str) -> bytes | None:
    try:
        return kv.get(key, consistency=consistency)
    except KeyNotFound:
        return None


def _stale_get(node: Node, key: str) -> bytes | None:
    code, body, _ = http("GET", f"{node.url}/v1/{key}?consistency=stale")
    assert code in (200, 404), (code, body)
    return body if code == 200 else None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, size=3, extra_args=("-i", "10000"))
    try:
        with ThreadPoolExecutor(len(cluster.nodes)) as pool:  # in parallel: CI time
            list(pool.map(cluster.start, cluster.nodes))
        cluster.wait_for_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop_all()


def test_histories_under_leader_kills_and_pauses_are_linearizable_and_lose_no_acknowledged_write(
    cluster: Cluster,
) -> None:
    work = Workload(cluster)
    threads = [
        threading.Thread(target=work.run_worker, args=(n,), name=f"linz-{n}", daemon=True)
        for n in range(WORKERS)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    faults = _faults(KILLS, PAUSES)
    done: list[str] = []
    timeline: list[str] = []  # for the summary: when each fault began, was healed, ended
    try:
        for k, fault in enumerate(faults):
            # faults spread over the run, each after the previous victim is back
            at = started + SECONDS * (k + 1) / (len(faults) + 1)
            time.sleep(max(0.0, at - time.monotonic()))
            leader = cluster.wait_for_leader(timeout=30)
            began = time.monotonic()
            if fault == "kill":
                cluster.kill(leader)
                cluster.wait_for_leader(timeout=30)  # the survivors elect another
                healed = time.monotonic()
                cluster.start(leader)
            else:
                cluster.pause(leader)
                cluster.wait_for_leader(timeout=30)  # the others depose it
                healed = time.monotonic()
                time.sleep(PAUSE_SECONDS)
                cluster.resume(leader)
            done.append(fault)
            cluster.wait_for_leader(timeout=60)  # and all three agree again
            timeline.append(
                f"{fault} {leader.name} at {began - started:.1f}s, new leader "
                f"+{healed - began:.1f}s, all back +{time.monotonic() - began:.1f}s"
            )
        restored = time.monotonic()
        time.sleep(max(SETTLE_SECONDS, started + SECONDS - restored))
    finally:
        work.stop.set()
        for thread in threads:
            thread.join(timeout=CALL_TIMEOUT * 3)
    assert not work.crashed, work.crashed
    assert not any(t.is_alive() for t in threads), "a client thread is stuck"

    # Close the history: every key read linearizably through every node.
    for node in cluster.running():
        with Client(node.up.rpc_addr, timeout=30) as kv:
            for key in KEYS:
                op = work.history.invoke(f"end-{node.name}", "get", key)
                op.ok(_get(kv, key, "linearizable"))

    ops = work.history.ops
    result = check(ops)
    unknown = sum(op.unknown for op in ops)
    acked_after_restore = sum(
        1 for op in ops if op.kind != "get" and not op.unknown and op.call > restored
    )
    critical = _critical_log_lines(cluster)
    summary = (
        f"{result.ops} ops checked on {result.keys} keys ({unknown} with unknown outcome, "
        f"{work.history.dropped} dropped), {len(work.default_reads)} default reads, "
        f"{done.count('kill')} leader kills and {done.count('pause')} pauses "
        f"in {time.monotonic() - started:.1f}s ({'; '.join(timeline)}); "
        f"errors: {dict(work.errors)}; CRITICAL server log lines: {len(critical)}"
        + "".join(f"\n  {line}" for line in critical[:5])
    )
    print(f"\nlinearizability: {summary}")
    assert result.ok, f"{result}\n\n{summary}"
    # A replica that drops entries it applied may lose acknowledged writes on the next
    # failover (lrukv_server/raft/append.py): rare enough to pass the check, so looked for.
    assert not critical, summary
    assert done == faults
    assert acked_after_restore > 0, f"no write acknowledged after the last restart: {summary}"
    assert result.ops > 100, f"too few operations to mean anything: {summary}"

    # Default-level reads may be stale, but never invent a value.
    written: dict[tuple[str, bytes | None], float] = {
        (op.key, op.value): op.call for op in ops if op.kind == "put"
    }
    for key, found, _, completed in work.default_reads:
        if found is not None:
            assert written.get((key, found), completed + 1) <= completed, (key, found)

    # And the replicas agree, with each other and with the last reads.
    cluster.wait_converged(timeout=60)
    final = {op.key: op.value for op in ops if op.client.startswith("end-")}
    for node in cluster.running():
        assert {key: _stale_get(node, key) for key in KEYS} == final, node.name
