"""In-process fakes of an lrukv node, for deterministic client tests.

``FakeNode`` is a dict-backed store served over gRPC (a real ``grpc.server``)
and over HTTP (``http.server`` in a thread), both on free loopback ports. Tests
script faults per method — a status with trailing metadata (NotLeader), an
UNAVAILABLE, a delay — and read back which calls arrived, so retries and
redirects can be asserted exactly. The HTTP side follows the wire contract of
the real server (tests/client/test_real_server.py checks the client against that).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import grpc

from lrukv_proto import (
    ERROR_CODE_METADATA,
    LEADER_HTTP_HEADER,
    LEADER_HTTP_METADATA,
    LEADER_RPC_HEADER,
    LEADER_RPC_METADATA,
)
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.client.certs import Pki

# Faults are scripted by gRPC method name; the HTTP routes use the same names.
METHODS = (
    "Put", "Get", "Delete", "GetKeys", "GetKeysValues", "GetServers", "Stats", "Ttl",
    "GetMany", "PutMany", "DeleteMany", "Batch", "Pipeline",
)  # fmt: skip
"""Over HTTP, POST /v1/util/batch is GetMany, PutMany or DeleteMany when all its
ops are of one kind, else Batch."""


class HasAddresses(Protocol):
    """A node a fault can name as the leader: a FakeNode, or a real ServerProcess."""

    @property
    def rpc_addr(self) -> str: ...

    @property
    def http_addr(self) -> str: ...


@dataclass
class Fault:
    """What the next call of a method does instead of (or before) its work.

    ``code`` None: no error, only ``delay``. ``leader``: answer "not the leader,
    the leader is this node" (FAILED_PRECONDITION + metadata / HTTP 307).
    ``after_items``: for streams, fail after sending this many items.
    """

    code: grpc.StatusCode | None = None
    details: str = "injected fault"
    leader: HasAddresses | None = None
    delay: float = 0.0
    after_items: int | None = None


class FakeNode:
    """One fake lrukv node with a gRPC and an HTTP endpoint. Start with ``start()``
    (or use as a context manager); stop with ``stop()``."""

    def __init__(self, node_id: str = "fake-1", *, tls: Pki | None = None) -> None:
        """``tls``: serve both endpoints over TLS with the server certificate,
        requiring a client certificate signed by the PKI's CA (mutual TLS)."""
        self.id = node_id
        self.tls = tls
        self.data: dict[str, bytes] = {}
        self.ttls: dict[str, float | None] = {}
        self.calls: list[str] = []
        self.consistency_seen: list[str] = []
        self.cluster: list[FakeNode] = [self]
        self.leader: FakeNode | None = self
        # tamper(key, value) -> the value a read returns: to prove checks catch corruption.
        self.tamper: Callable[[str, bytes], bytes] | None = None
        self.capacity = 1000  # what Stats reports (the fake itself never evicts)
        # Batch limits, as the real server's --max-batch-entries; and a value limit.
        self.max_batch_entries = 10_000
        self.max_value_bytes: int | None = None
        self.batch_sizes: list[int] = []  # entries of every batch request that arrived
        self.metadata_seen: list[dict[str, str]] = []  # gRPC metadata / HTTP headers per call
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._grpc: grpc.Server | None = None
        self._http: _HttpServer | None = None
        self.rpc_addr = ""
        self.http_addr = ""

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> FakeNode:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        kv_pb2_grpc.add_KVServicer_to_server(_BatchServicer(self), server)
        if self.tls is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            credentials = grpc.ssl_server_credentials(
                [(self.tls.server_key.read_bytes(), self.tls.server_cert.read_bytes())],
                root_certificates=self.tls.ca.read_bytes(),
                require_client_auth=True,
            )
            port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._grpc = server
        self.rpc_addr = f"127.0.0.1:{port}"
        http = _HttpServer(("127.0.0.1", 0), _handler_for(self))
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.tls.ca))
            context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
            context.verify_mode = ssl.CERT_REQUIRED
            http.socket = context.wrap_socket(http.socket, server_side=True)
        threading.Thread(
            target=http.serve_forever, args=(0.05,), name=f"{self.id}-http", daemon=True
        ).start()
        self._http = http
        self.http_addr = f"127.0.0.1:{http.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop both endpoints and cut open connections, as a killed server would."""
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.cut_connections()
            self._http = None

    def __enter__(self) -> FakeNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ----------------------------------------------------------------

    def fail(self, method: str, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` (a gRPC method name) do ``fault``."""
        assert method in METHODS, method
        with self._lock:
            self._faults[method].extend([fault] * times)

    def take_fault(self, method: str, *, stale: bool = False) -> Fault | None:
        """The scripted fault of this call, if any. Otherwise a follower behaves like
        a real one: it sends writes and non-stale reads to its leader."""
        with self._lock:
            self.calls.append(method)
            queue = self._faults.get(method)
            fault = queue.popleft() if queue else None
            follows = self.leader is not None and self.leader is not self
        if fault is None and follows and method != "GetServers" and not stale:
            return Fault(leader=self.leader)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        return fault

    def count(self, method: str) -> int:
        with self._lock:
            return self.calls.count(method)

    # -- the store ----------------------------------------------------------------

    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            self.data[key] = value
            self.ttls[key] = ttl

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self.data.get(key)
        if value is not None and self.tamper is not None:
            return self.tamper(key, value)
        return value

    def delete(self, key: str) -> bool:
        with self._lock:
            self.ttls.pop(key, None)
            return self.data.pop(key, None) is not None

    def key_problem(self, key: str, value: bytes | None = None) -> tuple[str, str] | None:
        """(code, message) if the real server would refuse this key or value."""
        if not key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
            return "invalid_key", f"invalid key {key!r}"
        limit = self.max_value_bytes
        if value is not None and limit is not None and len(value) > limit:
            return "value_too_large", f"value is {len(value)} bytes"
        return None

    def batch(
        self, ops: list[tuple[str, str, bytes | None, float | None]], atomic: bool
    ) -> list[dict[str, Any]] | tuple[str, str]:
        """Apply ``(op, key, value, ttl)`` in order, as the real server: per-op
        results, or (code, message) of the whole request (too large; atomic refusal)."""
        self.batch_sizes.append(len(ops))
        if len(ops) > self.max_batch_entries:
            return "batch_too_large", f"the batch has {len(ops)} entries"
        problems = [self.key_problem(key, value) for _, key, value, _ in ops]
        if atomic:
            for problem in problems:
                if problem is not None:
                    return problem
        results: list[dict[str, Any]] = []
        for (op, key, value, ttl), problem in zip(ops, problems, strict=True):
            result: dict[str, Any] = {"op": op, "key": key}
            if problem is not None:
                result["error"] = {"code": problem[0], "message": problem[1]}
            elif op == "get":
                found = self.get(key)
                result["found"] = found is not None
                result["value"] = found
            elif op == "put":
                self.put(key, value or b"", ttl)
            else:
                result["existed"] = self.delete(key)
            results.append(result)
        return results

    def snapshot(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return sorted(self.data.items())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            size = len(self.data)
            nbytes = sum(len(k.encode()) + len(v) for k, v in self.data.items())
        return {
            "size": size, "capacity": self.capacity, "shards": 1,
            "items_per_shard": self.capacity, "bytes": nbytes, "max_bytes": None,
            "max_key_bytes": 1024, "max_value_bytes": None, "hits": 0, "misses": 0,
            "evictions": {"capacity": 0, "bytes": 0, "expired": 0},
        }  # fmt: skip

    def ttl(self, key: str) -> tuple[bool, float | None]:
        """(exists, ttl as given to put)."""
        with self._lock:
            return key in self.data, self.ttls.get(key)

    def servers(self) -> list[dict[str, Any]]:
        return [
            {
                "id": node.id,
                "rpc_addr": node.rpc_addr,
                "http_addr": node.http_addr,
                "is_leader": node is self.leader,
            }
            for node in self.cluster
        ]


class _HttpServer(ThreadingHTTPServer):
    """Tracks its connections so ``stop()`` can cut keep-alive ones too."""

    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, closed stream) breaks the pipe: expected here.
        pass

    def cut_connections(self) -> None:
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


_CONSISTENCY_NAMES = {
    kv_pb2.CONSISTENCY_DEFAULT: "default",
    kv_pb2.CONSISTENCY_STALE: "stale",
    kv_pb2.CONSISTENCY_LINEARIZABLE: "linearizable",
}


class _Servicer(kv_pb2_grpc.KVServicer):
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def _fault(
        self, method: str, context: grpc.ServicerContext, consistency: int = 0
    ) -> Fault | None:
        self.node.metadata_seen.append(
            {str(k): str(v) for k, v in (context.invocation_metadata() or ())}
        )
        fault = self.node.take_fault(method, stale=consistency == kv_pb2.CONSISTENCY_STALE)
        if fault is None:
            return None
        if fault.leader is not None:
            context.set_trailing_metadata(
                (
                    (LEADER_RPC_METADATA, fault.leader.rpc_addr),
                    (LEADER_HTTP_METADATA, fault.leader.http_addr),
                )
            )
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")
        if fault.code is not None and fault.after_items is None:
            context.abort(fault.code, fault.details)
        return fault

    def Put(self, request: kv_pb2.PutRequest, context: grpc.ServicerContext) -> kv_pb2.PutResponse:
        self._fault("Put", context)
        ttl = request.ttl_seconds if request.HasField("ttl_seconds") else None
        self.node.put(request.key, request.value, ttl)
        return kv_pb2.PutResponse()

    def Get(self, request: kv_pb2.GetRequest, context: grpc.ServicerContext) -> kv_pb2.GetResponse:
        self._fault("Get", context, request.consistency)
        self.node.consistency_seen.append(_CONSISTENCY_NAMES[request.consistency])
        value = self.node.get(request.key)
        if value is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"key not found: {request.key!r}")
        return kv_pb2.GetResponse(value=value)

    def Delete(
        self, request: kv_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> kv_pb2.DeleteResponse:
        self._fault("Delete", context)
        return kv_pb2.DeleteResponse(existed=self.node.delete(request.key))

    def GetKeys(
        self, request: kv_pb2.GetKeysRequest, context: grpc.ServicerContext
    ) -> kv_pb2.GetKeysResponse:
        self._fault("GetKeys", context, request.consistency)
        self.node.consistency_seen.append(_CONSISTENCY_NAMES[request.consistency])
        return kv_pb2.GetKeysResponse(keys=[key for key, _ in self.node.snapshot()])

    def GetKeysValues(
        self, request: kv_pb2.GetKeysValuesRequest, context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.KeyValue]:
        fault = self._fault("GetKeysValues", context, request.consistency)
        for sent, (key, value) in enumerate(self.node.snapshot()):
            if fault is not None and fault.code is not None and sent == fault.after_items:
                context.abort(fault.code, fault.details)
            yield kv_pb2.KeyValue(key=key, value=value)

    def GetServers(
        self, request: kv_pb2.GetServersRequest, context: grpc.ServicerContext
    ) -> kv_pb2.GetServersResponse:
        self._fault("GetServers", context)
        return kv_pb2.GetServersResponse(
            servers=[kv_pb2.Server(**server) for server in self.node.servers()]
        )

    def Stats(
        self, request: kv_pb2.StatsRequest, context: grpc.ServicerContext
    ) -> kv_pb2.StatsResponse:
        self._fault("Stats", context)
        stats = self.node.stats()
        for unset in ("max_bytes", "max_value_bytes"):
            del stats[unset]
        return kv_pb2.StatsResponse(**stats)

    def AddMember(
        self, request: kv_pb2.AddMemberRequest, context: grpc.ServicerContext
    ) -> kv_pb2.AddMemberResponse:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a fake node is not in a cluster")

    def RemoveMember(
        self, request: kv_pb2.RemoveMemberRequest, context: grpc.ServicerContext
    ) -> kv_pb2.RemoveMemberResponse:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a fake node is not in a cluster")

    def Ttl(self, request: kv_pb2.TtlRequest, context: grpc.ServicerContext) -> kv_pb2.TtlResponse:
        self._fault("Ttl", context, request.consistency)
        exists, ttl = self.node.ttl(request.key)
        if not exists:
            context.abort(grpc.StatusCode.NOT_FOUND, f"key not found: {request.key!r}")
        return kv_pb2.TtlResponse(ttl_seconds=ttl)


_CODE_STATUS = {
    "invalid_key": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "value_too_large": (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    "batch_too_large": (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    "key_not_found": (grpc.StatusCode.NOT_FOUND, 404),
}


def _pb_error(error: dict[str, str]) -> kv_pb2.Error:
    grpc_code = _CODE_STATUS[error["code"]][0].value[0]
    return kv_pb2.Error(code=error["code"], message=error["message"], grpc_code=grpc_code)


BatchOp = tuple[str, str, bytes | None, float | None]  # (op, key, value, ttl)


class _BatchServicer(_Servicer):
    """The batch RPCs of the fake (split out: the single calls above stay as they were)."""

    def _batch(
        self,
        method: str,
        ops: list[tuple[str, str, bytes | None, float | None]],
        atomic: bool,
        context: grpc.ServicerContext,
    ) -> list[dict[str, Any]]:
        self._fault(method, context)
        outcome = self.node.batch(ops, atomic)
        if isinstance(outcome, tuple):
            code, message = outcome
            context.set_trailing_metadata(((ERROR_CODE_METADATA, code),))
            context.abort(_CODE_STATUS[code][0], message)
        return outcome

    def GetMany(
        self, request: kv_pb2.GetManyRequest, context: grpc.ServicerContext
    ) -> kv_pb2.GetManyResponse:
        ops: list[BatchOp] = [("get", key, None, None) for key in request.keys]
        results = self._batch("GetMany", ops, False, context)
        return kv_pb2.GetManyResponse(
            results=[
                kv_pb2.GetManyResult(key=r["key"], error=_pb_error(r["error"]))
                if "error" in r
                else kv_pb2.GetManyResult(key=r["key"], found=r["found"], value=r["value"] or b"")
                for r in results
            ]
        )

    def PutMany(
        self, request: kv_pb2.PutManyRequest, context: grpc.ServicerContext
    ) -> kv_pb2.PutManyResponse:
        ops: list[tuple[str, str, bytes | None, float | None]] = [
            ("put", e.key, e.value, e.ttl_seconds if e.HasField("ttl_seconds") else None)
            for e in request.entries
        ]
        results = self._batch("PutMany", ops, request.atomic, context)
        return kv_pb2.PutManyResponse(
            results=[
                kv_pb2.PutManyResult(key=r["key"], error=_pb_error(r["error"]))
                if "error" in r
                else kv_pb2.PutManyResult(key=r["key"])
                for r in results
            ]
        )

    def DeleteMany(
        self, request: kv_pb2.DeleteManyRequest, context: grpc.ServicerContext
    ) -> kv_pb2.DeleteManyResponse:
        ops: list[BatchOp] = [("delete", key, None, None) for key in request.keys]
        results = self._batch("DeleteMany", ops, request.atomic, context)
        return kv_pb2.DeleteManyResponse(
            results=[
                kv_pb2.DeleteManyResult(key=r["key"], error=_pb_error(r["error"]))
                if "error" in r
                else kv_pb2.DeleteManyResult(key=r["key"], existed=r["existed"])
                for r in results
            ]
        )

    def Pipeline(
        self, request_iterator: Iterator[kv_pb2.PipelineRequest], context: grpc.ServicerContext
    ) -> Iterator[kv_pb2.PipelineResponse]:
        fault = self._fault("Pipeline", context)
        for answered, request in enumerate(request_iterator):
            if fault is not None and fault.code is not None and answered == fault.after_items:
                context.abort(fault.code, fault.details)
            yield self._pipeline_answer(request)

    def _pipeline_answer(self, request: kv_pb2.PipelineRequest) -> kv_pb2.PipelineResponse:
        kind = request.WhichOneof("request")
        op: BatchOp
        if kind == "put":
            op = ("put", request.put.key, request.put.value, None)
        elif kind == "get":
            op = ("get", request.get.key, None, None)
        else:
            op = ("delete", request.delete.key, None, None)
        outcome = self.node.batch([op], False)
        assert isinstance(outcome, list)
        result = outcome[0]
        if "error" in result:
            return kv_pb2.PipelineResponse(id=request.id, error=_pb_error(result["error"]))
        if kind == "get":
            if not result["found"]:
                missing = {"code": "key_not_found", "message": "key not found"}
                return kv_pb2.PipelineResponse(id=request.id, error=_pb_error(missing))
            return kv_pb2.PipelineResponse(
                id=request.id, get=kv_pb2.GetResponse(value=result["value"])
            )
        if kind == "delete":
            return kv_pb2.PipelineResponse(
                id=request.id, delete=kv_pb2.DeleteResponse(existed=result["existed"])
            )
        return kv_pb2.PipelineResponse(id=request.id, put=kv_pb2.PutResponse())


# gRPC code -> HTTP status of the real server's error table.
_HTTP_STATUS = {
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.FAILED_PRECONDITION: 503,  # "no leader known"
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.INTERNAL: 500,
}


def _handler_for(node: FakeNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # -- plumbing ---------------------------------------------------------

        def _send(
            self,
            status: int,
            body: bytes = b"",
            content_type: str = "application/octet-stream",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 204:
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            self._send(status, body, "application/json")

        def _fault(self, method: str) -> Fault | None:
            _, query = self._route()
            stale = query.get("consistency", [""])[0] == "stale"
            node.metadata_seen.append({k.lower(): v for k, v in self.headers.items()})
            fault = node.take_fault(method, stale=stale)
            if fault is None:
                return None
            if fault.leader is not None:
                target = f"http://{fault.leader.http_addr}{self.path}"
                self._send(
                    307,
                    b"",
                    headers={
                        "Location": target,
                        LEADER_HTTP_HEADER: fault.leader.http_addr,
                        LEADER_RPC_HEADER: fault.leader.rpc_addr,
                    },
                )
                return fault
            if fault.code is not None and fault.after_items is None:
                self._error(
                    _HTTP_STATUS.get(fault.code, 500), fault.code.name.lower(), fault.details
                )
            return fault

        def _answered(self, fault: Fault | None) -> bool:
            return fault is not None and (
                fault.leader is not None or (fault.code is not None and fault.after_items is None)
            )

        def _route(self) -> tuple[str, dict[str, list[str]]]:
            """The raw (still percent-encoded) path, as the real server routes on it."""
            parts = urlsplit(self.path)
            return parts.path, parse_qs(parts.query)

        @staticmethod
        def _key(path: str) -> str:
            return unquote(path.removeprefix("/v1/"))

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length)

        # -- routes -------------------------------------------------------------

        def do_PUT(self) -> None:
            path, query = self._route()
            body = self._body()
            if self._answered(self._fault("Put")):
                return
            ttl = float(query["ttl"][0]) if "ttl" in query else None
            node.put(self._key(path), body, ttl)
            self._send(201, b"")

        def do_DELETE(self) -> None:
            path, _ = self._route()
            if self._answered(self._fault("Delete")):
                return
            existed = node.delete(self._key(path))
            self._send(204, headers={"X-Lrukv-Existed": "true" if existed else "false"})

        def do_GET(self) -> None:
            path, query = self._route()
            if path == "/v1/util/keys":
                self._keys(query)
            elif path == "/v1/util/items":
                self._items()
            elif path == "/v1/util/stats":
                if not self._answered(self._fault("Stats")):
                    self._send(200, json.dumps(node.stats()).encode(), "application/json")
            elif path.startswith("/v1/util/ttl/"):
                if self._answered(self._fault("Ttl")):
                    return
                key = unquote(path.removeprefix("/v1/util/ttl/"))
                exists, ttl = node.ttl(key)
                if not exists:
                    self._error(404, "key_not_found", "key not found")
                else:
                    body = json.dumps({"key": key, "ttl": ttl}).encode()
                    self._send(200, body, "application/json")
            elif path == "/v1/util/servers":
                if not self._answered(self._fault("GetServers")):
                    body = json.dumps({"servers": node.servers()}).encode()
                    self._send(200, body, "application/json")
            else:
                if self._answered(self._fault("Get")):
                    return
                node.consistency_seen.append(query.get("consistency", ["default"])[0])
                value = node.get(self._key(path))
                if value is None:
                    self._error(404, "key_not_found", "key not found")
                else:
                    self._send(200, value)

        def do_POST(self) -> None:
            path, _ = self._route()
            body = self._body()
            if path != "/v1/util/batch":
                self._error(404, "not_found", "no such route")
                return
            document = json.loads(body)
            ops = [
                (
                    op["op"],
                    op["key"],
                    base64.b64decode(op["value"]) if op["op"] == "put" else None,
                    op.get("ttl"),
                )
                for op in document["ops"]
            ]
            kinds = {op[0] for op in ops}
            method = {"get": "GetMany", "put": "PutMany", "delete": "DeleteMany"}.get(
                kinds.pop() if len(kinds) == 1 else "", "Batch"
            )
            if self._answered(self._fault(method)):
                return
            outcome = node.batch(ops, bool(document.get("atomic")))
            if isinstance(outcome, tuple):
                code, message = outcome
                self._error(_CODE_STATUS[code][1], code, message)
                return
            for result in outcome:
                if result.get("value") is not None:
                    result["value"] = base64.b64encode(result["value"]).decode()
                elif "value" in result:
                    del result["value"]
            self._send(200, json.dumps({"results": outcome}).encode(), "application/json")

        def _keys(self, query: dict[str, list[str]]) -> None:
            if self._answered(self._fault("GetKeys")):
                return
            node.consistency_seen.append(query.get("consistency", ["default"])[0])
            keys = [key for key, _ in node.snapshot()]
            if "text/plain" in (self.headers.get("Accept") or ""):
                self._send(200, ",".join(keys).encode(), "text/plain")
            else:
                self._send(200, json.dumps({"keys": keys}).encode(), "application/json")

        def _items(self) -> None:
            fault = self._fault("GetKeysValues")
            if self._answered(fault):
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for sent, (key, value) in enumerate(node.snapshot()):
                if fault is not None and fault.code is not None and sent == fault.after_items:
                    # Cut the connection mid-stream, as a dying server would.
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                line = json.dumps({"key": key, "value": base64.b64encode(value).decode()})
                self._chunk(line.encode() + b"\n")
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    return Handler


__all__ = ["METHODS", "FakeNode", "Fault"]
