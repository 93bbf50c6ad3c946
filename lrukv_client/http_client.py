"""``HttpClient``: the same API as ``Client``, over lrukv's HTTP API (httpx).

One ``httpx.Client`` (one connection pool) serves every call and thread. The
client follows the server's ``307`` leader redirects itself, not through httpx,
so that a redirect counts against the same ``max_redirects`` bound as over gRPC
and the client remembers the leader for the next calls.

Keys travel in the URL path, fully percent-encoded (``/`` as ``%2F``, a key of
only dots as ``%2E``), so every key the server accepts is reachable, including
``util/keys``: the server reads the raw path and only a literal ``/v1/util/``
names its utility routes.

>>> with HttpClient("127.0.0.1:8080") as kv:  # doctest: +SKIP
...     kv.put("key-a", "Hello, key-value store!")
...     kv.get("key-a")
b'Hello, key-value store!'
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from lrukv_client._auth import bearer, check_token
from lrukv_client._targets import Targets, normalize_address, parse_servers
from lrukv_client._tracing import with_trace_headers
from lrukv_client.errors import (
    DeadlineExceeded,
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    PermissionDenied,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unreachable,
    ValueTooLarge,
)
from lrukv_client.models import (
    ClusterMember,
    ClusterStatus,
    Consistency,
    ServerInfo,
    StoreStats,
    TLSConfig,
    check_key,
    check_ttl,
    to_bytes,
)
from lrukv_client.retry import Retry
from lrukv_client.stream import ItemStream
from lrukv_proto import LEADER_HTTP_HEADER, LEADER_RPC_HEADER

__all__ = ["DEFAULT_HTTP_PORT", "DEFAULT_HTTP_SERVER", "HttpClient", "http_seeds"]

DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTP_SERVER = f"127.0.0.1:{DEFAULT_HTTP_PORT}"

_REDIRECTS = (301, 302, 303, 307, 308)
_EXISTED_HEADER = "X-Lrukv-Existed"


class HttpClient:
    """A blocking lrukv client over HTTP/1.1.

    ``servers``: ``"host:port"`` or ``"http(s)://host:port"``, a comma-separated
    list or a sequence of seeds. Other arguments as for
    :class:`~lrukv_client.Client`; ``tls`` (or an ``https://`` address) turns on
    HTTPS. ``max_connections`` bounds the connection pool. ``token``: a bearer
    token, sent as ``Authorization: Bearer <token>`` on every request.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_HTTP_SERVER,
        *,
        timeout: float | None = None,
        retry: Retry | None = None,
        tls: TLSConfig | None = None,
        consistency: Consistency | str = Consistency.DEFAULT,
        max_connections: int = 16,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> None:
        token = check_token(token)
        auth = {"Authorization": bearer(token)} if token is not None else {}
        schemes, hosts = http_seeds(servers)
        self._scheme = "https" if tls is not None or "https" in schemes else "http"
        self._targets = Targets(hosts)
        self._timeout = timeout
        self._retry = retry if retry is not None else Retry()
        self._consistency = Consistency.parse(consistency)
        self._extensions: dict[str, Any] = {}
        if tls is not None and tls.server_name:
            self._extensions["sni_hostname"] = tls.server_name
        self._http = httpx.Client(
            verify=_ssl_context(tls) if self._scheme == "https" else True,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": "lrukv-client", **auth, **(headers or {})},
        )

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._http.close()

    @property
    def server(self) -> str:
        """The ``host:port`` the next call goes to."""
        return self._targets.current

    def __repr__(self) -> str:
        return f"HttpClient(server={self._scheme}://{self.server}, seeds={self._targets.seeds!r})"

    # -- the API ------------------------------------------------------------------

    def put(
        self,
        key: str,
        value: bytes | str,
        *,
        ttl: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Store ``value`` under ``key``; see :meth:`lrukv_client.Client.put`."""
        body = to_bytes(value)
        ttl = check_ttl(ttl)
        # The server takes a plain decimal only: repr() would send 1e-05 or 1e+20.
        params = {} if ttl is None else {"ttl": format(Decimal(repr(ttl)), "f")}
        self._call(
            "PUT",
            _key_path(key),
            key=key,
            params=params,
            content=body,
            write=True,
            timeout=timeout,
        )

    def get(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Return the value of ``key``; raise ``KeyNotFound`` if it is absent."""
        response = self._call(
            "GET", _key_path(key), key=key, params=self._level(consistency), timeout=timeout
        )
        return response.content

    def delete(self, key: str, *, timeout: float | None = None) -> bool:
        """Remove ``key``; return whether it existed (the server's
        ``X-Lrukv-Existed`` header). An absent key is no error."""
        try:
            response = self._call("DELETE", _key_path(key), key=key, write=True, timeout=timeout)
        except KeyNotFound:  # a server that answers 404 for an absent key means the same
            return False
        existed: str = response.headers.get(_EXISTED_HEADER, "true")
        return existed.lower() != "false"

    def keys(
        self, *, consistency: Consistency | str | None = None, timeout: float | None = None
    ) -> list[str]:
        """Every live key."""
        response = self._call(
            "GET",
            "/v1/util/keys",
            params=self._level(consistency),
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
        keys = _json(response)
        if isinstance(keys, dict):
            keys = keys.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ServerError(f"{self.server}: /v1/util/keys did not return a list of strings")
        return keys

    def servers(self, *, timeout: float | None = None) -> list[ServerInfo]:
        """The nodes of the cluster, as the node asked knows them."""
        response = self._call("GET", "/v1/util/servers", timeout=timeout)
        body = _json(response)
        if isinstance(body, dict):
            body = body.get("servers")
        if not isinstance(body, list):
            raise ServerError(f"{self.server}: /v1/util/servers did not return a list")
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
            raise ServerError(f"{self.server}: malformed server list: {exc!r}") from exc

    def cluster_status(
        self, *, digest: bool = False, timeout: float | None = None
    ) -> ClusterStatus:
        """The node's view of the cluster (``GET /v1/util/cluster``)."""
        path = "/v1/util/cluster?digest=1" if digest else "/v1/util/cluster"
        body = _json(self._call("GET", path, timeout=timeout))
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
            raise ServerError(f"{self.server}: malformed cluster status: {exc!r}") from exc

    def add_member(self, raft_addr: str, *, timeout: float | None = None) -> None:
        """Membership changes are gRPC calls (``Client.add_member``)."""
        raise InvalidArgument("changing cluster membership needs gRPC: use --transport grpc")

    def remove_member(self, raft_addr: str, *, timeout: float | None = None) -> None:
        """Membership changes are gRPC calls (``Client.remove_member``)."""
        raise InvalidArgument("changing cluster membership needs gRPC: use --transport grpc")

    def stats(self, *, timeout: float | None = None) -> StoreStats:
        """The node's size, capacity, limits and counters (``GET /v1/util/stats``)."""
        response = self._call("GET", "/v1/util/stats", timeout=timeout)
        body = _json(response)
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
            raise ServerError(f"{self.server}: malformed stats: {exc!r}") from exc

    def ttl(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> float | None:
        """Seconds until ``key`` expires, or None (``GET /v1/util/ttl/<key>``); see
        :meth:`lrukv_client.Client.ttl`."""
        path = "/v1/util/ttl/" + _key_path(key)[len("/v1/") :]
        response = self._call(
            "GET", path, key=key, params=self._level(consistency), timeout=timeout
        )
        body = _json(response)
        ttl = body.get("ttl") if isinstance(body, dict) else None
        if isinstance(ttl, bool) or not (ttl is None or isinstance(ttl, int | float)):
            raise ServerError(f"{self.server}: malformed ttl answer")
        return None if ttl is None else float(ttl)

    def exists(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Whether ``key`` is present (not a use)."""
        try:
            self.ttl(key, consistency=consistency, timeout=timeout)
        except KeyNotFound:
            return False
        return True

    def items(
        self,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
        stream_timeout: float | None = None,
    ) -> ItemStream:
        """Stream every live ``(key, value)`` from NDJSON; see
        :meth:`lrukv_client.Client.items`.

        Over HTTP a stalled stream is also caught between items: each read from
        the socket may wait at most what was left of ``timeout`` when the stream
        opened. ``stream_timeout`` bounds the whole stream, checked per item.
        """
        params = self._level(consistency)

        def open_stream(attempt_timeout: float | None) -> tuple[httpx.Response, Iterator[str]]:
            response = self._send(
                "GET",
                "/v1/util/items",
                params=params,
                headers={"Accept": "application/x-ndjson"},
                attempt_timeout=attempt_timeout,
                stream=True,
            )
            try:
                lines = response.iter_lines()
                return response, _prepend(_first_line(lines, self.server), lines)
            except BaseException:
                response.close()
                raise

        response, lines = self._retry.call_with_retry(
            open_stream,
            timeout=timeout if timeout is not None else self._timeout,
            redirect=self._redirect,
            failover=self._failover,
            reached=self._targets.has_reached,
            seeds=len(self._targets.seeds),
        )
        ends_at = None if stream_timeout is None else time.monotonic() + stream_timeout
        return ItemStream(_ndjson_pairs(lines, self.server, ends_at), response.close)

    # -- internals ----------------------------------------------------------------

    def _level(self, consistency: Consistency | str | None) -> dict[str, str]:
        level = Consistency.parse(self._consistency if consistency is None else consistency)
        return {} if level is Consistency.DEFAULT else {"consistency": level.value}

    def _call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        def attempt(attempt_timeout: float | None) -> httpx.Response:
            return self._send(
                method,
                path,
                key=key,
                params=params,
                content=content,
                headers=headers,
                attempt_timeout=attempt_timeout,
            )

        return self._retry.call_with_retry(
            attempt,
            write=write,
            timeout=timeout if timeout is not None else self._timeout,
            redirect=self._redirect,
            failover=self._failover,
            reached=self._targets.has_reached,
            seeds=len(self._targets.seeds),
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        attempt_timeout: float | None,
        stream: bool = False,
    ) -> httpx.Response:
        """One attempt against the current node: a 2xx response, or an exception."""
        target = self._targets.current
        request = self._http.build_request(
            method,
            f"{self._scheme}://{target}{path}",
            params=params,
            content=content,
            headers=with_trace_headers(headers),
            timeout=httpx.Timeout(attempt_timeout),
            extensions=self._extensions,
        )
        try:
            response = self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            error = _transport_error(exc, target)
            self._targets.reached |= not isinstance(error, Unreachable)
            raise error from exc
        except RuntimeError as exc:  # httpx: "Cannot send a request, as the client has been closed"
            raise LrukvClientError(f"the client is closed ({exc})") from exc
        self._targets.reached = True  # a node answered (whatever it said)
        if response.is_success:
            return response
        try:
            if stream:
                response.read()
            raise _status_error(response, target, key)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, target) from exc
        finally:
            if stream:
                response.close()

    def _redirect(self, err: NotLeader) -> bool:
        if not err.leader_http:
            return False
        self._targets.follow(err.leader_http)
        return True

    def _failover(self, err: LrukvClientError) -> None:
        self._targets.fail_over()


def http_seeds(servers: str | Sequence[str]) -> tuple[set[str], list[str]]:
    """The schemes named and the checked ``host:port`` of each seed (port 8080
    when none is given, also after ``http://``: lrukv's port, not the web's).

    >>> http_seeds("http://localhost, 10.0.0.2:9000")
    ({'http'}, ['localhost:8080', '10.0.0.2:9000'])
    """
    schemes: set[str] = set()
    hosts: list[str] = []
    for seed in parse_servers(servers):
        scheme, host = _split_address(seed)
        if scheme is not None:
            schemes.add(scheme)
        try:
            hosts.append(normalize_address(host, DEFAULT_HTTP_PORT))
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message.replace(repr(host), repr(seed), 1)) from None
    return schemes, hosts


def _split_address(address: str) -> tuple[str | None, str]:
    """``"http://h:1/"`` -> ``("http", "h:1")``; ``"h:1"`` -> ``(None, "h:1")``."""
    if "://" not in address:
        return None, address.rstrip("/")
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"not an http(s) server address: {address!r}")
    return parts.scheme, parts.netloc


def _ssl_context(tls: TLSConfig | None) -> ssl.SSLContext:
    if tls is None:
        return ssl.create_default_context()
    try:
        context = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot load TLS files: {exc}") from exc
    return context


def _key_path(key: str) -> str:
    """The path naming ``key``.

    >>> _key_path("a/b c")
    '/v1/a%2Fb%20c'
    >>> _key_path("..")
    '/v1/%2E%2E'
    """
    # safe="": a "/" in a key is sent as %2F, so the key is one path segment. A
    # segment of only dots would be rewritten by clients and proxies: encode it.
    encoded = quote(check_key(key), safe="")
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return "/v1/" + encoded


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError(f"{response.url.netloc.decode()}: malformed JSON answer") from exc


def _transport_error(exc: httpx.HTTPError, target: str) -> LrukvClientError:
    """A request that got no HTTP answer."""
    if isinstance(exc, httpx.ConnectTimeout):
        return Unavailable(f"{target}: timed out connecting")
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(f"{target}: timed out waiting for the answer")
    if isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.UnsupportedProtocol | httpx.ProxyError
    ):
        # Refused, reset, closed mid-answer: the node is down or going down.
        if isinstance(exc, httpx.ConnectError) and _no_listener(exc):
            return Unreachable(f"{target}: cannot connect: {exc}")
        return Unavailable(f"{target}: {exc or type(exc).__name__}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidArgument(f"{target}: {exc}")
    return ServerError(f"{target}: {exc or type(exc).__name__}")


def _no_listener(exc: httpx.ConnectError) -> bool:
    """Refused, or the name did not resolve: nothing listens there (not a
    connect that timed out or a TLS handshake that failed)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError | socket.gaierror):
            return True
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    return "refused" in text or "name or service not known" in text


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    """The server's ``{"error": {"code": ..., "message": ...}}``, tolerantly."""
    text = response.text.strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code is not None else None), str(message or response.reason_phrase)
    return None, (text[:200] if text else response.reason_phrase or f"HTTP {response.status_code}")


def _leader_from(response: httpx.Response) -> tuple[str | None, str | None]:
    leader_http = response.headers.get(LEADER_HTTP_HEADER) or None
    leader_rpc = response.headers.get(LEADER_RPC_HEADER) or None
    location = response.headers.get("Location")
    if leader_http is None and location:
        leader_http = urlsplit(location).netloc or None
    return leader_rpc, leader_http


def _status_error(response: httpx.Response, target: str, key: str | None) -> LrukvClientError:
    """Translate a non-2xx answer into the client's exception (the HTTP twin of
    ``_grpc_common.error_from_status``)."""
    code, message = _error_body(response)
    error = _error_from_status(response, code, message, target, key)
    error.error_code = code
    return error


def _error_from_status(
    response: httpx.Response, code: str | None, message: str, target: str, key: str | None
) -> LrukvClientError:
    status = response.status_code
    text = f"{target}: {message}"
    if status in _REDIRECTS:
        leader_rpc, leader_http = _leader_from(response)
        return NotLeader(
            f"{target}: not the leader; leader is {leader_http}",
            leader_rpc=leader_rpc,
            leader_http=leader_http,
        )
    if status == 404 and key is not None:
        return KeyNotFound(key)
    if status == 400:
        return InvalidArgument(text)
    if status == 413:
        return ValueTooLarge(text)
    if status == 401:
        return Unauthenticated(text)
    if status == 403:
        return PermissionDenied(text)
    if status in (408, 504):
        return DeadlineExceeded(text)
    if status in (429, 502, 503):
        leader_rpc, leader_http = _leader_from(response)
        if leader_rpc or leader_http or (code or "").lower().replace("_", "") == "notleader":
            return NotLeader(text, leader_rpc=leader_rpc, leader_http=leader_http)
        return Unavailable(text)
    return ServerError(f"{text} (HTTP {status})", code=status)


def _first_line(lines: Iterator[str], target: str) -> str | None:
    try:
        for line in lines:
            if line.strip():
                return line
    except httpx.HTTPError as exc:
        raise _transport_error(exc, target) from exc
    return None


def _prepend(first: str | None, rest: Iterator[str]) -> Iterator[str]:
    if first is None:
        return
    yield first
    yield from rest


def _ndjson_pairs(
    lines: Iterator[str], target: str, ends_at: float | None
) -> Iterator[tuple[str, bytes]]:
    """Decode the item stream: one ``{"key": ..., "value": <base64>}`` per line.

    A line ``{"error": {...}}`` is the server reporting a failure mid-stream."""
    try:
        for line in lines:
            if ends_at is not None and time.monotonic() > ends_at:
                raise DeadlineExceeded(f"{target}: the item stream outlasted its stream_timeout")
            if not line.strip():
                continue
            yield _decode_item(line, target)
    except httpx.HTTPError as exc:
        raise _transport_error(exc, target) from exc


def _decode_item(line: str, target: str) -> tuple[str, bytes]:
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
