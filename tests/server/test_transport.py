"""The transport-options seam: what the Agent passes in reaches both servers.

Security, metrics and tracing enter only through TransportOptions, so these tests
pin the seam itself: middleware wraps every HTTP request (Flask's test client
included), interceptors see every gRPC call, and redirects use the scheme the
transport advertises instead of a hard-coded ``http://``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.api.grpc_server import GrpcServer
from lrukv_server.api.http_app import create_app
from lrukv_server.transport import ServerTls, TransportOptions
from tests.server.faults import FAULTS, FakeService, FaultyService

LIMIT = 64 * 1024


def _tagging_middleware(tag: str, seen: list[str]) -> Callable[[Any], Any]:
    def middleware(app: Any) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            seen.append(tag)

            def tagged_start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                return start_response(status, [*headers, ("X-Seen-By", tag)], *exc)

            return app(environ, tagged_start)  # type: ignore[no-any-return]

        return wrapped

    return middleware


def test_wsgi_middleware_wraps_every_request_outermost_first() -> None:
    seen: list[str] = []
    transport = TransportOptions(
        wsgi_middleware=(_tagging_middleware("outer", seen), _tagging_middleware("inner", seen))
    )
    client = create_app(FakeService(), max_value_bytes=LIMIT, transport=transport).test_client()
    response = client.put("/v1/k", data=b"v")
    assert response.status_code == 201
    assert seen == ["outer", "inner"]
    # The inner middleware adds its header first; the outer one sees the inner's answer.
    assert response.headers.getlist("X-Seen-By") == ["inner", "outer"]
    assert client.get("/v1/absent").status_code == 404
    assert seen == ["outer", "inner", "outer", "inner"]


def test_a_redirect_to_the_leader_uses_the_transports_scheme() -> None:
    fault = next(f for f in FAULTS if f.http_status == 307)
    tls = TransportOptions(tls=ServerTls("unused-cert.pem", "unused-key.pem"))
    for transport, scheme in ((TransportOptions(), "http"), (tls, "https")):
        app = create_app(FaultyService(FakeService()), max_value_bytes=LIMIT, transport=transport)
        response = app.test_client().get(f"/v1/{fault.key}")
        assert response.status_code == 307
        assert response.headers["Location"].startswith(f"{scheme}://")


class _Recorder(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        self.methods.append(handler_call_details.method)
        return continuation(handler_call_details)


@pytest.fixture
def recorded() -> Iterator[tuple[_Recorder, str]]:
    recorder = _Recorder()
    server = GrpcServer(
        host="127.0.0.1",
        port=0,
        workers=2,
        max_value_bytes=LIMIT,
        max_key_bytes=1024,
        transport=TransportOptions(grpc_interceptors=(recorder,)),
    )
    server.bind()
    server.start(FakeService())
    yield recorder, server.address
    server.begin_stop(0)
    server.wait_stopped(10)


def test_grpc_interceptors_see_every_call(recorded: tuple[_Recorder, str]) -> None:
    recorder, address = recorded
    with grpc.insecure_channel(address) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        kv.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=10)
        with pytest.raises(grpc.RpcError) as missing:
            kv.Get(kv_pb2.GetRequest(key="absent"), timeout=10)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    assert recorder.methods == ["/lrukv.v1.KV/Put", "/lrukv.v1.KV/Get"]
