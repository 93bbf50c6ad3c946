"""A value over the limit gets lrukv's own message over gRPC, as over HTTP.

Before the fix the server took requests only up to the value limit plus the key
and 16 KiB, so a value twice the limit was refused by grpcio itself and the
``lrukv`` CLI printed "Received message larger than max (2000010 vs. 1065984)"
where HTTP says "value is 2000000 bytes; the limit is 1048576". Now the server
takes requests well over the limit and refuses the value itself, and a value
even beyond that (refused by grpcio) is reported by the SDK as the server's
request limit, as ValueTooLarge.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lrukv_client import Client, HttpClient, ServerError, Unavailable, ValueTooLarge
from lrukv_client._grpc_common import error_from_status
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from lrukv_server.api.grpc_server import max_request_bytes
from tests.harness import ServerProcess, start_server
from tests.server.grpc_util import error_code

LIMIT = 1 << 20  # the default --max-value-bytes
KEY_LIMIT = 1024  # the default --max-key-bytes
TWICE = 2_000_000  # the value of the issue
FAR_OVER = max_request_bytes(LIMIT, KEY_LIMIT) + 1000  # grpcio refuses this itself
TIMEOUT = 30
LRUKV = Path(sys.executable).parent / "lrukv"
EXIT_USAGE = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("limits"))
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


def _cli_put(server: str, value_file: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    return subprocess.run(
        [str(LRUKV), "-s", server, "put", "big", "--file", str(value_file)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_server_refuses_the_value_with_lrukvs_code_and_message(
    server: ServerProcess,
) -> None:
    with grpc.insecure_channel(server.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            kv.Put(kv_pb2.PutRequest(key="big", value=b"x" * TWICE), timeout=TIMEOUT)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_code(error.value) == "value_too_large"
        assert error.value.details() == f"value is {TWICE} bytes; the limit is {LIMIT}"
        # One byte under the limit is fine; the server still serves.
        kv.Put(kv_pb2.PutRequest(key="big", value=b"x" * LIMIT), timeout=TIMEOUT)
        assert len(kv.Get(kv_pb2.GetRequest(key="big"), timeout=TIMEOUT).value) == LIMIT


def test_the_sdk_gives_the_same_message_over_grpc_and_http(server: ServerProcess) -> None:
    value = b"x" * TWICE
    with (
        Client(server.rpc_addr, timeout=TIMEOUT) as client,
        pytest.raises(ValueTooLarge) as over_grpc,
    ):
        client.put("big", value)
    with (
        HttpClient(server.http_url, timeout=TIMEOUT) as http,
        pytest.raises(ValueTooLarge) as over_http,
    ):
        http.put("big", value)
    expected = f"value is {TWICE} bytes; the limit is {LIMIT}"
    assert str(over_grpc.value) == f"{server.rpc_addr}: {expected}"
    assert str(over_http.value).endswith(f": {expected}")
    assert over_grpc.value.error_code == over_http.value.error_code == "value_too_large"


def test_the_sdk_reports_the_servers_request_limit(server: ServerProcess) -> None:
    with Client(server.rpc_addr, timeout=TIMEOUT) as client:
        with pytest.raises(ValueTooLarge) as error:
            client.put("big", b"x" * FAR_OVER)
        message = str(error.value)
        assert "Received message larger than max" not in message
        assert f"the request is {FAR_OVER + 10} bytes" in message
        limit = max_request_bytes(LIMIT, KEY_LIMIT)
        assert f"the server takes gRPC requests of at most {limit} bytes" in message
        client.put("after", b"fine")
        assert client.get("after") == b"fine"


def test_the_cli_says_what_http_says(server: ServerProcess, tmp_path: Path) -> None:
    value_file = tmp_path / "value"
    value_file.write_bytes(b"x" * TWICE)
    over_grpc = _cli_put(server.rpc_addr, value_file)
    over_http = _cli_put(server.http_url, value_file)
    expected = f"value is {TWICE} bytes; the limit is {LIMIT}"
    for result in (over_grpc, over_http):
        assert result.returncode == EXIT_USAGE, result.stderr
        line = result.stderr.strip()
        assert line.startswith("lrukv: error: ") and line.endswith(expected), line


def test_the_cli_reports_the_servers_request_limit(server: ServerProcess, tmp_path: Path) -> None:
    value_file = tmp_path / "value"
    value_file.write_bytes(b"x" * FAR_OVER)
    result = _cli_put(server.rpc_addr, value_file)
    assert result.returncode == EXIT_USAGE, result.stderr
    line = result.stderr.strip()
    assert "Received message larger than max" not in line
    assert line.startswith(f"lrukv: error: {server.rpc_addr}: value too large: "), line
    assert f"the request is {FAR_OVER + 10} bytes" in line, line


@pytest.mark.parametrize(
    ("details", "metadata", "error", "text"),
    [
        ("value is 9 bytes; the limit is 8", [("lrukv-error-code", "value_too_large")],
         ValueTooLarge, "t: value is 9 bytes; the limit is 8"),
        ("this server runs at most 4 item streams", [("lrukv-error-code", "too_many_streams")],
         Unavailable, "t: this server runs at most 4 item streams"),
        ("SERVER: Received message larger than max (99 vs. 50)", [],
         ValueTooLarge, "the request is 99 bytes and the server takes gRPC requests of at most 50"),
        (f"Received message larger than max (300000000 vs. {256 * 1024 * 1024})", [],
         ServerError, "the answer is 300000000 bytes; this client takes at most 268435456"),
        ("Sent message larger than max (99 vs. 50)", [],
         ValueTooLarge, "the request is 99 bytes; this client sends at most 50"),
    ],
)  # fmt: skip
def test_resource_exhausted_becomes_the_error_that_says_which_limit(
    details: str, metadata: list[tuple[str, str]], error: type[Exception], text: str
) -> None:
    got = error_from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, details, metadata, target="t")
    assert type(got) is error
    assert text in str(got)
