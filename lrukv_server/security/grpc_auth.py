"""The gRPC half of authorization: a ``grpc.ServerInterceptor`` that checks every
call against the policy before its handler runs.

A ServerInterceptor sees the method name and the request metadata, but not the
call's context, which is where the peer's verified client certificate is
(``context.auth_context()``). So for a method that needs a role it returns the
same handler with its behaviour wrapped: the wrapper checks first, inside the
call, and aborts with UNAUTHENTICATED / PERMISSION_DENIED (plus the
``lrukv-error-code`` trailing metadata, from the error table) before the
handler is entered, so a refused call changes nothing and takes no stream slot.
Open methods (health, reflection) get their handler untouched; a method the
server does not serve gets UNIMPLEMENTED as without the interceptor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from lrukv_proto import ERROR_CODE_METADATA
from lrukv_server.api.status import message_of, status_of
from lrukv_server.errors import PermissionDenied, Unauthenticated
from lrukv_server.security.authz import (
    OPEN,
    Authorizer,
    Credentials,
    Requirement,
    grpc_requirement,
    parse_authorization,
)

__all__ = ["AuthInterceptor", "peer_common_name"]

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:  # the stubs' generics are not subscriptable at run time
    Handler = grpc.RpcMethodHandler
    _ServerInterceptor = grpc.ServerInterceptor


def peer_common_name(context: grpc.ServicerContext) -> str | None:
    """The CN of the client certificate the TLS handshake verified, or None.

    grpcio's Python servers either require and verify a client certificate or do
    not ask for one (``ssl_server_credentials(require_client_auth=...)``), so a
    CN in the auth context always comes from a verified certificate.
    """
    auth = context.auth_context()
    if b"ssl" not in auth.get("transport_security_type", ()):
        return None
    names = auth.get("x509_common_name")
    if not names:
        return None
    first = names if isinstance(names, bytes) else next(iter(names), b"")
    return first.decode("utf-8", errors="replace") or None


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def _refuse(context: grpc.ServicerContext, exc: Unauthenticated | PermissionDenied) -> None:
    row = status_of(exc)
    context.set_trailing_metadata(((ERROR_CODE_METADATA, row.code),))
    context.abort(row.grpc_code, message_of(exc, row))


class AuthInterceptor(_ServerInterceptor):
    """Checks each call with *authorizer*; see the module docstring.

    Wrapped handlers are cached per method (the check reads the credentials from
    each call's context, so one wrapper serves every call of a method).
    """

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}
        self._lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        required = grpc_requirement(method)
        if required is OPEN:
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._guard(handler, required, method.rsplit("/", 1)[-1] or method)
        with self._lock:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _guard(self, handler: Handler, required: Requirement | None, name: str) -> Handler:
        authorizer = self._authorizer

        def check(context: grpc.ServicerContext) -> None:
            token, problem = parse_authorization(_authorization(context))
            credentials = Credentials(
                cert_cn=peer_common_name(context), token=token, problem=problem
            )
            try:
                authorizer.check(credentials, required, name)
            except (Unauthenticated, PermissionDenied) as exc:
                _refuse(context, exc)

        return _wrap(handler, check)


def _wrap(handler: Handler, check: Callable[[grpc.ServicerContext], None]) -> Handler:
    """*handler* with ``check(context)`` run before its behaviour, for each of the
    four kinds of method. For a streaming response the check runs when grpcio
    calls the behaviour, before it iterates the responses."""
    if handler.request_streaming and handler.response_streaming:
        behavior, make = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        behavior, make = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        behavior, make = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        behavior, make = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    assert behavior is not None

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        check(context)
        return behavior(request, context)

    return make(
        guarded,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
