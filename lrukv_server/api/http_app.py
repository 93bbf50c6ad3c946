"""The HTTP API: a Flask app over a KVService (served by gunicorn; see gunicorn_app).

Routes (docs/api.md and the OpenAPI document served at /openapi.json say more):

==========================  =====================================================
``PUT /v1/<key>``           store the body as the value (``?ttl=`` seconds) -> 201
``GET /v1/<key>``           the raw value, application/octet-stream -> 200
``DELETE /v1/<key>``        remove -> 204 (header X-Lrukv-Existed: true|false)
``GET /v1/util/keys``       JSON ``{"keys": [...]}``; comma-joined with Accept: text/plain
``GET /v1/util/items``      NDJSON, one ``{"key": ..., "value": <base64>}`` per line
``GET /v1/util/servers``    JSON ``{"servers": [...]}`` (the HTTP twin of GetServers)
``GET /v1/util/stats``      JSON: size, capacity, limits, hits, misses, evictions
``GET /v1/util/ttl/<key>``  JSON ``{"key": ..., "ttl": seconds|null}``; 404 if absent
``POST /v1/util/batch``     JSON gets, puts and deletes in one request (api.http_batch)
``GET /healthz``            200 while the process works, else 503
``GET /readyz``             200 while it can serve reads and writes, else 503
``GET /openapi.json``       the OpenAPI 3.1 document of this API
``OPTIONS`` any route       204, ``Allow``: exactly the methods that route serves
==========================  =====================================================

Bodies
------
A PUT's body is read whole before anything is stored: shorter than its
Content-Length, or chunked with broken framing, is 400 and stores nothing; no
length at all (neither Content-Length nor chunked) is 411; a transfer coding
other than chunked is 501; over the limit is 413 (see :func:`_read_body`).

Keys in paths
-------------
The key is everything after ``/v1/`` in the request target as the client sent
it, percent-decoded as UTF-8. So a key may contain ``/`` (``/v1/a/b`` and
``/v1/a%2Fb`` both name the key ``a/b``). The one exception is the ``util/``
prefix, written literally: ``/v1/util/keys`` lists the keys, while the key
``util/keys`` is reached as ``/v1/util%2Fkeys`` (the key ``util`` alone needs no
escaping). A segment that is exactly ``.`` or ``..`` is refused (400): clients
and proxies rewrite such paths before they arrive, so they cannot name a key
reliably; send them percent-encoded (``%2E%2E``). Keys are validated by the core
like any other (non-empty, valid UTF-8, no control characters, length limit).

Errors are ``{"error": {"code": ..., "message": ...}}`` with the status from the
one error table (:mod:`lrukv_server.api.status`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from itertools import chain
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException, LengthRequired
from werkzeug.exceptions import NotImplemented as NotImplementedHTTP
from werkzeug.routing import BaseConverter

from lrukv.errors import InvalidKey, InvalidTTL, ValueTooLarge
from lrukv_proto import LEADER_HTTP_HEADER, LEADER_RPC_HEADER
from lrukv_server.api import http_batch
from lrukv_server.api.batch_limits import BatchLimits
from lrukv_server.api.status import INTERNAL, message_of, status_of
from lrukv_server.errors import BatchTooLarge, InvalidRequest, NotLeader
from lrukv_server.service.base import Consistency, KVService
from lrukv_server.transport import TransportOptions

__all__ = [
    "OPENAPI_RESOURCE",
    "TTL_MAX_LENGTH",
    "TTL_PATTERN",
    "create_app",
    "key_from_target",
    "openapi_document",
]

log = logging.getLogger(__name__)

OPENAPI_RESOURCE = "openapi.json"
_UTIL_PREFIX = "util/"
_KEY_METHODS = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
_UTIL_METHODS = ("GET", "HEAD", "OPTIONS")
_BATCH_PATH = "/v1/util/batch"
_BATCH_METHODS = ("OPTIONS", "POST")
_READ_CHUNK = 64 * 1024
_NDJSON_BATCH = 256  # lines per write: one socket write per line would dominate the cost

TTL_PATTERN = r"^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$"
"""``?ttl=``: a positive plain decimal (a nonzero digit before or after the dot);
the OpenAPI document carries the same pattern and TTL_MAX_LENGTH."""
TTL_MAX_LENGTH = 32
_TTL_SYNTAX = re.compile(TTL_PATTERN)
# What reading a body raises when the client's framing is broken or the client
# went away: gunicorn's parse errors, NoMoreData (an OSError), resets, timeouts.
_BODY_READ_ERRORS = (OSError, ParseException)


def openapi_document() -> bytes:
    """The OpenAPI document shipped with the package (docs/openapi.json is the same file)."""
    return resources.files("lrukv_server.api").joinpath(OPENAPI_RESOURCE).read_bytes()


class _RestConverter(BaseConverter):
    """Everything after the prefix, slashes and emptiness included: the key rules
    are applied to the raw request target, not to Werkzeug's decoded path."""

    regex = "(?s:.*)"  # newlines too: a %0A in a key must reach the key check
    part_isolating = False


