"""Tracing in process: the real Agent (-t) with spans captured by the SDK's
in-memory exporter. What an operator reading a trace depends on: span names,
parent/child links, the caller's trace continued, attributes without keys, and
an error status exactly when the server failed."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.agent import Agent, ServiceWrapper
from lrukv_server.config import ServerConfig, load_config
from lrukv_server.observability.tracing import Tracing
from tests.server.faults import FaultyService

TIMEOUT = 10
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SECRET_KEY = "alice@example.com"  # a key that must not appear in any span


class _TracedAgent(Agent):
    """The Agent with its exporter replaced by an in-memory one."""

    exporter: InMemorySpanExporter

    def _make_tracing(self) -> Tracing | None:
        obs = self.config.observability
        if not obs.tracing:
            return None
        self.exporter = InMemorySpanExporter()
        return Tracing(
            node_id=self.config.node_id,
            sample_ratio=obs.trace_sample_ratio,
            exporter=self.exporter,
        )


StartAgent = Callable[..., _TracedAgent]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    agents: list[Agent] = []

    def start(*args: str, service_wrapper: ServiceWrapper | None = None) -> _TracedAgent:
        config: ServerConfig = load_config(
            ["--grpc-port", "0", "--data-dir", str(tmp_path), "-t", *args], env={}
        )
        agent = _TracedAgent(config, http_addr="127.0.0.1:8080", service_wrapper=service_wrapper)
        agent.start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.shutdown()


def _done(response: Any) -> Any:
    """*response*, read and closed as a WSGI server would (the span ends then)."""
    response.get_data()
    response.close()
    return response


def _spans(agent: _TracedAgent) -> list[ReadableSpan]:
    assert agent.tracing is not None
    assert agent.tracing.force_flush()
    return list(agent.exporter.get_finished_spans())


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def _is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None
    return bool(child.parent.span_id == parent.context.span_id)


def _no_key_anywhere(spans: list[ReadableSpan]) -> None:
    for span in spans:
        assert SECRET_KEY not in span.name
        for value in (span.attributes or {}).values():
            assert SECRET_KEY not in str(value), (span.name, span.attributes)


def test_an_http_put_continues_the_callers_trace_down_to_the_log_sync(
    start_agent: StartAgent,
) -> None:
    agent = start_agent("-d", "file")
    assert agent.wsgi_app is not None
    response = _done(
        agent.wsgi_app.test_client().put(
            f"/v1/{SECRET_KEY}", data=b"value", headers={"traceparent": TRACEPARENT}
        )
    )
    assert response.status_code == 201
    spans = _spans(agent)
    request = _one(spans, "PUT /v1/{key}")
    put = _one(spans, "kv.put")
    sync = _one(spans, "txlog.sync")
    assert request.kind is SpanKind.SERVER
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert request.parent is not None and request.parent.is_remote
    assert _is_child(put, request) and _is_child(sync, put)
    assert request.attributes is not None and put.attributes is not None
    assert request.attributes["http.route"] == "/v1/{key}"
    assert request.attributes["http.response.status_code"] == 201
    assert request.attributes["lrukv.request_id"] == response.headers["X-Request-Id"]
    assert put.attributes["lrukv.key.length"] == len(SECRET_KEY)
    assert put.attributes["lrukv.value.length"] == 5
    assert request.resource.attributes["service.name"] == "lrukv-server"
    assert request.resource.attributes["service.instance.id"] == "node-1"
    _no_key_anywhere(spans)


def test_a_missing_key_is_an_answer_not_a_failed_span(start_agent: StartAgent) -> None:
    agent = start_agent()
    assert agent.grpc is not None
    with grpc.insecure_channel(agent.grpc.address) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            kv.Get(
                kv_pb2.GetRequest(key=SECRET_KEY),
                timeout=TIMEOUT,
                metadata=(("traceparent", TRACEPARENT), ("x-request-id", "grpc-req-1")),
            )
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    spans = _spans(agent)
    call = _one(spans, "lrukv.v1.KV/Get")
    get = _one(spans, "kv.get")
    assert call.kind is SpanKind.SERVER and _is_child(get, call)
    assert format(call.context.trace_id, "032x") == TRACE_ID
    assert call.attributes is not None and get.attributes is not None
    assert call.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert call.attributes["rpc.method"] == "Get"
    assert call.attributes["lrukv.request_id"] == "grpc-req-1"
    assert get.attributes["lrukv.error"] == "KeyNotFound"
    assert call.status.status_code is StatusCode.UNSET
    assert get.status.status_code is StatusCode.UNSET
    _no_key_anywhere(spans)


def test_a_server_failure_marks_the_spans_as_errors(start_agent: StartAgent) -> None:
    agent = start_agent(service_wrapper=FaultyService)
    assert agent.wsgi_app is not None and agent.grpc is not None
    response = _done(agent.wsgi_app.test_client().get("/v1/fault-internal"))
    assert response.status_code == 500
    with grpc.insecure_channel(agent.grpc.address) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            kv.Get(kv_pb2.GetRequest(key="fault-unavailable"), timeout=TIMEOUT)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    spans = _spans(agent)
    http_span = _one(spans, "GET /v1/{key}")
    grpc_span = _one(spans, "lrukv.v1.KV/Get")
    assert http_span.status.status_code is StatusCode.ERROR
    assert grpc_span.status.status_code is StatusCode.ERROR
    assert grpc_span.status.description == "UNAVAILABLE"


def test_a_stream_span_covers_the_whole_stream(start_agent: StartAgent) -> None:
    agent = start_agent()
    assert agent.grpc is not None and agent.wsgi_app is not None
    client = agent.wsgi_app.test_client()
    for i in range(3):
        client.put(f"/v1/k{i}", data=b"v")
    with grpc.insecure_channel(agent.grpc.address) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        items = list(kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=TIMEOUT))
    assert len(items) == 3
    lines = client.get("/v1/util/items").get_data().splitlines()
    assert len(lines) == 3
    spans = _spans(agent)
    stream = _one(spans, "lrukv.v1.KV/GetKeysValues")
    http_items = _one(spans, "GET /v1/util/items")
    kv_items = [span for span in spans if span.name == "kv.items"]
    assert len(kv_items) == 2
    assert {span.parent.span_id for span in kv_items if span.parent} == {
        stream.context.span_id,
        http_items.context.span_id,
    }
    assert stream.attributes is not None
    assert stream.attributes["rpc.grpc.status_code"] == 0
    assert stream.end_time is not None and http_items.end_time is not None


def test_sampling_keeps_sampled_parents_and_drops_the_rest_at_ratio_0(
    start_agent: StartAgent,
) -> None:
    agent = start_agent("--trace-sample-ratio", "0")
    assert agent.wsgi_app is not None
    client = agent.wsgi_app.test_client()
    for i in range(20):
        _done(client.put(f"/v1/k{i}", data=b"v"))
    assert _spans(agent) == []
    unsampled = f"00-{TRACE_ID}-00f067aa0ba902b7-00"
    _done(client.put("/v1/a", data=b"v", headers={"traceparent": unsampled}))
    assert _spans(agent) == []
    _done(client.put("/v1/b", data=b"v", headers={"traceparent": TRACEPARENT}))
    names = {span.name for span in _spans(agent)}
    assert names == {"PUT /v1/{key}", "kv.put"}


def test_without_t_opentelemetry_is_not_even_imported(tmp_path: Path) -> None:
    code = f"""
