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

import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from lrukv_client._api import SyncApi
from lrukv_client._http_wire import HttpRequest, HttpWire, decode_item, status_error
from lrukv_client._requests import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_SIZE, Call, ClientCore
from lrukv_client._targets import normalize_address, parse_servers
from lrukv_client.errors import (
    DeadlineExceeded,
    InvalidArgument,
    LrukvClientError,
    NotLeader,
    ServerError,
    Unavailable,
    Unreachable,
)
from lrukv_client.models import Consistency, TLSConfig
from lrukv_client.pipeline import HttpPipeline
from lrukv_client.retry import Retry
from lrukv_client.stream import ItemStream

R = TypeVar("R")

__all__ = ["DEFAULT_HTTP_PORT", "DEFAULT_HTTP_SERVER", "HttpClient", "http_seeds"]

DEFAULT_HTTP_PORT = 8080
DEFAULT_HTTP_SERVER = f"127.0.0.1:{DEFAULT_HTTP_PORT}"


def _leader_http(err: NotLeader) -> str | None:
    return err.leader_http


class HttpClient(SyncApi):
    """A blocking lrukv client over HTTP/1.1.

    ``servers``: ``"host:port"`` or ``"http(s)://host:port"``, a comma-separated
    list or a sequence of seeds. Other arguments as for
    :class:`~lrukv_client.Client`; ``tls`` (or an ``https://`` address) turns on
    HTTPS. ``max_connections`` bounds the connection pool; ``headers`` are sent
    with every request; ``token``: a bearer token, sent as ``Authorization: Bearer
    <token>`` on every request. Batches go as ``POST /v1/util/batch``.
    """

    _wire: HttpWire

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
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        schemes, hosts = http_seeds(servers)
        self._scheme = "https" if tls is not None or "https" in schemes else "http"
        self._core = ClientCore(
            hosts,
            timeout=timeout,
            retry=retry,
            consistency=consistency,
            leader_of=_leader_http,
            token=token,
        )
        self._wire = HttpWire()
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self._extensions: dict[str, Any] = {}
        if tls is not None and tls.server_name:
            self._extensions["sni_hostname"] = tls.server_name
        self._http = httpx.Client(
            verify=_ssl_context(tls) if self._scheme == "https" else True,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": "lrukv-client", **(headers or {})},
        )

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool. Idempotent."""
        self._http.close()

    @property
    def server(self) -> str:
        """The ``host:port`` the next call goes to."""
        return self._core.targets.current

    def __repr__(self) -> str:
        seeds = self._core.targets.seeds
        return f"HttpClient(server={self._scheme}://{self.server}, seeds={seeds!r})"

    # -- streams and pipelines -----------------------------------------------------

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
        level = self._core.level(consistency)
        params = {} if level is Consistency.DEFAULT else {"consistency": level.value}
        request = HttpRequest(
            "GET", "/v1/util/items", params, headers={"Accept": "application/x-ndjson"}
        )

        def open_stream(attempt_timeout: float | None) -> tuple[httpx.Response, Iterator[str]]:
            response = self._send(request, attempt_timeout=attempt_timeout, stream=True)
            try:
                lines = response.iter_lines()
                return response, _prepend(_first_line(lines, self.server), lines)
            except BaseException:
                response.close()
                raise

        response, lines = self._core.retry.call_with_retry(
            open_stream, **self._core.retry_options(write=False, timeout=timeout)
        )
        ends_at = None if stream_timeout is None else time.monotonic() + stream_timeout
        return ItemStream(_ndjson_pairs(lines, self.server, ends_at), response.close)

    def pipeline(self, *, window: int = 128, timeout: float | None = None) -> HttpPipeline:
        """A pipeline that sends each ``window`` requests as one batch; see
        :class:`~lrukv_client.pipeline.HttpPipeline`. ``timeout`` bounds each batch."""
        return HttpPipeline(
            lambda call: self._execute(call, timeout),
            lambda ops, level: self._wire.batch(ops, level=level),
            window=window,
            level=self._core.consistency,
        )

    # -- internals ----------------------------------------------------------------

    def _execute(self, call: Call[R], timeout: float | None) -> R:
        """Make ``call`` with retries and redirects: each attempt on the current node."""

        def attempt(attempt_timeout: float | None) -> R:
            response = self._send(call.request, key=call.key, attempt_timeout=attempt_timeout)
            return call.decode(response, self._core.targets.current)

        return self._core.retry.call_with_retry(
            attempt, **self._core.retry_options(write=call.write, timeout=timeout)
        )

    def _send(
        self,
        request: HttpRequest,
        *,
        key: str | None = None,
        attempt_timeout: float | None,
        stream: bool = False,
    ) -> httpx.Response:
        """One attempt against the current node: a 2xx response, or an exception."""
        core = self._core
        target = core.targets.current
        headers = dict(request.headers)
        headers.update(core.call_metadata())
        built = self._http.build_request(
            request.method,
            f"{self._scheme}://{target}{request.path}",
            params=request.params or None,
            content=request.content,
            headers=headers,
            timeout=httpx.Timeout(attempt_timeout),
            extensions=self._extensions,
        )
        try:
            response = self._http.send(built, stream=stream)
        except httpx.HTTPError as exc:
            error = _transport_error(exc, target)
            core.answered(error)
            raise error from exc
        except RuntimeError as exc:  # httpx: "Cannot send a request, as the client has been closed"
            raise LrukvClientError(f"the client is closed ({exc})") from exc
        core.answered(None)  # a node answered (whatever it said)
        if response.is_success:
            return response
        try:
            if stream:
                response.read()
            raise status_error(response, target, key)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, target) from exc
        finally:
            if stream:
                response.close()


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
            yield decode_item(line, target)
    except httpx.HTTPError as exc:
        raise _transport_error(exc, target) from exc
