"""What does Raft replication cost lrukv? A 3-node cluster against one node and a 3-member etcd.

    .venv/bin/python benchmarks/bench_replication.py --profile  # ~17 min on 2 shared cores;
                                        # writes benchmarks/results/replication.{md,json}
    .venv/bin/python benchmarks/bench_replication.py --smoke   # ~30 s; writes to a temp dir

``--profile`` needs py-spy (``pip install py-spy``; not a project dependency):
it records the catching-up follower's worker. ``--skip etcd`` (or any section)
leaves a part out.

Everything runs on 127.0.0.1, in a temporary directory under /dev/shm (tmpfs,
where it exists: lrukv's Raft journal is never fsynced, so etcd's WAL is put
where an fsync is cheap too), and every process started is ended by its PID.

1. Throughput (``--repeats`` rounds; in each the three systems are started
   fresh, in a rotating order): one ``lrukv-server``; a 3-node lrukv cluster;
   a 3-member etcd cluster (Debian's ``etcd-server``; skipped, and said so,
   where ``etcd`` is not installed). Every lrukv node runs with
   ``--http-threads`` and ``--grpc-workers`` equal to the requests in flight
   (a write holds its thread for a Raft round of ~10-20 ms; the defaults of
   8 and 16 threads would cap a node at a few hundred writes per second).

   CPU split on 2 cores: the node under load (the single node, the Raft leader,
   etcd's leader) alone on CPU 0; the followers and the load generator on CPU 1
   (``sched_setaffinity`` on every thread, after the election). Each row reports
   the CPU each group used.

   Load: closed loop, ``--inflight`` requests in flight, 1000 keys with 100-byte
   values round-robin, after a warm-up. HTTP: ``wrk -t1 -c<inflight>`` with a Lua
   script of prebuilt requests, the same tool for lrukv (``PUT /v1/KEY``,
   ``GET /v1/KEY?consistency=...``) and etcd (its JSON gateway: ``POST
   /v3/kv/put`` and ``/v3/kv/range`` with base64 keys and values); where wrk is
   missing, and in --smoke, a Python generator of keep-alive connections.
   gRPC (lrukv only): ``server_load.py grpc``, grpcio futures with that many in
   flight. Reported: medians of the repeats, the ratio replicated / single
   node computed within each repeat, and the CPU time per request of each
   group (less sensitive to other work on the machine than req/s). After each
   repeat the three replicas must agree on applied index and digest.

2. Failover (``--failover-rounds``): SIGKILL the leader's master and worker; time
   from the kill until a PUT is accepted by a survivor (a new PUT is sent every
   20 ms, alternating between the survivors, each with its own 3 s deadline);
   then restart the killed node and wait until all three agree on index and digest.

3. Catch-up (``--catchup-repeats``): SIGSTOP one follower, write ``--catchup-keys``
   new keys through the leader (gRPC, 128 in flight), SIGCONT it; time until its
   applied index and digest (``GET /v1/util/cluster?digest=1``) equal the
   leader's. Then the same with the follower killed and restarted instead.
   A timeline (first answer, first progress, largest single step: a snapshot
   installed at once) says where the time went.

At the end the servers' output is searched for PySyncObj's "truncating
already-applied log entries" (a sign of a stale append reply rewinding a
follower's log). Targets: replicated PUT >= 0.6 x single-node PUT; failover
p50 <= 2 s; catch-up <= 5 s.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
VALUE = b"v" * 100
TARGET_PUT_RATIO = 0.6
TARGET_FAILOVER_P50_S = 2.0
TARGET_CATCHUP_S = 5.0
SERVER_CPU = {0}  # the node under load
OTHER_CPU = {1}  # followers and the load generator
TRUNCATION = "truncating already-applied log entries"

sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` and `tests` importable
from benchmarks.bench_server import _children_cpu_seconds, _cpu_model, _tree_cpu_seconds  # noqa: E402
from benchmarks.server_load import key_name, percentile  # noqa: E402
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc  # noqa: E402
from tests.harness import ServerProcess, start_server  # noqa: E402
from tests.replication.cluster import Cluster, Node, free_port, http, wait_until  # noqa: E402

# --------------------------------------------------------------------- set-up


@dataclass
class Setup:
    smoke: bool
    keys: int
    seconds: float
    warmup: float
    repeats: int
    inflight: int
    failover_rounds: int
    catchup_keys: int
    catchup_repeats: int
    wrk: str | None
    etcd: str | None
    pinned: bool
    workdir: str = ""
    server_threads: int = 0  # HTTP threads and gRPC workers per node; 0: --inflight
    profile: bool = False  # py-spy the catching-up follower

    def lrukv_args(self, items_per_shard: int | None = None) -> list[str]:
        """Every lrukv node's flags; by default each shard holds every key (as in
        bench_server.py), so no benchmark key is ever evicted."""
        threads = str(self.server_threads or max(self.inflight, 16))
        if items_per_shard is None:
            items_per_shard = self.keys
        return [
            "--log-mode", "prod", "--http-threads", threads, "--grpc-workers", threads,
            "-i", str(items_per_shard),
        ]  # fmt: skip


@dataclass
class Run:
    """One measurement of one load against one system."""

    repeat: int
    system: str  # lrukv-1 | lrukv-3 | etcd-3
    api: str  # http | grpc
    op: str  # put | get
    via: str  # single | leader | follower
    # "" for PUT; lrukv: stale | default | linearizable; etcd: serializable | linearizable
    consistency: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    cpu_pct: dict[str, float] = field(default_factory=dict)  # group -> % of one CPU
    elections: int = 0  # Raft term changes seen across the run (0: one leader throughout)


def _pin(pids: Sequence[int], cpus: set[int]) -> None:
    """Pin every thread of *pids* to *cpus* (threads started later inherit it)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), cpus)