def _raw_target(environ: dict[str, Any]) -> str:
    """The request path as the client sent it, still percent-encoded (a WSGI
    "bytes as latin-1" str). gunicorn and Werkzeug put it in RAW_URI /
    REQUEST_URI; without them the decoded PATH_INFO is re-encoded, which cannot
    tell ``%2F`` from ``/``."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        decoded = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        return decoded.replace("%", "%25")  # every % in a decoded path is literal
    path = str(raw).split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):  # absolute-form target: http://host/path
        scheme_end = path.find("://")
        slash = path.find("/", scheme_end + 3) if scheme_end >= 0 else -1
        path = path[slash:] if slash >= 0 else "/"
    return path


def key_from_target(rest: str) -> str:
    """Decode the raw text after ``/v1/`` into a key (see the module docstring).

    >>> key_from_target("caf%C3%A9%2Fmenu")
    'café/menu'
    >>> key_from_target("a/../b")
    Traceback (most recent call last):
    ...
    lrukv.errors.InvalidKey: key path has a '..' segment, which clients and proxies rewrite; \
percent-encode the dots (%2E)
    """
    if "." in rest:
        for segment in rest.split("/"):
            if segment in (".", ".."):
                raise InvalidKey(
                    f"key path has a {segment!r} segment, which clients and proxies rewrite; "
                    "percent-encode the dots (%2E)"
                )
    if "%" not in rest and rest.isascii():
        return rest  # the common case: nothing to decode
    try:
        return unquote_to_bytes(rest.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        raise InvalidKey("key is not valid UTF-8 after percent-decoding") from None


def _consistency() -> Consistency:
    if not request.environ.get("QUERY_STRING"):
        return Consistency.DEFAULT  # skips building request.args on the hot path
    text = request.args.get("consistency")
    if text is None:
        return Consistency.DEFAULT
    try:
        return Consistency.parse(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _ttl() -> float | None:
    if not request.environ.get("QUERY_STRING"):
        return None
    text = request.args.get("ttl")
    if text is None:
        return None
    # A plain positive decimal, no more: Python's float() would also take
    # "1_0", " 1 ", "1e3", "inf" and "nan". The length bound keeps every match
    # finite and > 0 (at most 1e32, at least 1e-30), so no float check follows.
    if len(text) > TTL_MAX_LENGTH or not _TTL_SYNTAX.fullmatch(text):
        raise InvalidTTL(
            f"ttl must be a positive decimal number of seconds like 30 or 0.5 "
            f"(digits and at most one dot, up to {TTL_MAX_LENGTH} characters), not {text!r}"
        )
    return float(text)


TooLarge = Callable[[int, bool], Exception]
"""Makes the 413 error for a body of (at least, when the flag is set) N bytes."""


def _value_too_large(limit: int) -> TooLarge:
    def refuse(size: int, at_least: bool) -> Exception:
        more = "more than " if at_least else ""
        return ValueTooLarge(
            f"value is {more}{size} bytes; the limit is {limit}", size=size, limit=limit
        )

    return refuse


def _read_body(limit: int, too_large: TooLarge | None = None, what: str = "a PUT") -> bytes:
    """The request body of a PUT (*what*), whole, or an error that stores nothing.

    - 413 as soon as the body is known to exceed *limit*: from Content-Length
      before anything is read, or after limit + 1 bytes of a chunked body
      (gunicorn then closes the connection instead of draining the rest);
    - 400 when the body is shorter than its Content-Length or its chunked
      framing is broken: gunicorn's readers return short data at EOF, or raise
      their parse errors from the read, and both are the client's doing;
    - 411 with neither Content-Length nor Transfer-Encoding (docs/api.md says why);
    - 501 for a transfer coding other than chunked, which gunicorn passes on
      still encoded.
    """
    environ = request.environ
    declared = environ.get("CONTENT_LENGTH")
    try:
        if declared:  # gunicorn has checked it is digits; some servers send "" for none
            length = int(declared)
            if length > limit:
                raise (too_large or _value_too_large(limit))(length, False)
            body = environ["wsgi.input"].read(length) if length else b""
            if len(body) != length:
                raise InvalidRequest(
                    f"the request body ended after {len(body)} of the {length} bytes its "
                    "Content-Length announced; nothing was stored"
                )
            return body
        coding = environ.get("HTTP_TRANSFER_ENCODING")
        if coding is None:
            raise LengthRequired(
                f"{what} must say how long its body is: send Content-Length "
                "(0 for an empty value) or a chunked body"
            )
        _check_transfer_coding(coding)
        return _read_chunked(request.stream, limit, too_large or _value_too_large(limit))
    except _BODY_READ_ERRORS as exc:
        raise InvalidRequest(f"malformed request body: {_body_error_text(exc)}") from None


def _check_transfer_coding(value: str) -> None:
    codings = [part.strip(" \t").lower() for part in value.split(",")]
    if any(coding not in ("chunked", "identity") for coding in codings):
        raise NotImplementedHTTP(
            f"Transfer-Encoding {value!r} is not supported: the server decodes only "
            "chunked; send the value as it should be stored"
        )


def _read_chunked(stream: Any, limit: int, too_large: TooLarge) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise too_large(limit, True)
        chunks.append(chunk)


def _body_error_text(exc: OSError | ParseException) -> str:
    if isinstance(exc, NoMoreData):
        return "the connection ended before the last chunk"
    if isinstance(exc, ParseException):
        return str(exc)
    return f"the connection failed while the body was read ({exc.strerror or type(exc).__name__})"


def _empty(status: int) -> Response:
    response = Response(b"", status)
    del response.headers["Content-Type"]  # no body, so no type (Flask would say text/html)
    return response


def _options(methods: Iterable[str]) -> Response:
    response = _empty(204)
    response.headers["Allow"] = ", ".join(methods)
    return response


class _Flask(Flask):
    def make_default_options_response(self) -> Response:
        """OPTIONS on the other routes: 204 and the methods the route serves,
        instead of Flask's 200 with a text/html type and no body."""
        rule = request.url_rule
        assert rule is not None and rule.methods is not None  # matched, to get here
        return _options(sorted(rule.methods))


