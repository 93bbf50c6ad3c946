"""``lrukv-server -m``: the real server's /metrics after real traffic over both
transports; the series a user graphs and alerts on have the values the traffic
implies, and the output passes ``promtool check metrics``."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import grpc
import pytest

from lrukv_client import Client, KeyNotFound
from tests.conftest import StartServer
from tests.observability.promtools import fetch_metrics, parse, require_tool, scrape
from tests.replication.cluster import free_port, http


def _traffic(server_url: str, rpc_addr: str) -> None:
    """5 HTTP puts into a 3-item store (2 capacity evictions), a miss and a hit
    over HTTP, a delete; over gRPC a put, a miss and a hit."""
    for number in range(1, 6):
        code, body, _ = http("PUT", f"{server_url}/v1/k{number}", b"v")
        assert code == 201, body
    assert http("GET", f"{server_url}/v1/nope")[0] == 404
    assert http("GET", f"{server_url}/v1/k5")[0] == 200
    assert http("DELETE", f"{server_url}/v1/k5")[0] == 204
    with Client(rpc_addr, timeout=10) as kv:
        kv.put("g1", b"v")
        with pytest.raises(KeyNotFound):
            kv.get("absent")
        assert kv.get("g1") == b"v"


def test_metrics_count_requests_by_transport_and_code_and_read_the_store(
    lrukv_server_factory: StartServer,
) -> None:
    server = lrukv_server_factory("-m", "-s", "1", "-i", "3", "-d", "file")
    _traffic(server.http_url, server.rpc_addr)
    text, content_type = fetch_metrics(server.http_url + "/metrics")
    assert content_type.startswith("text/plain; version=0.0.4")
    m = parse(text)

    def http_requests(method: str, code: str) -> float:
        return m.value("lrukv_requests_total", transport="http", method=method, route="key",
                       code=code)  # fmt: skip

    def grpc_requests(method: str, code: str) -> float:
        return m.value("lrukv_requests_total", transport="grpc", method=method,
                       route="lrukv.v1.KV", code=code)  # fmt: skip

    assert http_requests("PUT", "201") == 5
    assert http_requests("GET", "404") == 1
    assert http_requests("GET", "200") == 1
    assert http_requests("DELETE", "204") == 1
    assert grpc_requests("Put", "OK") == 1
    assert grpc_requests("Get", "NOT_FOUND") == 1
    assert grpc_requests("Get", "OK") == 1
    # every request is in the latency histogram too, and +Inf holds them all
    put_latency = {"transport": "http", "method": "PUT", "route": "key"}
    assert m.value("lrukv_request_duration_seconds_count", **put_latency) == 5
    assert m.value("lrukv_request_duration_seconds_bucket", le="+Inf", **put_latency) == 5
    assert m.value("lrukv_request_duration_seconds_sum", **put_latency) > 0
    grpc_get = {"transport": "grpc", "method": "Get", "route": "lrukv.v1.KV"}
    assert m.value("lrukv_request_duration_seconds_count", **grpc_get) == 2

    # the store: k3, k4 and g1 are left; k1 and k2 were evicted for capacity
    assert m.value("lrukv_store_items") == 3
    assert m.value("lrukv_store_capacity_items") == 3
    assert m.value("lrukv_store_shard_items", shard="0") == 3
    assert m.value("lrukv_store_bytes") == 3 * (2 + 1)
    assert m.value("lrukv_store_evictions_total", cause="capacity") == 2
    assert m.value("lrukv_store_evictions_total", cause="expired") == 0
    assert m.value("lrukv_store_hits_total") == 2
    assert m.value("lrukv_store_misses_total") == 2

    # the transaction log: CONFIG, 5 puts, 1 delete, 1 put; fsync=always and one
    # writer at a time, so one fsync each
    assert m.value("lrukv_txlog_appends_total", backend="file") == 8
    assert m.value("lrukv_txlog_fsyncs_total", backend="file") == 8
    assert m.value("lrukv_txlog_errors_total", backend="file") == 0
    assert m.value("lrukv_txlog_queue_depth", backend="file") == 0
    assert m.value("lrukv_txlog_healthy", backend="file") == 1
    assert m.value("lrukv_txlog_last_sequence", backend="file") == 8

    assert m.types["lrukv_requests"] == "counter"
    assert m.types["lrukv_request_duration_seconds"] == "histogram"
    assert m.get("process_resident_memory_bytes") is not None  # the standard process metrics


def test_promtool_accepts_the_real_output(lrukv_server_factory: StartServer) -> None:
    promtool = require_tool("promtool")
    server = lrukv_server_factory("-m", "-d", "file", "--max-bytes", "1MiB")
    _traffic(server.http_url, server.rpc_addr)
    text, _ = fetch_metrics(server.http_url + "/metrics")
    assert "lrukv_txlog_appends_total" in text and "lrukv_store_max_bytes" in text
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # promtool prints lint problems on stdout or stderr and exits 1 on any
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result


def test_labels_never_hold_keys_or_made_up_methods(lrukv_server_factory: StartServer) -> None:
    server = lrukv_server_factory("-m")
    url = server.http_url
    assert http("PUT", f"{url}/v1/secret-key-1", b"v")[0] == 201
    assert http("PUT", f"{url}/v1/util%2Fsecret-key-2", b"v")[0] == 201  # the key util/...
    assert http("GET", f"{url}/v1/util/ttl/secret-key-1")[0] == 200
    assert http("GET", f"{url}/v1/util/secret-key-3")[0] == 404
    assert http("BREWSECRET", f"{url}/v1/secret-key-4")[0] == 405
    assert http("GET", f"{url}/secret-key-5")[0] == 404
    with grpc.insecure_channel(server.rpc_addr) as channel:
        call = channel.unary_unary("/lrukv.v1.KV/SecretMethod", None, None)
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    m = scrape(url)
    assert "secret" not in m.text.lower()
    key_puts = m.value("lrukv_requests_total", transport="http", method="PUT", route="key",
                       code="201")  # fmt: skip
    assert key_puts == 2
    assert m.value("lrukv_requests_total", transport="http", method="GET", route="util/ttl",
                   code="200") == 1  # fmt: skip
    assert m.value("lrukv_requests_total", transport="http", method="GET", route="util/other",
                   code="404") == 1  # fmt: skip
    assert m.value("lrukv_requests_total", transport="http", method="other", route="key",
                   code="405") == 1  # fmt: skip
    assert m.value("lrukv_requests_total", transport="http", method="GET", route="other",
                   code="404") == 1  # fmt: skip
    assert m.value("lrukv_requests_total", transport="grpc", method="unknown", route="unknown",
                   code="UNIMPLEMENTED") == 1  # fmt: skip


def test_without_m_there_is_no_metrics_endpoint(lrukv_server_factory: StartServer) -> None:
    server = lrukv_server_factory()
    code, body, _ = http("GET", f"{server.http_url}/metrics")
    assert code == 404, body
    assert "lrukv-server: warning" not in server.stderr()


def test_metrics_endpoint_answers_head_and_refuses_writes(
    lrukv_server_factory: StartServer,
) -> None:
    server = lrukv_server_factory("-m")
    code, body, headers = http("HEAD", f"{server.http_url}/metrics")
    assert (code, body) == (200, b"")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "body bytes on a no-body response" not in server.stderr()
    code, _, headers = http("PUT", f"{server.http_url}/metrics", b"x")
    assert code == 405
    assert headers["Allow"] == "GET, HEAD"


def test_a_separate_metrics_port_serves_the_same_metrics_and_closes_at_shutdown(
    lrukv_server_factory: StartServer, tmp_path: Path
) -> None:
    port = free_port()
    server = lrukv_server_factory("-m", "--metrics-port", str(port))
    assert http("PUT", f"{server.http_url}/v1/k", b"v")[0] == 201
    m = scrape(f"http://127.0.0.1:{port}")
    assert m.value("lrukv_requests_total", transport="http", method="PUT", route="key",
                   code="201") == 1  # fmt: skip
    assert m.value("lrukv_store_items") == 1
    assert server.stop() == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_taken_metrics_port_is_one_clear_error(
    lrukv_server_factory: StartServer, tmp_path: Path
) -> None:
    from tests.harness import ServerStartError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ServerStartError, match=f"cannot listen for metrics on 127.0.0.1:{port}"
        ):
            lrukv_server_factory("-m", "--metrics-port", str(port), ready_timeout=20)


def test_streams_are_counted_and_timed_to_their_end(lrukv_server_factory: StartServer) -> None:
    server = lrukv_server_factory("-m")
    for key in ("a", "b", "c"):
        assert http("PUT", f"{server.http_url}/v1/{key}", b"v")[0] == 201
    code, body, _ = http("GET", f"{server.http_url}/v1/util/items")
    assert code == 200 and body.count(b"\n") == 3
    with Client(server.rpc_addr, timeout=10) as kv:
        assert sorted(key for key, _ in kv.items()) == ["a", "b", "c"]
    m = scrape(server.http_url)
    assert m.value("lrukv_requests_total", transport="http", method="GET", route="util/items",
                   code="200") == 1  # fmt: skip
    assert m.value("lrukv_request_duration_seconds_count", transport="http", method="GET",
                   route="util/items") == 1  # fmt: skip
    assert m.value("lrukv_requests_total", transport="grpc", method="GetKeysValues",
                   route="lrukv.v1.KV", code="OK") == 1  # fmt: skip
    assert m.value("lrukv_request_duration_seconds_count", transport="grpc",
                   method="GetKeysValues", route="lrukv.v1.KV") == 1  # fmt: skip


def test_a_stream_the_client_cancels_is_counted_as_cancelled(
    lrukv_server_factory: StartServer,
) -> None:
    from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
    from tests.replication.cluster import wait_until

    server = lrukv_server_factory("-m")
    with Client(server.rpc_addr, timeout=10) as kv:
        for number in range(300):
            kv.put(f"k{number}", b"v" * 1000)
    with grpc.insecure_channel(server.rpc_addr) as channel:
        stream = kv_pb2_grpc.KVStub(channel).GetKeysValues(kv_pb2.GetKeysValuesRequest())
        next(iter(stream))
        stream.cancel()  # type: ignore[no-untyped-call]

    def cancelled() -> float | None:
        return scrape(server.http_url).get("lrukv_requests_total", transport="grpc",
                                           method="GetKeysValues", route="lrukv.v1.KV",
                                           code="CANCELLED")  # fmt: skip

    assert wait_until("the cancelled stream to be counted", cancelled, timeout=20) == 1