def _load_prefix(setup: Setup) -> list[str]:
    cpus = ",".join(str(c) for c in sorted(OTHER_CPU))
    return ["taskset", "-c", cpus] if setup.pinned else []


# ------------------------------------------------------------------ the load

Request = tuple[str, str, bytes | None]  # method, path, body

_LUA = """
local specs = {
%(specs)s
}
local reqs = {}
local n = 0
bad = 0
init = function(args)
  for i, s in ipairs(specs) do
    if s[3] then
      reqs[i] = wrk.format(s[1], s[2], {["Content-Type"] = "%(content_type)s"}, s[3])
    else
      reqs[i] = wrk.format(s[1], s[2])
    end
  end
end
request = function()
  n = n %% #reqs + 1
  return reqs[n]
end
response = function(status, headers, body)
  if status >= 300 then bad = bad + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do bad_total = bad_total + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + bad_total,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_script(requests: Sequence[Request], content_type: str) -> str:
    def quote(text: str) -> str:
        return json.dumps(text)  # ASCII only here, so JSON quoting is Lua quoting

    specs = ",\n".join(
        "{" + ", ".join((quote(m), quote(p), "nil" if b is None else quote(b.decode()))) + "}"
        for m, p, b in requests
    )
    return _LUA % {"specs": specs, "content_type": content_type}


def http_load(
    setup: Setup, target: str, requests: Sequence[Request], content_type: str, seconds: float
) -> dict[str, Any]:
    """Closed-loop HTTP load with wrk (or the Python generator); one result dict."""
    workdir = Path(setup.workdir)
    if setup.wrk is not None:
        script = workdir / "load.lua"
        script.write_text(_lua_script(requests, content_type))
        command = [
            *_load_prefix(setup), setup.wrk, "-t1", f"-c{setup.inflight}",
            f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
            f"http://{target}",
        ]  # fmt: skip
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=True
        )
        found = re.search(r"WRKJSON (\{.*\})", out.stdout)
        if found is None:
            raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
        data = json.loads(found.group(1))
        return {
            "requests": data["requests"],
            "seconds": data["duration_us"] / 1e6,
            "errors": data["errors"],
            "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000,
            "tool": f"wrk -t1 -c{setup.inflight}",
        }
    listing = workdir / "requests.json"
    listing.write_text(
        json.dumps([[m, p, None if b is None else b.decode("ascii")] for m, p, b in requests])
    )
    command = [
        *_load_prefix(setup), sys.executable, str(HERE / "server_load.py"), "http-list",
        "--target", target, "--requests", str(listing), "--seconds", str(seconds),
        "--connections", str(setup.inflight),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def grpc_load(
    setup: Setup, target: str, op: str, consistency: str, seconds: float
) -> dict[str, Any]:
    command = [
        *_load_prefix(setup), sys.executable, str(HERE / "server_load.py"), "grpc",
        "--target", target, "--op", op, "--consistency", consistency or "default",
        "--seconds", str(seconds), "--inflight", str(setup.inflight), "--keys", str(setup.keys),
        "--value-size", str(len(VALUE)),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def lrukv_requests(keys: int, op: str, consistency: str) -> list[Request]:
    if op == "put":
        return [("PUT", f"/v1/{key_name(i)}", VALUE) for i in range(keys)]
    query = f"?consistency={consistency}" if consistency else ""
    return [("GET", f"/v1/{key_name(i)}{query}", None) for i in range(keys)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def etcd_requests(keys: int, op: str, consistency: str) -> list[Request]:
    out: list[Request] = []
    for i in range(keys):
        key = _b64(key_name(i).encode())
        if op == "put":
            body: dict[str, Any] = {"key": key, "value": _b64(VALUE)}
            out.append(("POST", "/v3/kv/put", json.dumps(body).encode()))
        else:
            body = {"key": key}
            if consistency == "serializable":
                body["serializable"] = True
            out.append(("POST", "/v3/kv/range", json.dumps(body).encode()))
    return out


@dataclass
class Target:
    """Where a load goes, and whose CPU to account."""

    system: str
    via: str
    http: str
    grpc: str | None
    groups: dict[str, list[int]]  # CPU group name -> PIDs (with their descendants)
    term: Callable[[], int] | None = None  # the cluster's current Raft term


def measure(
    setup: Setup, target: Target, repeat: int, api: str, op: str, *, consistency: str = ""
) -> Run:
    """Warm up, then one measured run of the given load against *target*."""
    etcd = target.system.startswith("etcd")

    def load(seconds: float) -> dict[str, Any]:
        if api == "grpc":
            assert target.grpc is not None
            return grpc_load(setup, target.grpc, op, consistency, seconds)
        requests = (etcd_requests if etcd else lrukv_requests)(setup.keys, op, consistency)
        content_type = "application/json" if etcd else "application/octet-stream"
        return http_load(setup, target.http, requests, content_type, seconds)

    if setup.warmup:
        load(setup.warmup)
    term_before = target.term() if target.term else 0
    before = {name: sum(_tree_cpu_seconds(p) for p in pids) for name, pids in target.groups.items()}
    load_before = _children_cpu_seconds()
    started = time.monotonic()
    result = load(setup.seconds)
    elapsed = time.monotonic() - started
    cpu = {
        name: 100 * (sum(_tree_cpu_seconds(p) for p in pids) - before[name]) / elapsed
        for name, pids in target.groups.items()
    }
    cpu["load"] = 100 * (_children_cpu_seconds() - load_before) / elapsed
    elections = (target.term() - term_before) if target.term else 0
    run = Run(
        repeat=repeat,
        system=target.system,
        api=api,
        op=op,
        via=target.via,
        consistency=consistency,
        rps=result["requests"] / result["seconds"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        errors=result["errors"],
        tool=result["tool"],
        cpu_pct=cpu,
        elections=elections,
    )
    split = " ".join(f"{k} {v:3.0f}%" for k, v in cpu.items())
    print(
        f"  repeat {repeat} {run.system:8} {api:4} {op:3} via {run.via:8} "
        f"{consistency or '-':12}: {run.rps:7.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
        f"p99 {run.p99_ms:7.2f} ms  errors {run.errors}  cpu {split}  ({run.tool})"
        + (f"  ELECTIONS {elections}" if elections else ""),
        flush=True,
    )
    return run


# --------------------------------------------------------------- the systems


def lrukv_single(setup: Setup, repeat: int) -> list[Run]:
    workdir = Path(setup.workdir) / f"single-{repeat}"
    workdir.mkdir()
    server = start_server(workdir, *setup.lrukv_args(), ready_timeout=60)
    try:
        if setup.pinned:
            _pin([server.pid, server.worker_pid], SERVER_CPU)
        target = Target(
            "lrukv-1", "single", server.http_addr, server.rpc_addr,
            {"server": [server.pid]},
        )  # fmt: skip
        loads = [("http", "put"), ("grpc", "put"), ("http", "get"), ("grpc", "get")]
        if setup.smoke:
            loads = [("http", "put"), ("grpc", "put")]
        return [measure(setup, target, repeat, api, op) for api, op in loads]
    finally:
        _stop(server)


def _stop(server: ServerProcess) -> None:
    with contextlib.suppress(TimeoutError):  # stop() killed it
        server.stop(timeout=20)


@contextlib.contextmanager
def lrukv_cluster(setup: Setup, name: str, items_per_shard: int | None = None) -> Iterator[Cluster]:
    """A started 3-node cluster with an agreed leader; every node stopped at the end."""
    began = time.monotonic()
    workdir = Path(setup.workdir) / name
    workdir.mkdir()
    cluster = Cluster(workdir, size=3, extra_args=tuple(setup.lrukv_args(items_per_shard)))
    try:
        # Start the nodes side by side: each waits for the others to elect a leader.
        with ThreadPoolExecutor(len(cluster.nodes)) as pool:
            for started in [pool.submit(cluster.start, node) for node in cluster.nodes]:
                started.result()
        cluster.wait_for_leader(timeout=30)
        # Every node announced its API addresses (a follower can forward and redirect).
        wait_until(
            "every node's API addresses replicated",
            lambda: all(
                all(m["http_addr"] for m in n.status()["members"]) for n in cluster.running()
            ),
            timeout=30,
        )
        print(f"  lrukv cluster {name} up in {time.monotonic() - began:.1f} s", flush=True)
        yield cluster
    finally:
        cluster.stop_all()


def lrukv_replicated(setup: Setup, repeat: int) -> list[Run]:
    with lrukv_cluster(setup, f"cluster-{repeat}") as cluster:
        leader = cluster.wait_for_leader()
        followers = [n for n in cluster.nodes if n is not leader]
        if setup.pinned:
            _pin(leader.pids(), SERVER_CPU)
            for node in followers:
                _pin(node.pids(), OTHER_CPU)
        groups = {
            "leader": [leader.up.pid],
            "followers": [f.up.pid for f in followers],
        }

        def term() -> int:
            return max(int(n.status()["term"]) for n in cluster.running())

        follower = followers[0]
        at = {
            "leader": Target(
                "lrukv-3", "leader", leader.up.http_addr, leader.up.rpc_addr, groups, term
            ),
            "follower": Target(
                "lrukv-3", "follower", follower.up.http_addr, follower.up.rpc_addr, groups, term
            ),
        }
        loads = [
            ("leader", "http", "put", ""),
            ("leader", "grpc", "put", ""),
            ("follower", "http", "put", ""),
            ("follower", "grpc", "put", ""),
            ("leader", "http", "get", "linearizable"),
            ("leader", "http", "get", "default"),
            ("leader", "http", "get", "stale"),
            ("leader", "grpc", "get", "linearizable"),
            ("leader", "grpc", "get", "default"),
            ("follower", "http", "get", "linearizable"),
        ]
        if setup.smoke:
            loads = [loads[0], loads[1], loads[3], loads[7]]
        runs = [
            measure(setup, at[via], repeat, api, op, consistency=level)
            for via, api, op, level in loads
        ]
        # The replicas must still agree (index and digest) after all that load.
        digest = cluster.wait_converged(timeout=60)
        print(f"  cluster-{repeat}: the three replicas agree, digest {digest[:16]}", flush=True)
        return runs


@dataclass
class EtcdMember:
    name: str
    client: str  # 127.0.0.1:PORT
    proc: subprocess.Popen[bytes]

    def status(self) -> dict[str, Any]:
        return _post_json(f"http://{self.client}/v3/maintenance/status", {})


def _post_json(url: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


@contextlib.contextmanager
def etcd_cluster(setup: Setup, name: str) -> Iterator[list[EtcdMember]]:
    """Three etcd members on loopback; each stopped by its PID at the end."""
    assert setup.etcd is not None
    workdir = Path(setup.workdir) / name
    workdir.mkdir()
    peers = {f"e{i}": free_port() for i in (1, 2, 3)}
    initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in peers.items())
    members: list[EtcdMember] = []
    try:
        for member, peer_port in peers.items():
            client = f"127.0.0.1:{free_port()}"
            command = [
                setup.etcd, "--name", member, "--data-dir", str(workdir / member),
                "--listen-client-urls", f"http://{client}",
                "--advertise-client-urls", f"http://{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"lrukv-bench-{name}",
                "--logger", "zap", "--log-level", "warn",
            ]  # fmt: skip
            with open(workdir / f"{member}.log", "wb") as log_file:
                proc = subprocess.Popen(
                    command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            members.append(EtcdMember(member, client, proc))

        def leader_known() -> bool:
            return all(int(m.status().get("leader", 0)) != 0 for m in members)

        wait_until("an etcd leader", leader_known, timeout=30)
        yield members
    finally:
        for m in members:
            if m.proc.poll() is None:
                m.proc.terminate()
        for m in members:
            try:
                m.proc.wait(15)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(10)


def etcd_replicated(setup: Setup, repeat: int) -> list[Run]:
    with etcd_cluster(setup, f"etcd-{repeat}") as members:
        statuses = {m.name: m.status() for m in members}
        leader_id = statuses[members[0].name]["leader"]
        leader = next(m for m in members if statuses[m.name]["header"]["member_id"] == leader_id)
        followers = [m for m in members if m is not leader]
        if setup.pinned:
            _pin([leader.proc.pid], SERVER_CPU)
            _pin([f.proc.pid for f in followers], OTHER_CPU)
        groups = {"leader": [leader.proc.pid], "followers": [f.proc.pid for f in followers]}

        def term() -> int:
            return max(int(m.status()["header"]["raft_term"]) for m in members)

        at = {
            "leader": Target("etcd-3", "leader", leader.client, None, groups, term),
            "follower": Target("etcd-3", "follower", followers[0].client, None, groups, term),
        }
        loads = [
            ("leader", "put", ""),
            ("follower", "put", ""),
            ("leader", "get", "linearizable"),
            ("leader", "get", "serializable"),
            ("follower", "get", "linearizable"),
        ]
        if setup.smoke:
            loads = [loads[0], loads[2]]
        return [
            measure(setup, at[via], repeat, "http", op, consistency=level)
            for via, op, level in loads
        ]


# ------------------------------------------------------------------ failover


def _put_ok(addr: str, key: str, timeout: float) -> bool:
    try:
        code, _, _ = http("PUT", f"http://{addr}/v1/{key}", VALUE, timeout=timeout)
    except OSError:
        return False
    return 200 <= code < 300


def first_accepted_write(
    addrs: Sequence[str], tag: str, since: float, limit: float = 30.0
) -> float:
    """Send a PUT every 20 ms, alternating over *addrs*, each in its own thread
    with a 3 s deadline; seconds from *since* until the first one succeeded."""
    accepted: list[float] = []
    done = threading.Event()

    def probe(addr: str, key: str) -> None:
        if _put_ok(addr, key, timeout=3.0) and not done.is_set():
            accepted.append(time.monotonic())
            done.set()

    threads = []
    number = 0
    while not done.wait(0.02):
        if time.monotonic() - since > limit:
            raise RuntimeError(f"no write accepted within {limit}s of the leader kill")
        addr = addrs[number % len(addrs)]
        thread = threading.Thread(target=probe, args=(addr, f"failover-{tag}-{number}"))
        thread.start()
        threads.append(thread)
        number += 1
    for thread in threads:
        thread.join(5)
    return min(accepted) - since


def failover(setup: Setup, cluster: Cluster) -> list[dict[str, Any]]:
    rounds: list[dict[str, Any]] = []
    for number in range(1, setup.failover_rounds + 1):
        leader = cluster.wait_for_leader(timeout=30)
        survivors = [n for n in cluster.running() if n is not leader]
        addrs = [n.up.http_addr for n in survivors]
        for addr in addrs:  # the cluster takes writes before the kill
            wait_until("a write before the kill", functools.partial(_put_ok, addr, "pre", 3.0))
        killed_at = time.monotonic()
        cluster.kill(leader)
        took = first_accepted_write(addrs, str(number), killed_at)
        new_leader = cluster.wait_for_leader(timeout=30, among=survivors)
        restarted_at = time.monotonic()
        cluster.start(leader)
        digest = cluster.wait_converged(timeout=60)
        rejoined = time.monotonic() - restarted_at
        rounds.append(
            {
                "round": number,
                "killed": leader.name,
                "new_leader": new_leader.name,
                "write_accepted_s": took,
                "restart_to_converged_s": rejoined,
                "digest": digest[:16],
            }
        )
        print(
            f"  failover {number}: killed {leader.name}, a write accepted after "
            f"{took:.3f} s, new leader {new_leader.name}; restarted and converged "
            f"in {rejoined:.1f} s",
            flush=True,
        )
    return rounds


# ------------------------------------------------------------------ catch-up


def write_keys(target: str, count: int, inflight: int, prefix: str) -> float:
    """PUT *count* new keys over gRPC with *inflight* calls in flight; seconds taken.
    A write that fails (a leader change under load) is sent again, up to 5 times."""
    channel = grpc.insecure_channel(target)
    stub = kv_pb2_grpc.KVStub(channel)
    slots = threading.Semaphore(inflight)
    lock = threading.Lock()
    retry: list[tuple[int, int]] = []  # (key number, attempts so far)
    fatal: list[BaseException] = []
    started = time.monotonic()

    def send(number: int, attempt: int) -> None:
        request = kv_pb2.PutRequest(key=f"{prefix}-{number:06d}", value=VALUE)
        call = stub.Put.future(request, timeout=30)
        call.add_done_callback(functools.partial(complete, number, attempt))

    def complete(number: int, attempt: int, call: grpc.Future[Any]) -> None:
        error = call.exception()
        with lock:
            if error is not None:
                if attempt >= 5:
                    fatal.append(error)
                else:
                    retry.append((number, attempt + 1))
        slots.release()

    def next_retry() -> tuple[int, int] | None:
        with lock:
            return retry.pop() if retry else None

    try:
        pending = iter(range(count))
        while True:
            slots.acquire()
            if fatal:
                raise RuntimeError(f"a catch-up write failed 5 times: {fatal[0]}")
            again = next_retry()
            if again is not None:
                send(*again)
                continue
            number = next(pending, None)
            if number is None:
                slots.release()
                for _ in range(inflight):  # wait for every call in flight
                    slots.acquire()
                again = next_retry()
                if again is None:
                    break
                for _ in range(inflight):
                    slots.release()
                slots.acquire()
                send(*again)
                continue
            send(number, 0)
        if fatal:
            raise RuntimeError(f"a catch-up write failed 5 times: {fatal[0]}")
        return time.monotonic() - started
    finally:
        channel.close()


def caught_up(
    leader: Node, follower: Node, since: float, limit: float = 120.0
) -> tuple[float, dict[str, float]]:
    """Seconds from *since* until *follower*'s applied index and digest equal the
    leader's, and a timeline: when it first answered, when its applied index
    first moved, and its largest single step (a snapshot installed at once)."""
    want = leader.status(digest=True)
    timeline: dict[str, float] = {}
    last_index: int | None = None
    while time.monotonic() - since < limit:
        try:
            index = int(follower.status()["applied_index"])
        except (OSError, ValueError):
            time.sleep(0.02)
            continue
        now = time.monotonic() - since
        timeline.setdefault("answered_s", now)
        if last_index is not None and index > last_index:
            timeline.setdefault("first_progress_s", now)
            if index - last_index > timeline.get("largest_step", 0):
                timeline["largest_step"] = index - last_index
                timeline["largest_step_at_s"] = now
        last_index = index
        if index == want["applied_index"]:
            mine = follower.status(digest=True)
            if mine["applied_index"] == want["applied_index"]:
                if mine["digest"] == want["digest"]:
                    return time.monotonic() - since, timeline
                raise RuntimeError(f"{follower.name} has the leader's index but another digest")
        elif index > want["applied_index"]:  # the leader applied more meanwhile
            want = leader.status(digest=True)
        time.sleep(0.02)
    raise RuntimeError(f"{follower.name} did not catch up within {limit}s")


_PROFILE_CATEGORIES = (
    ("Fernet", "raft: decrypt/encrypt (Fernet)"),
    ("pickle", "raft: (un)pickle"),
    ("loads", "raft: (un)pickle"),
    ("dumps", "raft: (un)pickle"),
    ("restore", "snapshot restore"),
    ("StoreFSM", "apply (StoreFSM)"),
    ("Journal", "raft: journal"),
    ("ResizableFile", "raft: journal"),
    ("SyncObj", "raft: other PySyncObj"),
    ("TcpConnection", "raft: other PySyncObj"),
)


def _profile_summary(raw: Path) -> dict[str, float]:
    """Share of py-spy samples (``-f raw``, on-CPU only) per category, in %."""
    counts: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        category = next((c for key, c in _PROFILE_CATEGORIES if key in stack), "other")
        counts[category] = counts.get(category, 0) + int(number)
    total = sum(counts.values()) or 1
    return {k: round(100 * v / total, 1) for k, v in sorted(counts.items(), key=lambda i: -i[1])}


@contextlib.contextmanager
def profiled(setup: Setup, pid: int, name: str) -> Iterator[dict[str, float]]:
    """With --profile and py-spy installed: record *pid* (on-CPU samples) meanwhile."""
    summary: dict[str, float] = {}
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not setup.profile or not Path(spy).exists():
        yield summary
        return
    raw = Path(setup.workdir) / f"{name}.spy.txt"
    proc = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-r", "100", "-f", "raw", "-o", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield summary
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if raw.exists():
        summary.update(_profile_summary(raw))


def catchup(setup: Setup, cluster: Cluster) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for repeat in range(1, setup.catchup_repeats + 1):
        for how in ("paused",) if setup.smoke else ("paused", "killed"):
            leader = cluster.wait_for_leader(timeout=30)
            follower = next(n for n in cluster.running() if n is not leader)
            if how == "paused":
                cluster.pause(follower)
            else:
                cluster.kill(follower)
            wrote = write_keys(
                leader.up.rpc_addr, setup.catchup_keys, 128, f"catchup-{how}-{repeat}"
            )
            since = time.monotonic()
            if how == "paused":
                cluster.resume(follower)
                restart = 0.0
            else:
                cluster.start(follower)
                restart = time.monotonic() - since
            with profiled(setup, follower.up.worker_pid, f"catchup-{how}-{repeat}") as profile:
                took, timeline = caught_up(leader, follower, since)
            results.append(
                {
                    "repeat": repeat,
                    "how": how,
                    "keys": setup.catchup_keys,
                    "write_s": wrote,
                    "restart_s": restart,
                    "caught_up_s": took,
                    "timeline": timeline,
                    "follower_profile_pct": profile,
                }
            )
            print(
                f"  catch-up {repeat} ({how}): wrote {setup.catchup_keys} keys in "
                f"{wrote:.1f} s ({setup.catchup_keys / wrote:.0f}/s); {follower.name} "
                f"equal to the leader {took:.2f} s after "
                f"{'SIGCONT' if how == 'paused' else 'the restart began'}"
                + (f" (process ready after {restart:.2f} s)" if restart else "")
                + f"; timeline {timeline}"
                + (f"; follower profile {profile}" if profile else ""),
                flush=True,
            )
    return results


# ------------------------------------------------------------------ reports


def _median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (system, api, op, via, consistency): medians over the repeats."""
    keys: list[tuple[str, str, str, str, str]] = []
    for r in runs:
        key = (r.system, r.api, r.op, r.via, r.consistency)
        if key not in keys:
            keys.append(key)
    rows = []
    for key in keys:
        mine = [r for r in runs if (r.system, r.api, r.op, r.via, r.consistency) == key]
        middle = _median_run(mine)
        groups = sorted({g for r in mine for g in r.cpu_pct})
        rows.append(
            {
                "system": key[0],
                "api": key[1],
                "op": key[2],
                "via": key[3],
                "consistency": key[4],
                "rps": statistics.median(r.rps for r in mine),
                "rps_each": [round(r.rps) for r in mine],
                "p50_ms": middle.p50_ms,
                "p99_ms": middle.p99_ms,
                "errors": sum(r.errors for r in mine),
                "cpu_pct": {
                    g: statistics.median(r.cpu_pct.get(g, 0.0) for r in mine) for g in groups
                },
                "tool": middle.tool,
                # CPU time per request (ms): less sensitive to other load than req/s.
                "cpu_ms_per_request": {
                    g: statistics.median(10 * r.cpu_pct.get(g, 0.0) / r.rps for r in mine if r.rps)
                    for g in groups
                },
            }
        )
    return rows


