"""The HTTP half of authorization: a WSGI middleware that checks every request
against the policy before the Flask app sees it.

The subject is ``environ["lrukv.tls.peer_cn"]`` (set by the HTTP worker to the
CN of the client certificate the TLS handshake verified), else the
``Authorization: Bearer <token>`` header. A refused request is answered here, in
the API's error body (``{"error": {"code", "message"}}``, status and code from
the error table): 401 ``unauthenticated`` with ``WWW-Authenticate: Bearer``, or
403 ``permission_denied``. The app is not called, so nothing changes; a PUT's
body is left unread. An allowed request carries its subject on in
``environ["lrukv.auth.subject"]`` (None for open routes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lrukv_server.api.status import message_of, status_of
from lrukv_server.errors import PermissionDenied, Unauthenticated
from lrukv_server.security.authz import (
    OPEN,
    Authorizer,
    Credentials,
    http_requirement,
    parse_authorization,
)
from lrukv_server.transport import WSGIApplication, WsgiMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["PEER_CN_ENVIRON", "SUBJECT_ENVIRON", "AuthMiddleware", "auth_middleware"]

PEER_CN_ENVIRON = "lrukv.tls.peer_cn"
"""Set by the TLS-serving HTTP worker: the verified client certificate's CN."""
SUBJECT_ENVIRON = "lrukv.auth.subject"
"""Set by this middleware for the app: who made an allowed request."""

_MAX_PATH_IN_MESSAGE = 120


def request_path(environ: WSGIEnvironment) -> str:
    """The request path as sent (percent-encoded, no query), as the app routes it.

    >>> request_path({"RAW_URI": "/v1/a%2Fb?ttl=3"})
    '/v1/a%2Fb'
    >>> request_path({"RAW_URI": "http://h:1/v1/k"})
    '/v1/k'
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        decoded = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        return decoded.replace("%", "%25")
    path = str(raw).split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):  # absolute-form target
        scheme_end = path.find("://")
        slash = path.find("/", scheme_end + 3) if scheme_end >= 0 else -1
        path = path[slash:] if slash >= 0 else "/"
    return path


class AuthMiddleware:
    """Wraps a WSGI *app*; see the module docstring."""

    def __init__(self, app: WSGIApplication, authorizer: Authorizer) -> None:
        self.app = app
        self._authorizer = authorizer

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = request_path(environ)
        required = http_requirement(method, path, environ)
        if required is OPEN:
            environ[SUBJECT_ENVIRON] = None
            return self.app(environ, start_response)
        token, problem = parse_authorization(environ.get("HTTP_AUTHORIZATION"))
        cert_cn = environ.get(PEER_CN_ENVIRON) or None
        credentials = Credentials(cert_cn=cert_cn, token=token, problem=problem)
        shown = path if len(path) <= _MAX_PATH_IN_MESSAGE else path[:_MAX_PATH_IN_MESSAGE] + "…"
        try:
            subject = self._authorizer.check(credentials, required, f"{method} {shown}")
        except (Unauthenticated, PermissionDenied) as exc:
            return _refuse(exc, start_response, bearer_sent=token is not None)
        environ[SUBJECT_ENVIRON] = subject
        return self.app(environ, start_response)


def _refuse(
    exc: Unauthenticated | PermissionDenied, start_response: StartResponse, *, bearer_sent: bool
) -> list[bytes]:
    row = status_of(exc)
    status = row.http_status(exc)
    body = (
        json.dumps(
            {"error": {"code": row.code, "message": message_of(exc, row)}}, ensure_ascii=False
        )
        + "\n"
    ).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if isinstance(exc, Unauthenticated):
        # RFC 6750: the scheme to use, and whether the token sent was the problem.
        challenge = 'Bearer realm="lrukv"'
        if bearer_sent:
            challenge += ', error="invalid_token"'
        headers.append(("WWW-Authenticate", challenge))
    reason = "Unauthorized" if status == 401 else "Forbidden"
    start_response(f"{status} {reason}", headers)
    return [body]


def auth_middleware(authorizer: Authorizer) -> WsgiMiddleware:
    """The middleware for ``TransportOptions.wsgi_middleware``.

    >>> from lrukv_server.security.policy import Policy
    >>> wrap = auth_middleware(Authorizer(Policy()))
    >>> isinstance(wrap(lambda environ, start: [b""]), AuthMiddleware)
    True
    """

    def wrap(app: WSGIApplication) -> WSGIApplication:
        return AuthMiddleware(app, authorizer)

    return wrap
