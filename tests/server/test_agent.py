"""The Agent in process: setup in order, shutdown in reverse, nothing left behind on failure."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.agent import Agent
from lrukv_server.config import ServerConfig, load_config

TIMEOUT = 10


def _config(tmp_path: Path, *args: str) -> ServerConfig:
    return load_config(["--grpc-port", "0", "--data-dir", str(tmp_path), *args], env={})


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    node = Agent(_config(tmp_path), http_addr="127.0.0.1:8080")
    node.start()
    yield node
    node.shutdown()


def test_both_apis_serve_one_service(agent: Agent) -> None:
    assert agent.wsgi_app is not None and agent.grpc is not None
    client = agent.wsgi_app.test_client()
    assert client.put("/v1/k", data=b"v").status_code == 201
    with grpc.insecure_channel(agent.grpc.address) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        assert kv.Get(kv_pb2.GetRequest(key="k"), timeout=TIMEOUT).value == b"v"
        servers = kv.GetServers(kv_pb2.GetServersRequest(), timeout=TIMEOUT).servers
    assert [(s.rpc_addr, s.http_addr) for s in servers] == [(agent.grpc.address, "127.0.0.1:8080")]


def test_shutdown_stops_grpc_closes_the_service_and_is_idempotent(agent: Agent) -> None:
    assert agent.wsgi_app is not None and agent.grpc is not None
    address = agent.grpc.address
    agent.shutdown()
    agent.shutdown()
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as error:
        kv_pb2_grpc.KVStub(channel).Get(kv_pb2.GetRequest(key="k"), timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    response = agent.wsgi_app.test_client().get("/v1/k")
    assert response.status_code == 503  # the service is closed: Unavailable
    _assert_port_free(int(address.rsplit(":", 1)[1]))


def test_begin_shutdown_turns_readiness_off_on_both_apis(agent: Agent) -> None:
    assert agent.wsgi_app is not None and agent.grpc is not None
    client = agent.wsgi_app.test_client()
    assert client.get("/readyz").status_code == 200
    with grpc.insecure_channel(agent.grpc.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="")
        assert health.Check(check, timeout=TIMEOUT).status == health_pb2.HealthCheckResponse.SERVING
        agent.begin_shutdown()
        assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").get_json()["checks"]["server"] == "draining"


def _assert_port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # raises if something still holds it


def test_a_failed_step_releases_what_was_set_up(tmp_path: Path) -> None:
    # The log path is a directory: opening the log fails after gRPC bound its port.
    (tmp_path / "not-a-file").mkdir()
    node = Agent(_config(tmp_path, "-d", "file:not-a-file"), http_addr="127.0.0.1:8080")
    with pytest.raises(Exception, match="not-a-file"):
        node.start()
    assert node.grpc is not None
    assert node.grpc.wait_stopped(TIMEOUT)
    _assert_port_free(node.grpc.port)


def test_with_a_log_the_store_is_replayed_at_start(tmp_path: Path) -> None:
    config = _config(tmp_path, "-d", "file")
    first = Agent(config, http_addr="127.0.0.1:8080")
    first.start()
    assert first.wsgi_app is not None
    first.wsgi_app.test_client().put("/v1/durable", data=b"yes")
    first.shutdown()
    second = Agent(config, http_addr="127.0.0.1:8080")
    second.start()
    try:
        assert second.wsgi_app is not None
        assert "replayed 1 events" in second.store_description
        assert second.wsgi_app.test_client().get("/v1/durable").data == b"yes"
    finally:
        second.shutdown()
