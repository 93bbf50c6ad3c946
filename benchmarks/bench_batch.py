"""How many keys per second do lrukv's batches move, next to single requests and Redis?

    .venv/bin/python benchmarks/bench_batch.py            # ~3 min; writes
                                                          # benchmarks/results/batch.{md,json}
    .venv/bin/python benchmarks/bench_batch.py --smoke    # a few seconds; writes to a temp dir

Everything on 127.0.0.1. The server process (master and worker, every thread)
is pinned to CPU 0 with ``sched_setaffinity``; this process, the load, to CPU 1
(``redis-benchmark`` too, with taskset). Redis is the machine's own server at
127.0.0.1:6379 (db ``--redis-db``, keys ``lrukv-bench:*``, deleted afterwards);
it is not ours to pin, so it runs wherever the kernel puts it.

Contenders, each measured ``--repeats`` times for ``--seconds`` after a warm-up,
interleaved (the reports give the median of the repeats):

* lrukv gRPC through raw generated stubs (not the SDK): ``GetMany`` and
  ``PutMany`` of 100 keys of 100 bytes (``--inflight`` calls in flight, futures),
  the ``Pipeline`` stream (one stream, a window of ``--window`` requests in
  flight), and the single ``Get``/``Put`` (32 in flight) as the per-request baseline;
* lrukv HTTP: ``POST /v1/util/batch`` of 100 gets or 100 puts (``--http-clients``
  keep-alive connections, one thread each), and single ``GET /v1/KEY``;
* Redis through redis-py: ``MGET``/``MSET`` of 100 keys and a pipeline of 100
  ``GET``/``SET`` (one connection, closed loop), and single ``GET``;
* ``redis-benchmark -t get,set,mset -P 100`` (its CSV; its MSET carries 10 keys);
* replicated: ``PutMany`` on a 3-node lrukv cluster (the leader pinned to CPU 0,
  the followers to CPU 1 with the load) and on the single node, both with
  ``--replicated-inflight`` calls in flight (a call in a cluster waits a Raft
  round, so throughput needs calls in flight), in the same run.

Targets (issue 12): gRPC GetMany >= 150k keys/s and PutMany >= 100k keys/s on a
single node; replicated PutMany >= 0.5 x the single node's.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import http.client
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))  # run as a script: make `benchmarks` and `tests` importable
from benchmarks import machine_load  # noqa: E402
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc  # noqa: E402
from tests.harness import ServerProcess, start_server  # noqa: E402
from tests.replication.cluster import Cluster  # noqa: E402

BATCH = 100
VALUE = b"v" * 100
SERVER_CPU = {0}
LOAD_CPU = {1}
TARGET_GET_MANY = 150_000
TARGET_PUT_MANY = 100_000
TARGET_REPLICATED_RATIO = 0.5
REDIS_PREFIX = "lrukv-bench:"


@dataclass
class Setup:
    smoke: bool
    seconds: float
    warmup: float
    repeats: int
    keys: int
    inflight: int
    replicated_inflight: int
    window: int
    http_clients: int
    redis_db: int
    pinned: bool
    skip: tuple[str, ...]


@dataclass
class Run:
    repeat: int
    system: str  # lrukv-1 | lrukv-3 | redis
    api: str  # grpc | http | redis-py | redis-benchmark
    op: str
    keys_per_request: int
    requests_per_s: float
    keys_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_s: float = 0.0  # CPU time of the server's worker (the leader's) meanwhile
    seconds: float = 0.0

    @property
    def keys_per_cpu_s(self) -> float:
        """Keys moved per second of the server's CPU: what one free core would do."""
        return self.keys_per_s * self.seconds / self.server_cpu_s if self.server_cpu_s else 0.0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process *pid* so far (0 without one)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def key_name(i: int) -> str:
    return f"bench-{i:05d}"