def _error_response(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)
    return Response(body + "\n", status, mimetype="application/json")


def _service_error_response(exc: Exception, scheme: str = "http") -> Response:
    row = status_of(exc)
    if row is INTERNAL:
        log.error("unexpected error in an HTTP handler", exc_info=exc)
    status = row.http_status(exc)
    response = _error_response(status, row.code, message_of(exc, row))
    if isinstance(exc, NotLeader):
        if exc.leader_http:
            response.headers[LEADER_HTTP_HEADER] = exc.leader_http
            if status == 307:
                target = request.environ.get("RAW_URI") or request.full_path
                response.headers["Location"] = f"{scheme}://{exc.leader_http}{target}"
        if exc.leader_rpc:
            response.headers[LEADER_RPC_HEADER] = exc.leader_rpc
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def _http_error_response(exc: HTTPException) -> Response:
    """Werkzeug's own errors (404 route, 405 method, 400 bad request…) in our body shape."""
    code = (exc.name or "error").lower().replace(" ", "_")
    status = exc.code or 500
    response = _error_response(status, code, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _ndjson(first: tuple[str, bytes] | None, rest: Iterator[tuple[str, bytes]]) -> Iterator[bytes]:
    b64 = base64.b64encode
    dumps = json.dumps
    lines: list[str] = []
    pairs: Iterator[tuple[str, bytes]] = rest if first is None else chain((first,), rest)
    try:
        for key, value in pairs:
            lines.append(
                dumps({"key": key, "value": b64(value).decode("ascii")}, ensure_ascii=False)
            )
            if len(lines) >= _NDJSON_BATCH:
                yield ("\n".join(lines) + "\n").encode()
                lines.clear()
    except Exception as exc:
        # The status line is long gone: end the stream with an error line, so a
        # reader can tell a failure from the end of the data.
        row = status_of(exc)
        if row is INTERNAL:
            log.error("unexpected error while streaming items", exc_info=exc)
        lines.append(dumps({"error": {"code": row.code, "message": message_of(exc, row)}}))
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def create_app(
    service: KVService,
    *,
    max_value_bytes: int,
    is_draining: Callable[[], bool] = lambda: False,
    transport: TransportOptions | None = None,
    batch_limits: BatchLimits | None = None,
) -> Flask:
    """Build the Flask app serving *service*.

    ``max_value_bytes`` bounds request bodies (413 beyond it); ``is_draining``
    makes /readyz answer 503 once a shutdown has begun. ``transport`` gives the
    scheme of redirects to the leader and the WSGI middleware, which wraps
    ``app.wsgi_app`` (so Flask's test client goes through it too).
    ``batch_limits`` bounds ``POST /v1/util/batch`` (its body, its operations).
    """
    transport = transport or TransportOptions()
    limits = batch_limits or BatchLimits()
    app = _Flask("lrukv_server")
    app.url_map.converters["rest"] = _RestConverter
    app.url_map.merge_slashes = False  # "/v1//a" names the key "/a", not "a"
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    openapi = openapi_document()

    def get_value(key: str) -> Response:
        value = service.get(key, consistency=_consistency())
        return Response(value, 200, mimetype="application/octet-stream")

    def put_value(key: str) -> Response:
        value = _read_body(max_value_bytes)
        service.put(key, value, ttl=_ttl())
        return _empty(201)

    def delete_value(key: str) -> Response:
        existed = service.delete(key)
        response = _empty(204)
        response.headers["X-Lrukv-Existed"] = "true" if existed else "false"
        return response

    def list_keys() -> Response:
        keys = list(service.keys(consistency=_consistency()))
        best = request.accept_mimetypes.best_match(
            ["application/json", "text/plain"], default="application/json"
        )
        if best == "text/plain":
            # The original's format. A key may contain a comma: use JSON for such keys.
            return Response(",".join(keys), 200, mimetype="text/plain")
        return Response(
            json.dumps({"keys": keys}, ensure_ascii=False) + "\n", 200, mimetype="application/json"
        )

    def list_items() -> Response:
        pairs = iter(service.items(consistency=_consistency()))
        # Take the first item here, so an error the service raises when the
        # iteration starts (NotLeader, Unavailable…) still gets its own status.
        first = next(pairs, None)
        return Response(_ndjson(first, pairs), 200, mimetype="application/x-ndjson")

    def list_servers() -> Response:
        servers = [
            {"id": s.id, "rpc_addr": s.rpc_addr, "http_addr": s.http_addr, "is_leader": s.is_leader}
            for s in service.servers()
        ]
        return Response(json.dumps({"servers": servers}) + "\n", 200, mimetype="application/json")

    def cluster_status() -> Response:
        status = service.cluster_status(digest=request.args.get("digest") in ("1", "true"))
        body = dataclasses.asdict(status)
        if body["digest"] is None:
            del body["digest"]
        return Response(json.dumps(body) + "\n", 200, mimetype="application/json")

    def store_stats() -> Response:
        stats = service.stats()
        body = {
            "size": stats.size,
            "capacity": stats.capacity,
            "shards": stats.shards,
            "items_per_shard": stats.items_per_shard,
            "bytes": stats.bytes,
            "max_bytes": stats.max_bytes,
            "max_key_bytes": stats.max_key_bytes,
            "max_value_bytes": stats.max_value_bytes,
            "hits": stats.hits,
            "misses": stats.misses,
            "evictions": dict(stats.evictions),
        }
        return Response(json.dumps(body) + "\n", 200, mimetype="application/json")

    def key_ttl(rest: str) -> Response:
        key = key_from_target(rest)
        ttl = service.ttl(key, consistency=_consistency())
        body = json.dumps({"key": key, "ttl": ttl}, ensure_ascii=False)
        return Response(body + "\n", 200, mimetype="application/json")

    def batch_too_large(size: int, at_least: bool) -> Exception:
        return BatchTooLarge(limits.too_many_bytes(size, at_least=at_least))

    def run_batch() -> Response:
        body = _read_body(limits.max_bytes, batch_too_large, what="a batch")
        ops, atomic = http_batch.parse_batch(body, limits)
        results = http_batch.run_batch(
            service, ops, atomic=atomic, consistency=_consistency(), limits=limits
        )
        return Response(http_batch.encode_answer(results), 200, mimetype="application/json")

    def refuse_batch_method() -> Response:
        response = _error_response(
            405, "method_not_allowed", f"{_BATCH_PATH} only answers POST (and OPTIONS)"
        )
        response.headers["Allow"] = ", ".join(_BATCH_METHODS)
        return response

    utilities: dict[str, Callable[[], Response]] = {
        "keys": list_keys,
        "items": list_items,
        "servers": list_servers,
        "cluster": cluster_status,
        "stats": store_stats,
    }
    # Utilities followed by a key: /v1/util/ttl/<key>, the key encoded as in /v1/<key>.
    key_utilities: dict[str, Callable[[str], Response]] = {"ttl/": key_ttl}

    def find_utility(name: str) -> Callable[[], Response] | None:
        utility = utilities.get(name)
        if utility is None:
            for prefix, with_key in key_utilities.items():
                if name.startswith(prefix):
                    return functools.partial(with_key, name[len(prefix) :])
        return utility

    def refuse_utility(target: str) -> Response:
        """``/v1/util/...`` with a name or a method no utility serves: 404 or 405."""
        if target == _BATCH_PATH[len("/v1/") :]:
            return refuse_batch_method()
        if find_utility(target[len(_UTIL_PREFIX) :]) is None:
            return _error_response(404, "not_found", f"no such utility endpoint: /v1/{target}")
        response = _error_response(405, "method_not_allowed", f"/v1/{target} only answers GET")
        response.headers["Allow"] = ", ".join(_UTIL_METHODS)
        return response

    def http_error(exc: HTTPException) -> Response:
        if exc.code == 405:
            path = _raw_target(request.environ)
            if path.startswith("/v1/" + _UTIL_PREFIX):
                # A method no rule has (POST…): werkzeug's Allow would be the keys'.
                return refuse_utility(path[len("/v1/") :])
        return _http_error_response(exc)

    # OPTIONS is answered here, not by Flask: this one rule serves both the keys
    # and the utilities, which allow different methods.
    @app.route("/v1/<rest:_rest>", methods=_KEY_METHODS, provide_automatic_options=False)
    def v1(_rest: str) -> Response:
        target = _raw_target(request.environ)[len("/v1/") :]
        method = request.method
        if target.startswith(_UTIL_PREFIX):
            utility = find_utility(target[len(_UTIL_PREFIX) :])
            if utility is None or method not in _UTIL_METHODS:
                return refuse_utility(target)
            if method == "OPTIONS":
                return _options(_UTIL_METHODS)
            return utility()
        if method == "PUT":
            return put_value(key_from_target(target))
        if method in ("GET", "HEAD"):
            return get_value(key_from_target(target))
        if method == "DELETE":
            return delete_value(key_from_target(target))
        return _options(_KEY_METHODS)

    @app.route(_BATCH_PATH, methods=_BATCH_METHODS, provide_automatic_options=False)
    def batch() -> Response:
        if _raw_target(request.environ) != _BATCH_PATH:
            # /v1/util%2Fbatch names a key, which takes no POST.
            response = _error_response(
                405, "method_not_allowed", "a key answers GET, HEAD, PUT and DELETE"
            )
            response.headers["Allow"] = ", ".join(_KEY_METHODS)
            return response
        if request.method == "OPTIONS":
            return _options(_BATCH_METHODS)
        return run_batch()

    @app.get("/healthz")
    def healthz() -> Response:
        health = service.health()
        body = {"live": health.live, "ready": health.ready, "checks": dict(health.checks)}
        return Response(
            json.dumps(body) + "\n", 200 if health.live else 503, mimetype="application/json"
        )

    @app.get("/readyz")
    def readyz() -> Response:
        health = service.health()
        checks = dict(health.checks)
        ready = health.ready and not is_draining()
        if is_draining():
            checks["server"] = "draining"
        body = {"live": health.live, "ready": ready, "checks": checks}
        return Response(json.dumps(body) + "\n", 200 if ready else 503, mimetype="application/json")

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return Response(openapi, 200, mimetype="application/json")

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(
        Exception, functools.partial(_service_error_response, scheme=transport.scheme)
    )
    app.wsgi_app = transport.wrap_wsgi(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app
