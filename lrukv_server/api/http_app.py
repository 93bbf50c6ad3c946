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
``GET /healthz``            200 while the process works, else 503
``GET /readyz``             200 while it can serve reads and writes, else 503
``GET /openapi.json``       the OpenAPI 3.1 document of this API
==========================  =====================================================

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
import functools
import json
import logging
from collections.abc import Callable, Iterator
from importlib import resources
from itertools import chain
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from lrukv.errors import InvalidKey, ValueTooLarge
from lrukv_proto import LEADER_HTTP_HEADER, LEADER_RPC_HEADER
from lrukv_server.api.status import INTERNAL, message_of, status_of
from lrukv_server.errors import InvalidRequest, NotLeader
from lrukv_server.service.base import Consistency, KVService

__all__ = ["OPENAPI_RESOURCE", "create_app", "key_from_target", "openapi_document"]

log = logging.getLogger(__name__)

OPENAPI_RESOURCE = "openapi.json"
_UTIL_PREFIX = "util/"
_UTIL_METHODS = ("GET", "HEAD")
_READ_CHUNK = 64 * 1024
_NDJSON_BATCH = 256  # lines per write: one socket write per line would dominate the cost


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
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(f"ttl must be a number of seconds, not {text!r}") from None


def _read_body(limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed *limit*:
    from Content-Length before reading anything, or after limit + 1 bytes of a
    chunked body. gunicorn then closes the connection instead of draining the rest."""
    length = request.content_length
    if length is not None and length > limit:
        raise ValueTooLarge(
            f"value is {length} bytes; the limit is {limit}", size=length, limit=limit
        )
    stream = request.stream
    if length is not None:
        return stream.read(length)
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ValueTooLarge(
                f"value is more than {limit} bytes; the limit is {limit}", size=total, limit=limit
            )
        chunks.append(chunk)


def _empty(status: int) -> Response:
    response = Response(b"", status)
    del response.headers["Content-Type"]  # no body, so no type (Flask would say text/html)
    return response


def _error_response(status: int, code: str, message: str) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)
    return Response(body + "\n", status, mimetype="application/json")


def _service_error_response(exc: Exception) -> Response:
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
                response.headers["Location"] = f"http://{exc.leader_http}{target}"
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
) -> Flask:
    """Build the Flask app serving *service*.

    ``max_value_bytes`` bounds request bodies (413 beyond it); ``is_draining``
    makes /readyz answer 503 once a shutdown has begun.
    """
    app = Flask("lrukv_server")
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

    utilities: dict[str, Callable[[], Response]] = {
        "keys": list_keys,
        "items": list_items,
        "servers": list_servers,
        "stats": store_stats,
    }
    # Utilities followed by a key: /v1/util/ttl/<key>, the key encoded as in /v1/<key>.
    key_utilities: dict[str, Callable[[str], Response]] = {"ttl/": key_ttl}

    @app.route("/v1/<rest:_rest>", methods=["GET", "HEAD", "PUT", "DELETE"])
    def v1(_rest: str) -> Response:
        target = _raw_target(request.environ)[len("/v1/") :]
        if target.startswith(_UTIL_PREFIX):
            name = target[len(_UTIL_PREFIX) :]
            utility = utilities.get(name)
            for prefix, with_key in key_utilities.items():
                if name.startswith(prefix):
                    utility = functools.partial(with_key, name[len(prefix) :])
            if utility is None:
                return _error_response(404, "not_found", f"no such utility endpoint: /v1/{target}")
            if request.method not in _UTIL_METHODS:
                response = _error_response(
                    405, "method_not_allowed", f"/v1/{target} only answers GET"
                )
                response.headers["Allow"] = ", ".join(_UTIL_METHODS)
                return response
            return utility()
        key = key_from_target(target)
        method = request.method
        if method == "PUT":
            return put_value(key)
        if method == "DELETE":
            return delete_value(key)
        return get_value(key)

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

    app.register_error_handler(HTTPException, _http_error_response)
    app.register_error_handler(Exception, _service_error_response)
    return app