def _pin(pids: Sequence[int], cpus: set[int]) -> None:
    """Pin every thread of *pids* to *cpus* (threads started later inherit it)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), cpus)


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(pct / 100 * len(values)) - 1))]


def _run(
    repeat: int,
    *,
    system: str,
    api: str,
    op: str,
    per: int,
    measured: tuple[int, float, list[float], int],
    server_cpu_s: float = 0.0,
) -> Run:
    calls, seconds, latencies, errors = measured
    rate = calls / seconds if seconds else 0.0
    run = Run(
        repeat, system, api, op, per, rate, rate * per,
        _percentile(latencies, 50) * 1000, _percentile(latencies, 99) * 1000, errors,
        server_cpu_s, seconds,
    )  # fmt: skip
    print(
        f"  {system:8} {api:15} {op:22} {run.keys_per_s:>10,.0f} keys/s "
        f"({rate:,.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, errors {errors}"
        f", server CPU {server_cpu_s / seconds * 100 if seconds else 0:.0f}%)",
        flush=True,
    )
    return run


# ------------------------------------------------------------------ lrukv gRPC


def unary_loop(
    call: Callable[..., Any],
    requests: Sequence[Any],
    check: Callable[[Any], bool],
    *,
    seconds: float,
    inflight: int,
) -> tuple[int, float, list[float], int]:
    """Keep *inflight* futures of *call* going for *seconds*; (calls, s, latencies, errors)."""
    lock = threading.Lock()
    finished = threading.Event()
    latencies: list[float] = []
    state = {"issued": 0, "done": 0, "errors": 0, "outstanding": 0}
    clock = time.perf_counter
    deadline = clock() + seconds

    def issue() -> None:
        with lock:
            index = state["issued"]
            state["issued"] += 1
            state["outstanding"] += 1
        begin = clock()
        future = call(requests[index % len(requests)], timeout=30)
        future.add_done_callback(lambda f: complete(f, begin))

    def complete(future: Any, begin: float) -> None:
        now = clock()
        try:
            ok = check(future.result())
        except grpc.RpcError:
            ok = False
        with lock:
            latencies.append(now - begin)
            state["done"] += 1
            state["errors"] += not ok
            state["outstanding"] -= 1
            more = now < deadline
            if not more and state["outstanding"] == 0:
                finished.set()
        if more:
            issue()

    started = clock()
    for _ in range(inflight):
        issue()
    finished.wait(seconds + 60)
    return state["done"], clock() - started, latencies, state["errors"]


def pipeline_loop(
    stub: kv_pb2_grpc.KVStub,
    make: Callable[[int], kv_pb2.PipelineRequest],
    *,
    seconds: float,
    window: int,
) -> tuple[int, float, list[float], int]:
    """One Pipeline stream with up to *window* requests unanswered, for *seconds*."""
    room = threading.Semaphore(window)
    stop = threading.Event()

    def requests() -> Iterator[kv_pb2.PipelineRequest]:
        number = 0
        while not stop.is_set():
            if room.acquire(timeout=0.1):
                yield make(number)
                number += 1

    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    answers = stub.Pipeline(requests(), timeout=seconds + 60)
    count = errors = 0
    for answer in answers:
        count += 1
        errors += answer.WhichOneof("response") == "error"
        room.release()
        if count % 256 == 0 and clock() >= deadline:
            break
    elapsed = clock() - started
    stop.set()
    answers.cancel()  # type: ignore[no-untyped-call]
    return count, elapsed, [], errors


def grpc_runs(
    setup: Setup, target: str, repeat: int, system: str, server_pid: int | None
) -> list[Run]:
    runs = []
    names = [key_name(i) for i in range(setup.keys)]
    groups = [names[i : i + BATCH] for i in range(0, len(names), BATCH)]
    with grpc.insecure_channel(target) as channel:
        stub = kv_pb2_grpc.KVStub(channel)
        get_many = [kv_pb2.GetManyRequest(keys=group) for group in groups]
        put_many = [
            kv_pb2.PutManyRequest(entries=[kv_pb2.PutManyEntry(key=k, value=VALUE) for k in group])
            for group in groups
        ]
        gets = [kv_pb2.GetRequest(key=k) for k in names]
        puts = [kv_pb2.PutRequest(key=k, value=VALUE) for k in names]

        def found_all(answer: kv_pb2.GetManyResponse) -> bool:
            return len(answer.results) == BATCH and answer.results[-1].found

        def stored_all(answer: kv_pb2.PutManyResponse) -> bool:
            return len(answer.results) == BATCH and not answer.results[-1].HasField("error")

        # The replicated comparison: the same load on one node and on the cluster,
        # with enough calls in flight to cover a Raft round (a call waits ~10-25 ms).
        deep = setup.replicated_inflight
        cases: list[tuple[str, int, Callable[[float], tuple[int, float, list[float], int]]]] = []
        if deep != setup.inflight:
            cases.append(
                (
                    f"PutMany x100, {deep} in flight",
                    BATCH,
                    lambda s: unary_loop(
                        stub.PutMany.future, put_many, stored_all, seconds=s, inflight=deep
                    ),
                )
            )
        if system == "lrukv-1" or deep == setup.inflight:
            cases.append(
                (
                    "PutMany x100",
                    BATCH,
                    lambda s: unary_loop(
                        stub.PutMany.future,
                        put_many,
                        stored_all,
                        seconds=s,
                        inflight=setup.inflight,
                    ),
                )
            )
        if system == "lrukv-1":
            cases += [
                (
                    "GetMany x100",
                    BATCH,
                    lambda s: unary_loop(
                        stub.GetMany.future, get_many, found_all, seconds=s, inflight=setup.inflight
                    ),
                ),
                (
                    "Get (single)",
                    1,
                    lambda s: unary_loop(
                        stub.Get.future, gets, lambda a: True, seconds=s, inflight=32
                    ),
                ),
                (
                    "Put (single)",
                    1,
                    lambda s: unary_loop(
                        stub.Put.future, puts, lambda a: True, seconds=s, inflight=32
                    ),
                ),
                (
                    "Pipeline get",
                    1,
                    lambda s: pipeline_loop(
                        stub,
                        lambda n: kv_pb2.PipelineRequest(id=n, get=gets[n % len(gets)]),
                        seconds=s,
                        window=setup.window,
                    ),
                ),
                (
                    "Pipeline put",
                    1,
                    lambda s: pipeline_loop(
                        stub,
                        lambda n: kv_pb2.PipelineRequest(id=n, put=puts[n % len(puts)]),
                        seconds=s,
                        window=setup.window,
                    ),
                ),
            ]
        for op, per, measure in cases:
            measure(setup.warmup)
            before = cpu_seconds(server_pid)
            measured = measure(setup.seconds)
            used = cpu_seconds(server_pid) - before
            runs.append(
                _run(
                    repeat,
                    system=system,
                    api="grpc",
                    op=op,
                    per=per,
                    measured=measured,
                    server_cpu_s=used,
                )
            )
    return runs


# ------------------------------------------------------------------ lrukv HTTP


def http_loop(
    target: str,
    make: Callable[[int], tuple[str, str, bytes | None]],
    *,
    seconds: float,
    clients: int,
) -> tuple[int, float, list[float], int]:
    """*clients* threads, each a keep-alive connection, one request at a time."""
    lock = threading.Lock()
    latencies: list[float] = []
    state = {"done": 0, "errors": 0}
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds

    def client(number: int) -> None:
        conn = http.client.HTTPConnection(target, timeout=30)
        mine: list[float] = []
        done = errors = 0
        index = number * 7919
        try:
            while clock() < deadline:
                method, path, body = make(index)
                index += 1
                begin = clock()
                conn.request(method, path, body=body)
                response = conn.getresponse()
                data = response.read()
                if response.status >= 300 or (body is not None and not json.loads(data)["results"]):
                    errors += 1
                mine.append(clock() - begin)
                done += 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                state["done"] += done
                state["errors"] += errors

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["done"], clock() - started, latencies, state["errors"]


def http_runs(setup: Setup, target: str, repeat: int, server_pid: int | None) -> list[Run]:
    names = [key_name(i) for i in range(setup.keys)]
    groups = [names[i : i + BATCH] for i in range(0, len(names), BATCH)]
    value = base64.b64encode(VALUE).decode()
    gets = [json.dumps({"ops": [{"op": "get", "key": k} for k in g]}).encode() for g in groups]
    puts = [
        json.dumps({"ops": [{"op": "put", "key": k, "value": value} for k in g]}).encode()
        for g in groups
    ]
    cases: list[tuple[str, int, Callable[[int], tuple[str, str, bytes | None]]]] = [
        ("batch 100 gets", BATCH, lambda i: ("POST", "/v1/util/batch", gets[i % len(gets)])),
        ("batch 100 puts", BATCH, lambda i: ("POST", "/v1/util/batch", puts[i % len(puts)])),
        ("GET (single)", 1, lambda i: ("GET", f"/v1/{names[i % len(names)]}", None)),
    ]
    runs = []
    for op, per, make in cases:
        http_loop(target, make, seconds=setup.warmup, clients=setup.http_clients)
        before = cpu_seconds(server_pid)
        measured = http_loop(target, make, seconds=setup.seconds, clients=setup.http_clients)
        used = cpu_seconds(server_pid) - before
        runs.append(
            _run(
                repeat, system="lrukv-1", api="http", op=op, per=per, measured=measured,
                server_cpu_s=used,
            )
        )  # fmt: skip
    return runs


# ----------------------------------------------------------------------- Redis


def redis_loop(step: Callable[[int], Any], seconds: float) -> tuple[int, float, list[float], int]:
    latencies: list[float] = []
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    done = 0
    while clock() < deadline:
        begin = clock()
        step(done)
        latencies.append(clock() - begin)
        done += 1
    return done, clock() - started, latencies, 0


def redis_runs(setup: Setup, repeat: int) -> list[Run]:
    import redis  # the dev extra; imported here so the lrukv parts run without it

    client = redis.Redis(host="127.0.0.1", port=6379, db=setup.redis_db)
    names = [REDIS_PREFIX + key_name(i) for i in range(setup.keys)]
    groups = [names[i : i + BATCH] for i in range(0, len(names), BATCH)]
    for group in groups:
        client.mset(dict.fromkeys(group, VALUE))

    def mget(n: int) -> None:
        values = client.mget(groups[n % len(groups)])
        assert values[-1] == VALUE

    def mset(n: int) -> None:
        client.mset(dict.fromkeys(groups[n % len(groups)], VALUE))

    def pipe_get(n: int) -> None:
        pipe = client.pipeline(transaction=False)
        for key in groups[n % len(groups)]:
            pipe.get(key)
        assert pipe.execute()[-1] == VALUE

    def pipe_set(n: int) -> None:
        pipe = client.pipeline(transaction=False)
        for key in groups[n % len(groups)]:
            pipe.set(key, VALUE)
        pipe.execute()

    def single_get(n: int) -> None:
        client.get(names[n % len(names)])

    cases = [
        ("MGET x100", BATCH, mget),
        ("MSET x100", BATCH, mset),
        ("pipeline 100 GET", BATCH, pipe_get),
        ("pipeline 100 SET", BATCH, pipe_set),
        ("GET (single)", 1, single_get),
    ]
    runs = []
    try:
        for op, per, step in cases:
            redis_loop(step, setup.warmup)
            runs.append(
                _run(
                    repeat,
                    system="redis",
                    api="redis-py",
                    op=op,
                    per=per,
                    measured=redis_loop(step, setup.seconds),
                )
            )
    finally:
        for group in groups:
            client.delete(*group)
        client.close()
    return runs


def redis_benchmark_runs(setup: Setup, repeat: int) -> list[Run]:
    tool = shutil.which("redis-benchmark")
    if tool is None:
        print("  redis-benchmark is not installed: skipped")
        return []
    requests = 2_000 if setup.smoke else 1_000_000
    command = [
        *(["taskset", "-c", ",".join(map(str, sorted(LOAD_CPU)))] if setup.pinned else []),
        tool, "-h", "127.0.0.1", "-p", "6379", "--dbnum", str(setup.redis_db),
        "-t", "get,set,mset", "-P", str(BATCH), "-n", str(requests), "-d", str(len(VALUE)),
        "--csv",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    runs = []
    for row in csv.DictReader(io.StringIO(output)):
        name = row["test"]
        per = 10 if name.startswith("MSET") else 1  # redis-benchmark's MSET sets 10 keys
        rate = float(row["rps"])
        run = Run(
            repeat, "redis", "redis-benchmark", f"{name} -P {BATCH}", per, rate, rate * per,
            float(row.get("p50_latency_ms", 0) or 0), float(row.get("p99_latency_ms", 0) or 0), 0,
        )  # fmt: skip
        print(f"  redis    redis-benchmark {run.op:22} {run.keys_per_s:>10,.0f} keys/s", flush=True)
        runs.append(run)
    return runs


# ------------------------------------------------------------------ the servers


def preload(target: str, keys: int) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = kv_pb2_grpc.KVStub(channel)
        for start in range(0, keys, BATCH):
            entries = [
                kv_pb2.PutManyEntry(key=key_name(i), value=VALUE)
                for i in range(start, min(start + BATCH, keys))
            ]
            for attempt in range(10):  # a busy machine may see an election meanwhile
                try:
                    stub.PutMany(kv_pb2.PutManyRequest(entries=entries), timeout=30)
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == 9:
                        raise
                    time.sleep(0.5)


def server_args(setup: Setup) -> list[str]:
    # A PutMany in a cluster holds its worker for a Raft round: enough workers for
    # every call in flight (the same on the single node, so both run alike).
    workers = max(16, setup.replicated_inflight + 8)
    return ["--log-mode", "prod", "-i", str(setup.keys), "--grpc-workers", str(workers)]


@contextlib.contextmanager
def single_node(setup: Setup, workdir: Path) -> Iterator[ServerProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    server = start_server(workdir, *server_args(setup))
    try:
        if setup.pinned:
            _pin([server.pid, server.worker_pid], SERVER_CPU)
        preload(server.rpc_addr, setup.keys)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def cluster_of_three(setup: Setup, workdir: Path) -> Iterator[tuple[str, int]]:
    """A 3-node cluster; yields the leader's gRPC address and its worker's PID."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir, size=3, extra_args=tuple(server_args(setup)))
    try:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=60)
        if setup.pinned:
            _pin(leader.pids(), SERVER_CPU)
            for node in cluster.running():
                if node is not leader:
                    _pin(node.pids(), LOAD_CPU)
        preload(leader.up.rpc_addr, setup.keys)
        yield leader.up.rpc_addr, leader.up.worker_pid
        cluster.wait_converged(timeout=60)  # the replicas agree after the load
    finally:
        cluster.stop_all()


