"""Load generators for benchmarks/bench_server.py and bench_replication.py (run as a
separate, pinned process).

    python benchmarks/server_load.py grpc --target 127.0.0.1:50051 --op get --seconds 10
    python benchmarks/server_load.py http --target 127.0.0.1:8080 --op put --seconds 10
    python benchmarks/server_load.py http-list --target 127.0.0.1:2379 --requests reqs.json

gRPC: one channel, ``--inflight`` calls kept in flight with futures: each
completion records its latency and issues the next call from grpcio's callback
thread, so the client never waits for one answer before asking again.

HTTP (the fallback when wrk is missing, and in --smoke runs): ``--connections``
threads, each with one keep-alive connection, one request at a time. Python
threads share one interpreter lock, so this measures less than wrk would; the
benchmark says which load generator produced each number.

http-list: the same threads and connections, over a JSON file of ``[method, path,
body or null]`` requests taken round-robin (lrukv GETs with ``?consistency=``,
etcd's JSON gateway); any status >= 300 counts as an error. gRPC GETs take
``--consistency``.

Keys are ``bench-0000`` … ``bench-{keys-1}``, taken round-robin; PUT values are
``--value-size`` bytes. Prints one JSON object: requests, seconds, errors, p50_ms,
p99_ms, tool. Latency is from issuing a call to its completion.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from typing import Any

import grpc

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc

__all__ = [
    "CONSISTENCY",
    "key_name",
    "percentile",
    "preload_grpc",
    "preload_http",
    "run_grpc",
    "run_http",
    "run_http_list",
]

CONSISTENCY = {
    "default": kv_pb2.CONSISTENCY_DEFAULT,
    "stale": kv_pb2.CONSISTENCY_STALE,
    "linearizable": kv_pb2.CONSISTENCY_LINEARIZABLE,
}


def key_name(i: int) -> str:
    return f"bench-{i:04d}"


def percentile(sorted_values: list[float], pct: float) -> float:
    """The *pct* percentile (nearest rank) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def _result(
    requests: int, seconds: float, errors: int, latencies: list[float], tool: str
) -> dict[str, Any]:
    latencies.sort()
    return {
        "requests": requests,
        "seconds": seconds,
        "errors": errors,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "tool": tool,
    }


def preload_grpc(target: str, keys: int, value: bytes) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = kv_pb2_grpc.KVStub(channel)
        for i in range(keys):
            stub.Put(kv_pb2.PutRequest(key=key_name(i), value=value), timeout=10)


def preload_http(target: str, keys: int, value: bytes) -> None:
    conn = http.client.HTTPConnection(target, timeout=10)
    try:
        for i in range(keys):
            conn.request("PUT", f"/v1/{key_name(i)}", body=value)
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"preload PUT answered {response.status}")
    finally:
        conn.close()


def run_grpc(
    target: str,
    op: str,
    *,
    seconds: float,
    inflight: int,
    keys: int,
    value: bytes,
    consistency: str = "default",
) -> dict[str, Any]:
    """Keep *inflight* calls going for *seconds*; return the counts and latencies."""
    channel = grpc.insecure_channel(target)
    stub = kv_pb2_grpc.KVStub(channel)
    names = [key_name(i) for i in range(keys)]
    if op == "get":
        level = CONSISTENCY[consistency]
        requests: list[Any] = [kv_pb2.GetRequest(key=name, consistency=level) for name in names]
        method: Any = stub.Get.future
    else:
        requests = [kv_pb2.PutRequest(key=name, value=value) for name in names]
        method = stub.Put.future
    lock = threading.Lock()
    finished = threading.Event()
    latencies: list[float] = []
    counts = {"done": 0, "errors": 0, "issued": 0, "outstanding": 0}
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds

    def issue() -> None:
        with lock:
            index = counts["issued"]
            counts["issued"] += 1
            counts["outstanding"] += 1
        begin = clock()
        future = method(requests[index % keys], timeout=30)
        future.add_done_callback(lambda f: complete(f, begin))

    def complete(future: grpc.Future[Any], begin: float) -> None:
        end = clock()
        failed = future.exception() is not None
        with lock:
            counts["outstanding"] -= 1
            if end <= deadline:
                counts["done"] += 1
                counts["errors"] += failed
                latencies.append(end - begin)
            more = end < deadline
            last = not more and counts["outstanding"] == 0
        if more:
            issue()
        elif last:
            finished.set()

    for _ in range(inflight):
        issue()
    finished.wait(seconds + 60)
    channel.close()
    return _result(
        counts["done"], seconds, counts["errors"], latencies, f"python grpc, {inflight} in flight"
    )


def run_http(
    target: str, op: str, *, seconds: float, connections: int, keys: int, value: bytes
) -> dict[str, Any]:
    """*connections* threads, one keep-alive connection each, for *seconds*."""
    method, body = ("GET", None) if op == "get" else ("PUT", value)
    requests = [(method, f"/v1/{key_name(n)}", body) for n in range(keys)]
    return run_http_list(target, requests, seconds=seconds, connections=connections, headers={})


def run_http_list(
    target: str,
    requests: list[tuple[str, str, bytes | None]],
    *,
    seconds: float,
    connections: int,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """*connections* threads, one keep-alive connection each, for *seconds*, over a
    list of (method, path, body) requests taken round-robin: any HTTP API (lrukv
    with a consistency level, etcd's JSON gateway). *headers* default to a JSON
    Content-Type when the requests have bodies."""
    host, port = target.rsplit(":", 1)
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    totals = {"done": 0, "errors": 0}
    if headers is None:
        headers = {"Content-Type": "application/json"} if requests[0][2] else {}

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: list[float] = []
        errors = 0
        i = offset
        clock = time.perf_counter
        try:
            while True:
                method, path, body = requests[i % len(requests)]
                i += connections
                begin = clock()
                if begin >= deadline:
                    break
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                end = clock()
                if end > deadline:
                    break
                mine.append(end - begin)
                errors += response.status >= 300
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)
            totals["done"] += len(mine)
            totals["errors"] += errors

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return _result(
        totals["done"],
        seconds,
        totals["errors"],
        latencies,
        f"python http, {connections} connections",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["grpc", "http", "http-list"])
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--op", choices=["get", "put"], default="get")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--inflight", type=int, default=64, help="gRPC calls in flight")
    parser.add_argument("--connections", type=int, default=32, help="HTTP connections")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--consistency", choices=sorted(CONSISTENCY), default="default")
    parser.add_argument(
        "--requests", help="http-list: a JSON file of [method, path, body or null] lists"
    )
    args = parser.parse_args()
    value = b"v" * args.value_size
    if args.transport == "grpc":
        result = run_grpc(
            args.target,
            args.op,
            seconds=args.seconds,
            inflight=args.inflight,
            keys=args.keys,
            value=value,
            consistency=args.consistency,
        )
    elif args.transport == "http-list":
        with open(args.requests, encoding="utf-8") as file:
            listed = [
                (method, path, None if body is None else body.encode())
                for method, path, body in json.load(file)
            ]
        result = run_http_list(
            args.target, listed, seconds=args.seconds, connections=args.connections
        )
    else:
        result = run_http(
            args.target,
            args.op,
            seconds=args.seconds,
            connections=args.connections,
            keys=args.keys,
            value=value,
        )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
