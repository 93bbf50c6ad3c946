"""What does authorization (``--auth-policy``) cost per request?

    .venv/bin/python benchmarks/bench_authz.py          # full run: benchmarks/results/authz.*
    .venv/bin/python benchmarks/bench_authz.py --smoke  # seconds; writes to a temp dir

Everything runs in this one process, each contender against its baseline in the
same run, interleaved and repeated (the order rotates each repeat), so machine
noise hits both alike. Reported: the median over the repeats.

* ``wsgi``: the Flask app called directly (no sockets) for ``GET /v1/<key>`` over
  a LocalService, without and with the middleware and a bearer token; CPU time
  of the thread per request (time.thread_time_ns, so waiting for a CPU on a
  shared machine is not counted).
* ``grpc``: a real GrpcServer on loopback, without and with the interceptor;
  one blocking client sends ``Get`` calls one at a time (wall time per call:
  the latency a caller sees, both sides in this process).
* ``token lookup``: ``Policy.subject_for_token`` with 1, 100 and 1000 tokens in
  the policy: a dict lookup of the token's SHA-256, so it should not grow with
  the number of tokens.

The ratio is baseline time / authorized time (1.0: free).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from benchmarks import machine_load
from lrukv import StoreConfig
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.api.grpc_server import GrpcServer
from lrukv_server.api.http_app import create_app
from lrukv_server.fsm import StoreFSM
from lrukv_server.security import transport_guards
from lrukv_server.security.policy import Policy, Role, Subject, hash_token
from lrukv_server.service.base import ServerInfo
from lrukv_server.service.local import LocalService
from lrukv_server.transport import TransportOptions

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "bench-reader-token-0123456789abcdef"
KEY = "bench-key"
LIMIT = 1 << 20


def make_policy(tokens: int) -> Policy:
    """*tokens* subjects with one token each; the benchmark's reader is the last."""
    subjects = {
        f"s{n}": Subject(f"s{n}", Role.READER, (bytes.fromhex(hash_token(f"other-{n}")),))
        for n in range(tokens - 1)
    }
    subjects["reader"] = Subject("reader", Role.READER, (bytes.fromhex(hash_token(TOKEN)),))
    return Policy(subjects=subjects)


def make_service() -> LocalService:
    service = LocalService(
        StoreFSM(StoreConfig(max_value_bytes=LIMIT).build()),
        node=ServerInfo("bench", "127.0.0.1:0", "127.0.0.1:0", True),
    )
    service.put(KEY, b"v" * 100)
    return service


def wsgi_caller(transport: TransportOptions) -> Callable[[], None]:
    app = create_app(make_service(), max_value_bytes=LIMIT, transport=transport).wsgi_app
    environ_base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/v1/{KEY}",
        "RAW_URI": f"/v1/{KEY}",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "HTTP_AUTHORIZATION": f"Bearer {TOKEN}",
    }
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    def call() -> None:
        statuses.clear()
        for _ in app(dict(environ_base), start_response):
            pass
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"GET answered {statuses[0]}")

    return call


def token_lookup(policy: Policy) -> Callable[[], None]:
    lookup = policy.subject_for_token

    def call() -> None:
        if lookup(TOKEN) != "reader":
            raise RuntimeError("the benchmark's token was not found")

    return call


def time_cpu(call: Callable[[], None], n: int) -> float:
    """CPU ns of this thread per call."""
    started = time.thread_time_ns()
    for _ in range(n):
        call()
    return (time.thread_time_ns() - started) / n