def put_ratios(runs: list[Run]) -> list[dict[str, Any]]:
    """Replicated PUT / single-node PUT, per API and entry node, within each repeat."""
    out = []
    for api in ("http", "grpc"):
        for via in ("leader", "follower"):
            per_repeat = []
            for repeat in sorted({r.repeat for r in runs}):
                single = [
                    r for r in runs
                    if (r.repeat, r.system, r.api, r.op) == (repeat, "lrukv-1", api, "put")
                ]  # fmt: skip
                replicated = [
                    r for r in runs
                    if (r.repeat, r.system, r.api, r.op, r.via)
                    == (repeat, "lrukv-3", api, "put", via)
                ]  # fmt: skip
                if single and replicated and single[0].rps:
                    per_repeat.append(replicated[0].rps / single[0].rps)
            if per_repeat:
                ratio = statistics.median(per_repeat)
                out.append(
                    {
                        "api": api,
                        "via": via,
                        "ratio": ratio,
                        "each": [round(x, 2) for x in per_repeat],
                        "meets_target": ratio >= TARGET_PUT_RATIO,
                    }
                )
    return out


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p90": percentile(ordered, 90),
        "max": ordered[-1],
        "min": ordered[0],
    }


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _cpu_pressure() -> str:
    """Linux PSI: the share of time some runnable task waited for a CPU (avg10/60/300)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "?"
    values = dict(part.split("=") for part in first.split()[1:])
    return f"{values['avg10']}% / {values['avg60']}% / {values['avg300']}%"


def _versions(setup: Setup) -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for package in ("pysyncobj", "grpcio", "gunicorn", "flask"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "?"
    if setup.etcd is not None:
        text = subprocess.run(
            [setup.etcd, "--version"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r"etcd Version: (\S+)", text)
        out["etcd"] = found.group(1) if found else "?"
    if setup.wrk is not None:
        text = subprocess.run(
            [setup.wrk, "--version"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r"wrk (\S+)", text)
        out["wrk"] = found.group(1) if found else "?"
    return out


def _truncations(workdir: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and path.suffix in (".stdout", ".stderr", ".log"):
            count = path.read_text(errors="replace").count(TRUNCATION)
            if count:
                found[str(path.relative_to(workdir))] = count
    return found


def _row_name(row: dict[str, Any]) -> str:
    names = {"lrukv-1": "lrukv, 1 node", "lrukv-3": "lrukv, 3 nodes", "etcd-3": "etcd, 3 members"}
    return names[row["system"]]


def write_reports(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    json_path = out_dir / "replication.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    setup = report["setup"]
    rows = report["summary"]
    http_tool = (
        f"wrk -t1 -c{setup['inflight']}"
        if setup["wrk"]
        else f"Python, {setup['inflight']} keep-alive connections (wrk not used)"
    )
    pinning = (
        "the node under load (single node, Raft leader, etcd leader) alone on CPU 0; the "
        "followers and the load generator on CPU 1"
        if setup["pinned"]
        else "not pinned (fewer than two CPUs or no taskset)"
    )
    lines = [
        "# Replication: a 3-node lrukv cluster against one node and a 3-member etcd",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; took {report['took_s'] / 60:.1f} min  ",
        f"Machine: {report['machine']}  ",
        f"Load average (1, 5, 15 min) at start: {report['load_average_start']}; at end: "
        f"{report['load_average_end']} (other work shared the machine: compare ratios measured "
        "in the same run, not absolute numbers across runs)  ",
        f"CPU pressure (PSI: share of time some runnable task waited for a CPU, avg 10 s / "
        f"60 s / 300 s) at start: {report['cpu_pressure_start']}; at end: "
        f"{report['cpu_pressure_end']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + "  ",
        f"CPU split: {pinning}.  ",
        f"Load: closed loop, {setup['inflight']} requests in flight, {setup['keys']} keys with "
        f"{len(VALUE)}-byte values round-robin; HTTP: {http_tool} (the same for lrukv and "
        f"etcd's JSON gateway); gRPC: Python grpcio futures, {setup['inflight']} in flight "
        f"(lrukv only). lrukv nodes: `{' '.join(report['lrukv_args'])}`. Data directories "
        f"on {report['data_fs']}.  ",
        f"Each cell: median of {setup['repeats']} runs of {setup['seconds']:g} s after a "
        f"{setup['warmup']:g} s warm-up; systems restarted every repeat in a rotating order; "
        "latencies are those of the median run. CPU: % of one CPU used by each group during "
        "the run (median).",
        "",
        "## Throughput",
        "",
        "| system | API | op | via | consistency | req/s (median) | each repeat | p50 / p99 ms "
        "| errors | CPU leader / followers / load | CPU ms per request leader / followers |",
        "|---|---|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        cpu = row["cpu_pct"]
        leader_cpu = cpu.get("leader", cpu.get("server", 0.0))
        followers = f"{cpu['followers']:.0f}%" if "followers" in cpu else "-"
        per = row["cpu_ms_per_request"]
        per_leader = per.get("leader", per.get("server", 0.0))
        per_followers = f"{per['followers']:.2f}" if "followers" in per else "-"
        lines.append(
            f"| {_row_name(row)} | {row['api'].upper()} | {row['op'].upper()} | {row['via']} "
            f"| {row['consistency'] or '-'} | {row['rps']:,.0f} "
            f"| {', '.join(f'{x:,}' for x in row['rps_each'])} "
            f"| {row['p50_ms']:.1f} / {row['p99_ms']:.1f} | {row['errors']} "
            f"| {leader_cpu:.0f}% / {followers} / {cpu.get('load', 0.0):.0f}% "
            f"| {per_leader:.2f} / {per_followers} |"
        )
    lines += [
        "",
        "## Replicated PUT against single-node PUT (same run)",
        "",
        f"Ratio of req/s within each repeat, then the median. Target: >= {TARGET_PUT_RATIO}.",
        "",
        "| API | writes sent to | ratio (median) | each repeat | target |",
        "|---|---|---:|---|---|",
    ]
    for ratio in report["put_ratios"]:
        lines.append(
            f"| {ratio['api'].upper()} | the {ratio['via']} | {ratio['ratio']:.2f} "
            f"| {', '.join(str(x) for x in ratio['each'])} "
            f"| {'met' if ratio['meets_target'] else '**missed**'} |"
        )
    side = [r for r in rows if r["api"] == "http" and r["system"] in ("lrukv-3", "etcd-3")]
    if any(r["system"] == "etcd-3" for r in side):
        lines += [
            "",
            "## lrukv and etcd side by side (3 nodes each, HTTP, the same wrk load)",
            "",
            "| operation | lrukv req/s | lrukv p50 / p99 ms | etcd req/s | etcd p50 / p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        pairs = [
            ("PUT via the leader", ("put", "leader", ""), ("put", "leader", "")),
            ("PUT via a follower", ("put", "follower", ""), ("put", "follower", "")),
            (
                "linearizable GET, leader",
                ("get", "leader", "linearizable"),
                ("get", "leader", "linearizable"),
            ),
            (
                "linearizable GET, follower",
                ("get", "follower", "linearizable"),
                ("get", "follower", "linearizable"),
            ),
            (
                "local GET, leader (lrukv stale / etcd serializable)",
                ("get", "leader", "stale"),
                ("get", "leader", "serializable"),
            ),
        ]
        for label, mine, theirs in pairs:
            a = next((r for r in side if r["system"] == "lrukv-3" and _key(r) == mine), None)
            b = next((r for r in side if r["system"] == "etcd-3" and _key(r) == theirs), None)
            if a is None or b is None:
                continue
            lines.append(
                f"| {label} | {a['rps']:,.0f} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} "
                f"| {b['rps']:,.0f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} |"
            )
    elif report["etcd_note"]:
        lines += ["", f"etcd: {report['etcd_note']}"]
    fo = report["failover"]
    if fo["rounds"]:
        s = fo["spread"]
        lines += [
            "",
            "## Failover",
            "",
            f"{len(fo['rounds'])} rounds: SIGKILL the leader's master and worker; time until a "
            "survivor accepts a PUT (a PUT every 20 ms, alternating survivors). Not pinned.",
            "",
            f"p50 **{s['p50']:.2f} s**, p90 {s['p90']:.2f} s, max {s['max']:.2f} s, min "
            f"{s['min']:.2f} s; target p50 <= {TARGET_FAILOVER_P50_S:g} s: "
            f"{'met' if s['p50'] <= TARGET_FAILOVER_P50_S else '**missed**'}. Each round: "
            + ", ".join(f"{r['write_accepted_s']:.2f}" for r in fo["rounds"])
            + " s. The killed node, restarted, converged (index and digest) after "
            f"{statistics.median(r['restart_to_converged_s'] for r in fo['rounds']):.1f} s "
            "(median, including its start-up).",
        ]
    cu = report["catchup"]
    if cu:
        lines += [
            "",
            "## Catch-up",
            "",
            f"One follower stopped while {cu[0]['keys']:,} new keys are written through the "
            "leader (gRPC, 128 in flight); time from SIGCONT (paused) or from the restart "
            "command (killed; includes the process start) until its applied index and digest "
            f"equal the leader's. Target <= {TARGET_CATCHUP_S:g} s. Not pinned.",
            "",
            "| follower | caught up, each repeat (s) | median | target | writes/s meanwhile |",
            "|---|---|---:|---|---:|",
        ]
        for how in ("paused", "killed"):
            rounds = [c for c in cu if c["how"] == how]
            if not rounds:
                continue
            med = statistics.median(c["caught_up_s"] for c in rounds)
            rate = statistics.median(c["keys"] / c["write_s"] for c in rounds)
            each = ", ".join(f"{c['caught_up_s']:.2f}" for c in rounds)
            lines.append(
                f"| {how} | {each} | {med:.2f} "
                f"| {'met' if med <= TARGET_CATCHUP_S else '**missed**'} | {rate:,.0f} |"
            )
        lines += ["", "Timeline of each catch-up (seconds from SIGCONT / the restart command):", ""]
        for c in cu:
            t = c["timeline"]
            line = (
                f"- {c['how']}, repeat {c['repeat']}: answered its status after "
                f"{t.get('answered_s', 0):.2f} s, applied index first moved at "
                f"{t.get('first_progress_s', 0):.2f} s, largest single step "
                f"{t.get('largest_step', 0):,.0f} entries at {t.get('largest_step_at_s', 0):.2f} s"
                f", equal at {c['caught_up_s']:.2f} s."
            )
            if c["follower_profile_pct"]:
                line += " Follower's worker, py-spy on-CPU samples: " + ", ".join(
                    f"{k} {v:g}%" for k, v in c["follower_profile_pct"].items()
                )
            lines.append(line)
    truncations = report["truncations"]
    lines += [
        "",
        '## PySyncObj\'s "truncating already-applied log entries"',
        "",
        (
            "Seen: " + ", ".join(f"{k} ({v}x)" for k, v in truncations.items())
            if truncations
            else "Not seen in any server's output during this run."
        ),
    ]
    if report.get("notes"):
        lines += ["", "## Notes", "", *report["notes"]]
    md_path = out_dir / "replication.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["op"], row["via"], row["consistency"])


# ---------------------------------------------------------------------- main


def _workspace() -> str:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else tempfile.gettempdir()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="< 30 s; temp output")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=128)
    parser.add_argument(
        "--server-threads", type=int, default=0, help="lrukv HTTP threads and gRPC workers "
        "per node (default: --inflight)"
    )  # fmt: skip
    parser.add_argument("--failover-rounds", type=int, default=10)
    parser.add_argument("--catchup-keys", type=int, default=100_000)
    parser.add_argument("--catchup-repeats", type=int, default=1)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "failover",
                        "catchup", "etcd"], help="leave sections out")  # fmt: skip
    parser.add_argument(
        "--profile", action="store_true", help="py-spy record the catching-up follower"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results")
    args = parser.parse_args()
    # Stopped with SIGTERM or SIGINT (also as a background job, where SIGINT is
    # ignored): unwind, so every server started is stopped by its PID.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)

    pinned = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    etcd = None if "etcd" in args.skip else shutil.which("etcd")
    setup = Setup(
        smoke=args.smoke,
        keys=100 if args.smoke else 1000,
        seconds=0.5 if args.smoke else args.seconds,
        warmup=0.3 if args.smoke else 1.0,
        repeats=1 if args.smoke else args.repeats,
        inflight=16 if args.smoke else args.inflight,
        failover_rounds=1 if args.smoke else args.failover_rounds,
        catchup_keys=1000 if args.smoke else args.catchup_keys,
        catchup_repeats=1 if args.smoke else args.catchup_repeats,
        wrk=None if args.smoke else shutil.which("wrk"),
        etcd=etcd,
        pinned=pinned,
        server_threads=args.server_threads,
        profile=args.profile,
    )
    etcd_note = ""
    if etcd is None and "etcd" not in args.skip:
        etcd_note = "etcd is not installed (apt-get install etcd-server); skipped"
        print(etcd_note)
    if setup.wrk is None:
        print("HTTP load: the Python generator (wrk is missing or --smoke)")
    command = "python benchmarks/bench_replication.py" + (
        "" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:])
    )
    started = time.monotonic()
    load_start = _load_average()
    pressure_start = _cpu_pressure()
    runs: list[Run] = []
    rounds: list[dict[str, Any]] = []
    catchups: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lrukv-bench-repl-", dir=_workspace()) as tmp:
        setup.workdir = tmp
        systems: list[tuple[str, Callable[[Setup, int], list[Run]]]] = [
            ("lrukv-1", lrukv_single),
            ("lrukv-3", lrukv_replicated),
        ]
        if etcd is not None:
            systems.append(("etcd-3", etcd_replicated))
        if "throughput" not in args.skip:
            for repeat in range(1, setup.repeats + 1):
                shift = (repeat - 1) % len(systems)
                for _, run_system in systems[shift:] + systems[:shift]:
                    runs += run_system(setup, repeat)
        if "failover" not in args.skip or "catchup" not in args.skip:
            # One cluster for both, with room for one catch-up round's keys (and
            # some): older rounds' keys are evicted, replicated like any write,
            # and the digests stay cheap.
            capacity = max(100, setup.catchup_keys * 12 // 100)
            with lrukv_cluster(setup, "resilience", items_per_shard=capacity) as cluster:
                if "failover" not in args.skip:
                    rounds = failover(setup, cluster)
                if "catchup" not in args.skip:
                    catchups = catchup(setup, cluster)
        truncations = _truncations(Path(tmp))
        report = {
            "command": command,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "took_s": time.monotonic() - started,
            "machine": f"{os.cpu_count()} x {_cpu_model()}, {platform.system()} "
            f"{platform.release()}",
            "load_average_start": load_start,
            "load_average_end": _load_average(),
            "cpu_pressure_start": pressure_start,
            "cpu_pressure_end": _cpu_pressure(),
            "versions": _versions(setup),
            "setup": asdict(setup),
            "lrukv_args": setup.lrukv_args(),
            "data_fs": "tmpfs (/dev/shm)" if tmp.startswith("/dev/shm") else tmp,
            "etcd_note": etcd_note,
            "summary": summarise(runs),
            "put_ratios": put_ratios(runs),
            "failover": {
                "rounds": rounds,
                "spread": _spread([r["write_accepted_s"] for r in rounds]) if rounds else {},
            },
            "catchup": catchups,
            "truncations": truncations,
            "runs": [asdict(r) for r in runs],
        }
        out_dir = args.out or (Path(tmp) / "results" if args.smoke else RESULTS)
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path, json_path = write_reports(out_dir, report)
        print(md_path.read_text())
        print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