import sys
from lrukv_server.agent import Agent
from lrukv_server.config import load_config
agent = Agent(load_config(["--grpc-port", "0", "--data-dir", {str(tmp_path)!r}], env={{}}),
              http_addr="127.0.0.1:8080")
agent.start()
client = agent.wsgi_app.test_client()
assert client.put("/v1/k", data=b"v").status_code == 201
agent.shutdown()
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_forwarded_proposal_and_its_apply_are_spans_of_the_request() -> None:
    """ReplicatedService's Raft calls, traced: a follower's proposal is marked
    forwarded, and the apply of an entry this node proposed is its child."""
    from concurrent.futures import Future

    from opentelemetry import trace

    exporter = InMemorySpanExporter()
    tracing = Tracing(node_id="n2", exporter=exporter)
    applied: list[int] = []

    class _Fsm:
        def apply(self, command: bytes, index: int) -> object:
            applied.append(index)
            return "ok"

    fsm = tracing.wrap_state_machine(_Fsm())

    class _FollowerRaft:
        is_leader = False
        leader_addr = "127.0.0.1:7001"

        def propose(self, command: bytes, timeout: float) -> Future[object]:
            future: Future[object] = Future()
            # Committed by the leader; applied here on the Raft thread, then answered.
            future.set_result(fsm.apply(command, 42))
            return future

    raft: Any = tracing.wrap_consensus(_FollowerRaft())
    with tracing.tracer.start_as_current_span("request"):
        assert raft.propose(b"PUT k v", 5.0).result() == "ok"
    assert fsm.apply(b"an entry proposed by another node", 43) == "ok"  # no span: no parent
    assert tracing.force_flush()
    spans = list(exporter.get_finished_spans())
    assert applied == [42, 43]
    request = _one(spans, "request")
    propose = _one(spans, "raft.propose")
    apply = _one(spans, "raft.apply")
    assert _is_child(propose, request) and _is_child(apply, propose)
    assert propose.attributes is not None and apply.attributes is not None
    assert propose.attributes["lrukv.raft.forwarded"] is True
    assert propose.attributes["lrukv.raft.leader"] == "127.0.0.1:7001"
    assert apply.attributes["lrukv.raft.index"] == 42
    # Outside a traced request nothing is made (the upkeep thread's TOUCH proposals).
    assert not trace.get_current_span().is_recording()
    raft.propose(b"TOUCH", 5.0)
    assert tracing.force_flush()
    assert len(exporter.get_finished_spans()) == len(spans)
    tracing.shutdown()


def test_the_originals_jaeger_url_is_mapped_to_otlp_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lrukv_server.observability.tracing"):
        tracing = Tracing(node_id="n1", endpoint="http://jaeger:14268/api/traces")
        plain = Tracing(node_id="n1", endpoint="http://127.0.0.1:4318")
    try:
        assert tracing.endpoint == "http://jaeger:4318/v1/traces"
        assert plain.endpoint == "http://127.0.0.1:4318/v1/traces"
        mapped = [
            r.getMessage() for r in caplog.records if "Jaeger collector URL" in r.getMessage()
        ]
        assert mapped == [
            "tracing: http://jaeger:14268/api/traces is a Jaeger collector URL; exporting "
            "OTLP/HTTP to http://jaeger:4318/v1/traces instead (Jaeger ingests OTLP natively)"
        ]
    finally:
        tracing.shutdown()
        plain.shutdown()
