"""The real ``lrukv-server -t -j URL`` exporting to an OTLP/HTTP receiver on
loopback: a trace the client SDK starts arrives continued in the server's spans,
over gRPC and over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from lrukv_client import AsyncClient, Client, HttpClient
from tests.conftest import StartServer
from tests.harness import REPO_ROOT, server_command
from tests.observability.otlp_receiver import ReceivedSpan, otlp_receiver


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def test_the_sdks_trace_continues_in_the_servers_spans(
    lrukv_server_factory: StartServer,
) -> None:
    tracer = TracerProvider().get_tracer("the-application")
    with otlp_receiver() as receiver:
        server = lrukv_server_factory("-t", "-j", receiver.endpoint, "--node-id", "traced-1")
        with (
            tracer.start_as_current_span("grpc-caller") as grpc_caller,
            Client(server.rpc_addr, timeout=10) as kv,
        ):
            kv.put("k", b"v")
            assert kv.get("k") == b"v"
        with (
            tracer.start_as_current_span("http-caller") as http_caller,
            HttpClient(server.http_url, timeout=10) as http,
        ):
            http.put("k2", b"v2")

        async def async_put() -> None:
            async with AsyncClient(server.rpc_addr, timeout=10) as kv:
                await kv.put("k3", b"v3")
                [item async for item in kv.items()]

        with tracer.start_as_current_span("async-caller") as async_caller:
            asyncio.run(async_put())
        # Outside any span, the SDK sends no traceparent: the server starts its own trace.
        with Client(server.rpc_addr, timeout=10) as kv:
            kv.delete("k")
        assert server.stop() == 0  # the worker flushes its spans on the way out
        spans = list(receiver.spans)

    def by_trace(caller_span: object) -> list[ReceivedSpan]:
        trace_id = _hex(caller_span.get_span_context().trace_id, 32)  # type: ignore[attr-defined]
        return [span for span in spans if span.trace_id == trace_id]

    grpc_spans = by_trace(grpc_caller)
    caller_id = _hex(grpc_caller.get_span_context().span_id, 16)
    calls = [s for s in grpc_spans if s.name.startswith("lrukv.v1.KV/")]
    assert sorted(s.name for s in calls) == ["lrukv.v1.KV/Get", "lrukv.v1.KV/Put"], spans
    assert all(s.parent_span_id == caller_id for s in calls)
    assert {s.name for s in grpc_spans} >= {"kv.put", "kv.get"}
    assert all(s.service_name == "lrukv-server" for s in spans)

    http_spans = by_trace(http_caller)
    requests = [s for s in http_spans if s.name == "PUT /v1/{key}"]
    assert len(requests) == 1, spans
    assert requests[0].parent_span_id == _hex(http_caller.get_span_context().span_id, 16)
    assert requests[0].attributes["http.response.status_code"] == 201

    async_spans = by_trace(async_caller)
    async_id = _hex(async_caller.get_span_context().span_id, 16)
    async_calls = [s for s in async_spans if s.parent_span_id == async_id]
    assert sorted(s.name for s in async_calls) == [
        "lrukv.v1.KV/GetKeysValues",
        "lrukv.v1.KV/Put",
    ], spans

    deletes = [s for s in spans if s.name == "lrukv.v1.KV/Delete"]
    assert len(deletes) == 1 and deletes[0].parent_span_id == ""
    assert deletes[0].trace_id not in {s.trace_id for s in grpc_spans + http_spans + async_spans}


def test_an_unreachable_collector_never_stops_the_server(lrukv_server_factory: StartServer) -> None:
    # Nothing listens on port 9 (discard) of loopback: every export fails.
    server = lrukv_server_factory("-t", "-j", "http://127.0.0.1:9/v1/traces")
    with Client(server.rpc_addr, timeout=10) as kv:
        for i in range(20):
            kv.put(f"k{i}", b"v")
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 25  # the export timeout bounds the final flush


def test_t_without_opentelemetry_installed_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    # sitecustomize hides the package exactly as if it were not installed.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['opentelemetry'] = None\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT)])
    result = subprocess.run(
        [*server_command(), "-t", "--http-port", "0", "--grpc-port", "0"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )
    assert result.returncode == 127
    assert result.stderr == (
        "lrukv-server: tracing (-t) needs the 'server' extra: pip install 'lrukv[server]' "
        "(missing module: opentelemetry)\n"
    )