def time_wall(call: Callable[[], None], n: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(n):
        call()
    return (time.perf_counter_ns() - started) / n


class GrpcPair:
    """A GrpcServer (with or without the interceptor) and a client calling Get."""

    def __init__(self, transport: TransportOptions, token: str | None) -> None:
        self.server = GrpcServer(
            host="127.0.0.1",
            port=0,
            workers=4,
            max_value_bytes=LIMIT,
            max_key_bytes=1024,
            transport=transport,
        )
        self.server.bind()
        self.server.start(make_service())
        self.channel = grpc.insecure_channel(self.server.address)
        stub = kv_pb2_grpc.KVStub(self.channel)
        request = kv_pb2.GetRequest(key=KEY)
        metadata = (("authorization", f"Bearer {token}"),) if token else None

        def call() -> None:
            stub.Get(request, timeout=10, metadata=metadata)

        self.call = call

    def close(self) -> None:
        self.channel.close()
        self.server.begin_stop(0)
        self.server.wait_stopped(10)


def rotate(items: list[Any], repeat: int) -> list[Any]:
    shift = repeat % len(items)
    return items[shift:] + items[:shift]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run into a temp dir")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    repeats = 2 if args.smoke else args.repeats
    n_wsgi = 300 if args.smoke else 5000
    n_grpc = 200 if args.smoke else 3000
    n_lookup = 500 if args.smoke else 20000
    out_dir = Path(tempfile.mkdtemp(prefix="bench-authz-")) if args.smoke else RESULTS

    interceptor, middleware = transport_guards(make_policy(1))
    plain = TransportOptions()
    guarded_http = TransportOptions(wsgi_middleware=(middleware,))
    guarded_grpc = TransportOptions(grpc_interceptors=(interceptor,))
    load_before = machine_load.sample()

    wsgi = {"none": wsgi_caller(plain), "auth": wsgi_caller(guarded_http)}
    pairs = {"none": GrpcPair(plain, None), "auth": GrpcPair(guarded_grpc, TOKEN)}
    policies = {n: make_policy(n) for n in (1, 100, 1000)}
    samples: dict[str, list[float]] = {}
    try:
        for pair in pairs.values():  # warm-up: channels connected, handlers cached
            for _ in range(50):
                pair.call()
        for repeat in range(repeats):
            for name in rotate(list(wsgi), repeat):
                samples.setdefault(f"wsgi/{name}", []).append(time_cpu(wsgi[name], n_wsgi))
            for name in rotate(list(pairs), repeat):
                samples.setdefault(f"grpc/{name}", []).append(time_wall(pairs[name].call, n_grpc))
            for count, policy in policies.items():
                samples.setdefault(f"lookup/{count}", []).append(
                    time_cpu(token_lookup(policy), n_lookup)
                )
    finally:
        for pair in pairs.values():
            pair.close()
    load_after = machine_load.sample()
    median = {name: statistics.median(values) for name, values in samples.items()}

    def ratio(kind: str) -> float:
        return median[f"{kind}/none"] / median[f"{kind}/auth"]

    command = "python benchmarks/bench_authz.py" + (
        " --smoke" if args.smoke else f" --repeats {repeats}"
    )
    lines = [
        "# Authorization: the cost per request",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Python {platform.python_version()}, grpcio {grpc.__version__}  ",
        f"Machine load: {machine_load.describe(load_before, load_after)}.  ",
        f"Each cell: median of {repeats} repeats, contenders interleaved.",
        "",
        "| request | without authorization | with (bearer token, 1 in the policy) | ratio |",
        "|---|---:|---:|---:|",
        f"| HTTP GET, WSGI app called directly (CPU µs/request, {n_wsgi} per repeat) "
        f"| {median['wsgi/none'] / 1000:.1f} | {median['wsgi/auth'] / 1000:.1f} "
        f"| {ratio('wsgi'):.2f} |",
        f"| gRPC Get on loopback, one call at a time (µs/call, {n_grpc} per repeat) "
        f"| {median['grpc/none'] / 1000:.1f} | {median['grpc/auth'] / 1000:.1f} "
        f"| {ratio('grpc'):.2f} |",
        "",
        "| tokens in the policy | token lookup, CPU µs |",
        "|---:|---:|",
        *(f"| {n} | {median[f'lookup/{n}'] / 1000:.2f} |" for n in policies),
        "",
        "The lookup hashes the token (SHA-256) and finds the digest in a dict, so its cost "
        "does not depend on the number of tokens; a certificate's CN needs no lookup.",
    ]
    (out_dir / "authz.md").write_text("\n".join(lines) + "\n")
    (out_dir / "authz.json").write_text(
        json.dumps(
            {
                "command": command,
                "machine_load": {"before": load_before, "after": load_after},
                "repeats": repeats,
                "median_ns": median,
                "samples_ns": samples,
                "ratios": {"wsgi": ratio("wsgi"), "grpc": ratio("grpc")},
            },
            indent=2,
        )
        + "\n"
    )
    print("\n".join(lines))
    print(f"written to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
