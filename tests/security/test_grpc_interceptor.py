"""The interceptor's own contract, on handlers it is given: deny by default for a
served method no rule names, UNIMPLEMENTED left alone, and the check runs before
the behaviour of every kind of method (unary or streaming, either side)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from lrukv_server.security.authz import Authorizer
from lrukv_server.security.grpc_auth import AuthInterceptor
from lrukv_server.security.policy import Policy, Role, Subject, hash_token


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class Aborted(Exception):
    pass


class FakeContext:
    """Just what the interceptor reads from a ServicerContext."""

    def __init__(self, token: str | None = None) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.code: grpc.StatusCode | None = None
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"transport_security_type": [b"insecure"]}

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise Aborted(details)


POLICY = Policy(
    subjects={
        "admin": Subject("admin", Role.ADMIN, (bytes.fromhex(hash_token("tok-admin")),)),
        "reader": Subject("reader", Role.READER, (bytes.fromhex(hash_token("tok-reader")),)),
    }
)


def intercept(method: str, handler: Any) -> Any:
    interceptor = AuthInterceptor(Authorizer(POLICY))

    def continuation(details: Any) -> Any:
        return handler

    return interceptor.intercept_service(continuation, _Details(method))


def ran_unary(calls: list[str]) -> grpc.RpcMethodHandler[Any, Any]:
    def behaviour(request: Any, context: Any) -> str:
        calls.append(request)
        return "done"

    return grpc.unary_unary_rpc_method_handler(behaviour)


def test_a_served_method_without_a_rule_is_refused_even_to_an_admin() -> None:
    calls: list[str] = []
    wrapped = intercept("/lrukv.v1.KV/Snapshot", ran_unary(calls))
    context = FakeContext("tok-admin")
    with pytest.raises(Aborted, match="no authorization rule allows Snapshot"):
        wrapped.unary_unary("req", context)
    assert context.code is grpc.StatusCode.PERMISSION_DENIED
    assert context.trailing == (("lrukv-error-code", "permission_denied"),)
    assert calls == []


def test_a_method_the_server_does_not_serve_stays_unimplemented() -> None:
    assert intercept("/lrukv.v1.KV/Nothing", None) is None


def test_open_methods_get_their_handler_untouched() -> None:
    handler = ran_unary([])
    assert intercept("/grpc.health.v1.Health/Check", handler) is handler


@pytest.mark.parametrize("kind", ["unary_unary", "unary_stream", "stream_unary", "stream_stream"])
def test_every_kind_of_method_is_checked_before_its_behaviour(kind: str) -> None:
    calls: list[str] = []

    def behaviour(request: Any, context: Any) -> Any:
        calls.append("ran")
        return iter(["item"]) if kind.endswith("stream") else "done"

    make: Callable[..., Any] = getattr(grpc, f"{kind}_rpc_method_handler")
    wrapped = intercept("/lrukv.v1.KV/Pipeline", make(behaviour))  # needs writer
    guarded = getattr(wrapped, kind)
    reader = FakeContext("tok-reader")
    with pytest.raises(Aborted, match="Pipeline needs writer"):
        guarded(iter(["r"]) if kind.startswith("stream") else "r", reader)
    assert reader.code is grpc.StatusCode.PERMISSION_DENIED
    assert calls == []
    result = guarded("r", FakeContext("tok-admin"))
    if kind.endswith("stream"):
        assert isinstance(result, Iterator) and list(result) == ["item"]
    assert calls == ["ran"]


def test_no_token_is_unauthenticated() -> None:
    wrapped = intercept("/lrukv.v1.KV/Get", ran_unary([]))
    context = FakeContext()
    with pytest.raises(Aborted, match="Get needs credentials"):
        wrapped.unary_unary("req", context)
    assert context.code is grpc.StatusCode.UNAUTHENTICATED
