"""The HTTP wire of the request layer: each call as a method, path, query and
body, and each answer (status, headers, body) back into the client's models or
exceptions. No I/O (``HttpClient`` sends what this builds); see
``lrukv_client._requests``.

Keys travel in the URL path, fully percent-encoded (``/`` as ``%2F``, a key of
only dots as ``%2E``), so every key the server accepts is reachable, including
``util/keys``: the server reads the raw path and only a literal ``/v1/util/``
names its utility routes.
"""

from __future__ import annotations

import base64
import binascii
import http
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from lrukv_client._requests import HTTP_STATUS, Call, Plan, PutEntry, error_for, single
from lrukv_client.errors import (
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    ServerError,
    Unavailable,
)
from lrukv_client.models import (
    BatchResult,
    ClusterMember,
    ClusterStatus,
    Consistency,
    ServerInfo,
    StoreStats,
    check_key,
    check_ttl,
    to_bytes,
)
from lrukv_proto import LEADER_HTTP_HEADER, LEADER_RPC_HEADER

__all__ = [
    "BATCH_PATH",
    "HttpAnswer",
    "HttpRequest",
    "HttpWire",
    "batch_op",
    "batch_results",
    "decode_item",
    "status_error",
]

BATCH_PATH = "/v1/util/batch"
_REDIRECTS = (301, 302, 303, 307, 308)
_EXISTED_HEADER = "X-Lrukv-Existed"
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What one HTTP attempt sends (``HttpClient`` adds the node and the per-call
    headers of ``ClientCore.call_metadata``)."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpAnswer(Protocol):
    """The parts of an answer the wire reads (``httpx.Response`` has them)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...  # a case-insensitive mapping with .get()

    @property
    def content(self) -> bytes: ...


def _ignore(answer: HttpAnswer, target: str) -> None:
    return None


def _level(level: Consistency) -> dict[str, str]:
    return {} if level is Consistency.DEFAULT else {"consistency": level.value}


class HttpWire:
    """Builds every call of the HTTP API (``Call.method`` names the gRPC twin,
    so faults and logs use one name per operation)."""

    def put(self, key: str, value: bytes | str, ttl: float | None) -> Plan[None]:
        body = to_bytes(value)
        ttl = check_ttl(ttl)
        # The server takes a plain decimal only: repr() would send 1e-05 or 1e+20.
        params = {} if ttl is None else {"ttl": _decimal(ttl)}
        request = HttpRequest("PUT", key_path(key), params, body)
        return single(Call("Put", request, _ignore, key=key, write=True))

    def get(self, key: str, level: Consistency) -> Plan[bytes]:
        request = HttpRequest("GET", key_path(key), _level(level))
        return single(Call("Get", request, lambda r, t: r.content, key=key))

    def delete(self, key: str) -> Plan[bool]:
        """Whether the key existed (the server's ``X-Lrukv-Existed`` header)."""
        request = HttpRequest("DELETE", key_path(key))
        try:
            existed: bool = yield Call("Delete", request, _existed, key=key, write=True)
        except KeyNotFound:  # a server that answers 404 for an absent key means the same
            return False
        return existed

    def keys(self, level: Consistency) -> Plan[list[str]]:
        request = HttpRequest(
            "GET", "/v1/util/keys", _level(level), headers={"Accept": "application/json"}
        )
        return single(Call("GetKeys", request, _keys))

    def servers(self) -> Plan[list[ServerInfo]]:
        return single(Call("GetServers", HttpRequest("GET", "/v1/util/servers"), _servers))

    def cluster_status(self, digest: bool) -> Plan[ClusterStatus]:
        path = "/v1/util/cluster?digest=1" if digest else "/v1/util/cluster"
        return single(Call("GetServers", HttpRequest("GET", path), _cluster_status))

    def add_member(self, raft_addr: str) -> Plan[None]:
        """Membership changes are gRPC calls (``Client.add_member``)."""
        raise InvalidArgument("changing cluster membership needs gRPC: use --transport grpc")
        yield  # a generator, like every plan  # pragma: no cover

    def remove_member(self, raft_addr: str) -> Plan[None]:
        return self.add_member(raft_addr)

    def stats(self) -> Plan[StoreStats]:
        return single(Call("Stats", HttpRequest("GET", "/v1/util/stats"), _stats))

    def ttl(self, key: str, level: Consistency) -> Plan[float | None]:
        path = "/v1/util/ttl/" + key_path(key)[len("/v1/") :]
        return single(Call("Ttl", HttpRequest("GET", path, _level(level)), _ttl, key=key))

    # -- batches: POST /v1/util/batch, one Call per chunk -------------------------------

    def batch(
        self,
        ops: Sequence[dict[str, Any]],
        *,
        atomic: bool = False,
        level: Consistency = Consistency.DEFAULT,
        method: str = "Batch",
    ) -> Call[list[BatchResult]]:
        """One batch request of ``ops`` (see :func:`batch_op`); a write if any op writes."""
        body = json.dumps({"ops": list(ops), "atomic": atomic}, ensure_ascii=False).encode()
        request = HttpRequest("POST", BATCH_PATH, _level(level), body, _JSON)
        write = any(op["op"] != "get" for op in ops)
        return Call(method, request, batch_results, write=write)

    def get_many(self, keys: Sequence[str], level: Consistency) -> Call[list[BatchResult]]:
        return self.batch([batch_op("get", k) for k in keys], level=level, method="GetMany")

    def put_many(self, entries: Sequence[PutEntry], atomic: bool) -> Call[list[BatchResult]]:
        ops = [batch_op("put", e.key, e.value, e.ttl) for e in entries]
        return self.batch(ops, atomic=atomic, method="PutMany")

    def delete_many(self, keys: Sequence[str], atomic: bool) -> Call[list[BatchResult]]:
        ops = [batch_op("delete", k) for k in keys]
        return self.batch(ops, atomic=atomic, method="DeleteMany")


def batch_op(
    op: str, key: str, value: bytes | None = None, ttl: float | None = None
) -> dict[str, Any]:
    """One entry of ``{"ops": [...]}``: the value in base64, the TTL if any."""
    entry: dict[str, Any] = {"op": op, "key": key}
    if op == "put":
        entry["value"] = base64.b64encode(value or b"").decode("ascii")
        if ttl is not None:
            entry["ttl"] = ttl
    return entry


def batch_results(answer: HttpAnswer, target: str) -> list[BatchResult]:
    """``{"results": [...]}`` of a batch, one BatchResult per op, in order."""
    body = json_of(answer, target)
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise ServerError(f"{target}: a batch answer without results")
    try:
        return [_batch_result(item, target) for item in results]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ServerError(f"{target}: malformed batch result: {exc!r}") from exc


def _batch_result(item: dict[str, Any], target: str) -> BatchResult:
    op, key = str(item["op"]), str(item["key"])
    error = item.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        exc = error_for(
            str(code) if code is not None else None,
            None,
            message=f"{target}: {error.get('message') or code}",
            status=400,
            key=key,
        )
        return BatchResult(op, key, error=exc)
    found = bool(item.get("found", False))
    value = base64.b64decode(item["value"], validate=True) if found else None
    return BatchResult(op, key, found=found, value=value, existed=bool(item.get("existed")))


# -- answers into models ----------------------------------------------------------------


def _existed(answer: HttpAnswer, target: str) -> bool:
    existed: str = answer.headers.get(_EXISTED_HEADER, "true")
    return existed.lower() != "false"


def _keys(answer: HttpAnswer, target: str) -> list[str]:
    keys = json_of(answer, target)
    if isinstance(keys, dict):
        keys = keys.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ServerError(f"{target}: /v1/util/keys did not return a list of strings")
    return keys


def _servers(answer: HttpAnswer, target: str) -> list[ServerInfo]:
    body = json_of(answer, target)
    if isinstance(body, dict):
        body = body.get("servers")
    if not isinstance(body, list):
        raise ServerError(f"{target}: /v1/util/servers did not return a list")
    try:
        return [
            ServerInfo(
                id=str(node["id"]),
                rpc_addr=str(node["rpc_addr"]),
                http_addr=str(node["http_addr"]),
                is_leader=bool(node["is_leader"]),
            )
            for node in body
        ]
    except (KeyError, TypeError) as exc:
        raise ServerError(f"{target}: malformed server list: {exc!r}") from exc


def _cluster_status(answer: HttpAnswer, target: str) -> ClusterStatus:
    body = json_of(answer, target)
    try:
        leader = body["leader"]
        return ClusterStatus(
            node_id=str(body["node_id"]),
            role=str(body["role"]),
            term=int(body["term"]),
            commit_index=int(body["commit_index"]),
            applied_index=int(body["applied_index"]),
            leader=None if leader is None else ClusterMember(**leader),
            members=tuple(ClusterMember(**m) for m in body["members"]),
            digest=body.get("digest"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ServerError(f"{target}: malformed cluster status: {exc!r}") from exc


def _stats(answer: HttpAnswer, target: str) -> StoreStats:
    body = json_of(answer, target)
    try:
        evictions = {str(k): int(v) for k, v in body["evictions"].items()}
        return StoreStats(
            size=int(body["size"]),
            capacity=int(body["capacity"]),
            shards=int(body["shards"]),
            items_per_shard=int(body["items_per_shard"]),
            bytes=int(body["bytes"]),
            max_bytes=_optional_int(body["max_bytes"]),
            max_key_bytes=int(body["max_key_bytes"]),
            max_value_bytes=_optional_int(body["max_value_bytes"]),
            hits=int(body["hits"]),
            misses=int(body["misses"]),
            evictions=evictions,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ServerError(f"{target}: malformed stats: {exc!r}") from exc


def _ttl(answer: HttpAnswer, target: str) -> float | None:
    body = json_of(answer, target)
    ttl = body.get("ttl") if isinstance(body, dict) else None
    if isinstance(ttl, bool) or not (ttl is None or isinstance(ttl, int | float)):
        raise ServerError(f"{target}: malformed ttl answer")
    return None if ttl is None else float(ttl)


def decode_item(line: str, target: str) -> tuple[str, bytes]:
    """One line of the item stream: ``{"key": ..., "value": <base64>}``; a line
    ``{"error": {...}}`` is the server reporting a failure mid-stream."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise ServerError(f"{target}: malformed item line: {line[:80]!r}") from exc
    if isinstance(item, dict) and isinstance(item.get("error"), dict):
        error = item["error"]
        raise Unavailable(f"{target}: stream failed: {error.get('message', error)}")
    try:
        key = item["key"]
        value = base64.b64decode(item["value"], validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ServerError(f"{target}: malformed item line: {line[:80]!r}") from exc
    if not isinstance(key, str):
        raise ServerError(f"{target}: malformed item line: {line[:80]!r}")
    return key, value


def key_path(key: str) -> str:
    """The path naming ``key``.

    >>> key_path("a/b c")
    '/v1/a%2Fb%20c'
    >>> key_path("..")
    '/v1/%2E%2E'
    """
    # safe="": a "/" in a key is sent as %2F, so the key is one path segment. A
    # segment of only dots would be rewritten by clients and proxies: encode it.
    encoded = quote(check_key(key), safe="")
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return "/v1/" + encoded


def _decimal(ttl: float) -> str:
    return format(Decimal(repr(ttl)), "f")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def json_of(answer: HttpAnswer, target: str) -> Any:
    try:
        return json.loads(answer.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError(f"{target}: malformed JSON answer") from exc


# -- errors: a non-2xx answer -----------------------------------------------------------


def _text(answer: HttpAnswer) -> str:
    return answer.content.decode("utf-8", errors="replace")


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _error_body(answer: HttpAnswer) -> tuple[str | None, str]:
    """The server's ``{"error": {"code": ..., "message": ...}}``, tolerantly."""
    text = _text(answer).strip()
    reason = _reason(answer.status_code)
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code is not None else None), str(message or reason)
    return None, (text[:200] if text else reason or f"HTTP {answer.status_code}")


def _leader_from(answer: HttpAnswer) -> tuple[str | None, str | None]:
    leader_http = answer.headers.get(LEADER_HTTP_HEADER) or None
    leader_rpc = answer.headers.get(LEADER_RPC_HEADER) or None
    location = answer.headers.get("Location")
    if leader_http is None and location:
        leader_http = urlsplit(location).netloc or None
    return leader_rpc, leader_http


def status_error(answer: HttpAnswer, target: str, key: str | None) -> LrukvClientError:
    """Translate a non-2xx answer into the client's exception: a redirect (or an
    overloaded node naming a leader) is ``NotLeader``; anything else goes
    through the error table by its ``error.code``, else by its status."""
    status = answer.status_code
    code, message = _error_body(answer)
    text = f"{target}: {message}"
    leader_rpc, leader_http = _leader_from(answer)
    error: LrukvClientError
    if status in _REDIRECTS:
        error = NotLeader(
            f"{target}: not the leader; leader is {leader_http}",
            leader_rpc=leader_rpc,
            leader_http=leader_http,
        )
    elif status in (429, 502, 503) and (leader_rpc or leader_http):
        error = NotLeader(text, leader_rpc=leader_rpc, leader_http=leader_http)
    else:
        return error_for(
            code,
            HTTP_STATUS.get(status),
            message=text,
            status=status,
            key=key,
            leader_rpc=leader_rpc,
            leader_http=leader_http,
        )
    error.error_code = code
    return error
