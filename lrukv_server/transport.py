"""Transport options: the one object the Agent hands to both servers.

Everything that wraps or secures a transport, rather than serving keys, enters
the servers through here: TLS credentials, gRPC interceptors, WSGI middleware,
and the scheme clients are told to use (redirects, the start-up banner). The
servers take a :class:`TransportOptions` and never build these themselves, so
security, metrics and tracing plug in at the Agent without touching a handler,
and nothing hard-codes ``http://`` or ``add_insecure_port``.

Order: ``grpc_interceptors`` and ``wsgi_middleware`` are listed outermost
first. The first interceptor sees a call before the others; the first
middleware wraps all the rest (so put tracing before metrics before auth to have
a denied request traced and counted).

>>> TransportOptions().scheme
'http'
>>> TransportOptions(tls=ServerTls("c.pem", "k.pem")).scheme
'https'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
else:
    WSGIApplication = Callable[..., Iterable[bytes]]

__all__ = ["ServerTls", "TransportOptions", "WSGIApplication", "WsgiMiddleware"]

WsgiMiddleware = Callable[["WSGIApplication"], "WSGIApplication"]
"""Takes the WSGI app it wraps and returns the wrapping app."""


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate chain and key (PEM files), and the CA that signs
    client certificates when clients must present one.

    ``require_client_auth`` (mutual TLS) needs ``client_ca_file``.
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    require_client_auth: bool = False

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """(certificate chain, private key, client CA or None), as PEM bytes."""
        ca = Path(self.client_ca_file).read_bytes() if self.client_ca_file else None
        return Path(self.cert_file).read_bytes(), Path(self.key_file).read_bytes(), ca


@dataclass(frozen=True)
class TransportOptions:
    """What both servers are built with; the default is plain text, unwrapped."""

    tls: ServerTls | None = None
    grpc_interceptors: tuple[grpc.ServerInterceptor[Any, Any], ...] = ()
    wsgi_middleware: tuple[WsgiMiddleware, ...] = ()

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``: the scheme of URLs given to clients."""
        return "https" if self.tls is not None else "http"

    def grpc_credentials(self) -> grpc.ServerCredentials | None:
        """Server credentials for ``add_secure_port``, or None for plain text."""
        if self.tls is None:
            return None
        chain, key, ca = self.tls.read()
        return grpc.ssl_server_credentials(
            [(key, chain)],
            root_certificates=ca,
            require_client_auth=self.tls.require_client_auth,
        )

    def wrap_wsgi(self, app: WSGIApplication) -> WSGIApplication:
        """*app* wrapped in every middleware, the first one outermost."""
        for middleware in reversed(self.wsgi_middleware):
            app = middleware(app)
        return app