# --------------------------------------------------------------------- reports


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.system, run.api, run.op), []).append(run)
    rows = []
    for (system, api, op), members in groups.items():
        members.sort(key=lambda r: r.keys_per_s)
        median = members[len(members) // 2]
        rows.append(
            {
                "system": system,
                "api": api,
                "op": op,
                "keys_per_request": median.keys_per_request,
                "keys_per_s": statistics.median(r.keys_per_s for r in members),
                "requests_per_s": statistics.median(r.requests_per_s for r in members),
                "p50_ms": median.p50_ms,
                "p99_ms": median.p99_ms,
                "errors": sum(r.errors for r in members),
                "server_cpu_pct": statistics.median(
                    r.server_cpu_s / r.seconds * 100 if r.seconds else 0.0 for r in members
                ),
                "keys_per_server_cpu_s": statistics.median(r.keys_per_cpu_s for r in members),
                "repeats": len(members),
            }
        )
    return rows


def _find(rows: list[dict[str, Any]], system: str, api: str, op: str) -> float | None:
    return next(
        (r["keys_per_s"] for r in rows if (r["system"], r["api"], r["op"]) == (system, api, op)),
        None,
    )


def _deep_put(runs: list[Run]) -> str:
    """The op name of the PutMany measured on both the single node and the cluster."""
    return next((r.op for r in runs if r.system == "lrukv-3"), "PutMany x100")


def targets(rows: list[dict[str, Any]], runs: list[Run]) -> list[dict[str, Any]]:
    get_many = _find(rows, "lrukv-1", "grpc", "GetMany x100")
    put_many = _find(rows, "lrukv-1", "grpc", "PutMany x100")
    ratios = []
    for repeat in {r.repeat for r in runs}:
        one = [r for r in runs if r.repeat == repeat and r.op == _deep_put(runs)]
        single = next((r.keys_per_s for r in one if r.system == "lrukv-1"), None)
        three = next((r.keys_per_s for r in one if r.system == "lrukv-3"), None)
        if single and three:
            ratios.append(three / single)
    ratio = statistics.median(ratios) if ratios else None
    return [
        {"target": f"gRPC GetMany x100 >= {TARGET_GET_MANY:,} keys/s", "value": get_many,
         "met": get_many is not None and get_many >= TARGET_GET_MANY},
        {"target": f"gRPC PutMany x100 >= {TARGET_PUT_MANY:,} keys/s", "value": put_many,
         "met": put_many is not None and put_many >= TARGET_PUT_MANY},
        {"target": f"replicated PutMany >= {TARGET_REPLICATED_RATIO} x single node "
                   "(median of the per-repeat ratios)", "value": ratio,
         "met": ratio is not None and ratio >= TARGET_REPLICATED_RATIO},
    ]  # fmt: skip


def _cpu(row: dict[str, Any]) -> str:
    if not row["keys_per_server_cpu_s"]:
        return "— | —"
    return f"{row['server_cpu_pct']:.0f}% | {row['keys_per_server_cpu_s']:,.0f}"


def _ms(value: float) -> str:
    """A latency cell; the Pipeline's answers are not timed one by one (0: not measured)."""
    return f"{value:.2f}" if value else "—"


def write_reports(
    out: Path,
    setup: Setup,
    runs: list[Run],
    command: str,
    load: tuple[dict[str, Any], ...],
    *,
    failures: Sequence[str] = (),
) -> None:
    rows = summarise(runs)
    goals = targets(rows, runs)
    document = {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {"before": load[0], "after": load[1]},
        "setup": asdict(setup),
        "targets": goals,
        "failures": list(failures),
        "rows": rows,
        "runs": [asdict(r) for r in runs],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "# Batches: keys per second, lrukv next to single requests and Redis",
        "",
        f"Command: `{command}`  ",
        f"Date: {document['date']}; {machine_load.describe(load[0], load[1])}.",
        "",
        f"Server pinned to CPU {sorted(SERVER_CPU)}, the load (this Python process, "
        f"redis-benchmark) to CPU {sorted(LOAD_CPU)}; Redis (the machine's, not ours to "
        f"pin) floats. {setup.keys} keys of {len(VALUE)} bytes; median of {setup.repeats} "
        f"repeats of {setup.seconds:g} s; gRPC batches with {setup.inflight} calls in "
        f"flight ({setup.replicated_inflight} in the single node vs cluster PutMany), "
        f"the Pipeline with a window of {setup.window}, HTTP with "
        f"{setup.http_clients} keep-alive connections, redis-py one connection.",
    ]
    warning = machine_load.caveat(load[0], load[1])
    if warning:
        lines += ["", warning]
    for failure in failures:
        lines += ["", f"Failed, so missing from the tables: {failure}"]
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for goal in goals:
        value = goal["value"]
        shown = "—" if value is None else (f"{value:.2f}" if value < 10 else f"{value:,.0f}")
        lines.append(f"| {goal['target']} | {shown} | {'yes' if goal['met'] else '**no**'} |")
    lines += [
        "",
        "## Every contender",
        "",
        "| system | client | operation | keys/request | keys/s | requests/s | p50 ms | p99 ms "
        "| errors | server CPU | keys per server CPU-second |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['system']} | {row['api']} | {row['op']} | {row['keys_per_request']} | "
            f"{row['keys_per_s']:,.0f} | {row['requests_per_s']:,.0f} | {_ms(row['p50_ms'])} | "
            f"{_ms(row['p99_ms'])} | {row['errors']} | {_cpu(row)} |"
        )
    (out / "batch.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'batch.md'} and {out / 'batch.json'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, to a temp dir")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--inflight", type=int, default=4, help="gRPC batch calls in flight")
    parser.add_argument(
        "--replicated-inflight",
        type=int,
        default=4,
        help="PutMany calls in flight in the single-node vs cluster comparison "
        "(default: --inflight's 4; more made the cluster slower here, see the results)",
    )
    parser.add_argument("--window", type=int, default=256, help="Pipeline requests in flight")
    parser.add_argument("--http-clients", type=int, default=4)
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument(
        "--skip", action="append", default=[], choices=["http", "redis", "replicated"]
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    pinned = (os.cpu_count() or 1) >= 2
    setup = Setup(
        smoke=args.smoke,
        seconds=0.3 if args.smoke else args.seconds,
        warmup=0.1 if args.smoke else 1.0,
        repeats=1 if args.smoke else args.repeats,
        keys=1000 if args.smoke else args.keys,
        inflight=args.inflight,
        replicated_inflight=args.replicated_inflight,
        window=args.window,
        http_clients=args.http_clients,
        redis_db=args.redis_db,
        pinned=pinned,
        skip=tuple(args.skip),
    )
    if pinned:
        os.sched_setaffinity(0, LOAD_CPU)  # before any thread: they all inherit it
    command = " ".join([".venv/bin/python", "benchmarks/bench_batch.py", *sys.argv[1:]])
    load_before = machine_load.sample()
    runs: list[Run] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lrukv-bench-batch-") as tmp:
        workdir = Path(tmp)
        for repeat in range(setup.repeats):
            print(f"repeat {repeat + 1}/{setup.repeats}", flush=True)
            with single_node(setup, workdir / f"single-{repeat}") as server:
                runs += grpc_runs(setup, server.rpc_addr, repeat, "lrukv-1", server.worker_pid)
                if "http" not in setup.skip:
                    runs += http_runs(setup, server.http_addr, repeat, server.worker_pid)
            if "redis" not in setup.skip:
                runs += redis_runs(setup, repeat)
                runs += redis_benchmark_runs(setup, repeat)
            if "replicated" not in setup.skip:
                try:
                    with cluster_of_three(setup, workdir / f"cluster-{repeat}") as (leader, pid):
                        runs += grpc_runs(setup, leader, repeat, "lrukv-3", pid)
                except Exception as exc:  # an election on a saturated machine: say so, go on
                    failures.append(f"repeat {repeat + 1}, 3-node cluster: {exc!r:.300}")
                    print(f"  the cluster failed: {failures[-1]}", flush=True)
    load_after = machine_load.sample()
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="lrukv-batch-smoke-")) if setup.smoke else RESULTS
    )
    write_reports(out, setup, runs, command, (load_before, load_after), failures=failures)
    if setup.smoke:
        bad = [r for r in runs if r.errors or r.keys_per_s <= 0]
        if bad or failures:
            print(f"smoke: runs with errors or no progress: {bad}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
