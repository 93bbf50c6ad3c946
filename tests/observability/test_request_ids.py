"""Request ids and log formats, in the real ``lrukv-server`` and in process."""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.agent import Agent
from lrukv_server.config import LogMode, load_config
from lrukv_server.observability import logs, request_id
from lrukv_server.service.base import KVService
from tests.conftest import StartServer
from tests.harness import ServerProcess
from tests.server.faults import MIDSTREAM_FAULT_KEY, FaultyService

TIMEOUT = 10
_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _request(
    server: ServerProcess, method: str, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    conn.request(method, path, body=b"v" if method == "PUT" else None, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    node = Agent(
        load_config(["--grpc-port", "0", "--data-dir", str(tmp_path)], env={}),
        http_addr="127.0.0.1:8080",
    )
    node.start()
    yield node
    node.shutdown()


def test_every_http_response_carries_a_request_id_and_a_sane_one_is_kept(agent: Agent) -> None:
    assert agent.wsgi_app is not None
    client = agent.wsgi_app.test_client()
    made = client.put("/v1/k", data=b"v").headers["X-Request-Id"]
    assert _HEX16.match(made)
    assert client.get("/v1/absent").headers["X-Request-Id"] != made  # one per request
    kept = client.get("/v1/k", headers={"X-Request-Id": "lb-7f3a:1"})
    assert kept.headers["X-Request-Id"] == "lb-7f3a:1"
    for insane in ("has spaces", "x" * 129, "caf\u00e9"):
        replaced = client.get("/v1/k", headers={"X-Request-Id": insane})
        assert _HEX16.match(replaced.headers["X-Request-Id"]), insane


def test_every_grpc_call_carries_a_request_id_errors_too(agent: Agent) -> None:
    assert agent.grpc is not None
    with grpc.insecure_channel(agent.grpc.address) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        _, call = kv.Put.with_call(kv_pb2.PutRequest(key="k", value=b"v"), timeout=TIMEOUT)
        made = dict(call.initial_metadata())["x-request-id"]
        assert isinstance(made, str) and _HEX16.match(made)
        with pytest.raises(grpc.RpcError) as missing:
            kv.Get(
                kv_pb2.GetRequest(key="absent"),
                timeout=TIMEOUT,
                metadata=(("x-request-id", "client-42"),),
            )
        assert dict(missing.value.initial_metadata())["x-request-id"] == "client-42"  # type: ignore[attr-defined]
        stream = kv.GetKeysValues(kv_pb2.GetKeysValuesRequest(), timeout=TIMEOUT)
        assert [item.key for item in stream] == ["k"]
        streamed = dict(stream.initial_metadata())["x-request-id"]
        assert isinstance(streamed, str) and _HEX16.match(streamed)


class _LoggingService:
    """A KVService wrapper that logs one line per put (as an error path would)."""

    def __init__(self, service: KVService) -> None:
        self._service = service

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        logging.getLogger("lrukv_server.probe").warning("putting a key")
        self._service.put(key, value, ttl=ttl)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


def test_a_log_line_made_during_a_request_carries_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = Agent(
        load_config(["--grpc-port", "0", "--data-dir", str(tmp_path)], env={}),
        http_addr="127.0.0.1:8080",
        service_wrapper=_LoggingService,
    )
    node.start()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure_logging(LogMode.PROD, node_id="n7")
    try:
        assert node.wsgi_app is not None and node.grpc is not None
        logging.getLogger("lrukv_server.probe").warning("outside any request")
        client = node.wsgi_app.test_client()
        assert client.put("/v1/k", data=b"v", headers={"X-Request-Id": "req-1"}).status_code == 201
        made = client.put("/v1/k", data=b"v").headers["X-Request-Id"]
        with grpc.insecure_channel(node.grpc.address) as channel:
            kv_pb2_grpc.KVStub(channel).Put(
                kv_pb2.PutRequest(key="k", value=b"v"),
                timeout=TIMEOUT,
                metadata=(("x-request-id", "req-3"),),
            )
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        node.shutdown()
    probes = [line for line in lines if line["logger"] == "lrukv_server.probe"]
    assert [line.get("request_id") for line in probes] == [None, "req-1", made, "req-3"]
    assert all(line["node"] == "n7" and _ISO_UTC.match(line["ts"]) for line in probes)
    assert request_id.current.get() is None  # reset after each request


def test_prod_logs_are_json_lines_with_iso_timestamps(lrukv_server_factory: StartServer) -> None:
    server = lrukv_server_factory("--node-id", "alpha", "-l", "prod")
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.stderr().splitlines()]  # every line is JSON
    assert lines, server.stderr()
    for line in lines:
        assert _ISO_UTC.match(line["ts"]), line
        assert line["node"] == "alpha" and line["level"] and line["logger"]


def test_the_access_log_names_each_requests_id(lrukv_server_factory: StartServer) -> None:
    server = lrukv_server_factory("-l", "development")
    response = _request(server, "PUT", "/v1/k", {"X-Request-Id": "trace-me-1"})
    assert response.status == 201
    assert response.getheader("X-Request-Id") == "trace-me-1"
    made = _request(server, "GET", "/v1/absent").getheader("X-Request-Id")
    assert server.stop() == 0
    access = [line for line in server.stderr().splitlines() if "gunicorn.access" in line]
    assert any('"PUT /v1/k HTTP/1.1" 201' in a and "request_id=trace-me-1" in a for a in access)
    assert any(f"request_id={made}" in a and " 404 " in a for a in access), access


def test_debug_mode_logs_raft_events(lrukv_server_factory: StartServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        raft_addr = f"127.0.0.1:{probe.getsockname()[1]}"
    server = lrukv_server_factory(
        "-l", "debug", "--raft-addr", raft_addr, "--cluster-secret", "s" * 20
    )
    wanted = f"raft: this node ({raft_addr}) is the leader"
    deadline = time.monotonic() + 30
    while wanted not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stop() == 0
    stderr = server.stderr()
    assert wanted in stderr, stderr
    assert " DEBUG " in stderr


def test_a_streamed_bodys_error_line_carries_the_requests_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The NDJSON items stream logs a server failure after the status line is sent."""
    node = Agent(
        load_config(["--grpc-port", "0", "--data-dir", str(tmp_path)], env={}),
        http_addr="127.0.0.1:8080",
        service_wrapper=FaultyService,
    )
    node.start()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure_logging(LogMode.PROD)
    try:
        assert node.wsgi_app is not None
        client = node.wsgi_app.test_client()
        client.put(f"/v1/{MIDSTREAM_FAULT_KEY}", data=b"v")
        client.put("/v1/zzz", data=b"v")
        response = client.get("/v1/util/items", headers={"X-Request-Id": "stream-1"})
        body = response.get_data()
        response.close()
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        node.shutdown()
    assert b'"error"' in body
    errors = [line for line in lines if "streaming" in line["msg"]]
    assert [line.get("request_id") for line in errors] == ["stream-1"], lines
