"""Roles against the real ``lrukv-server --auth-policy``, with bearer tokens: from
curl and the SDK over HTTP, and from the SDK and the CLI over gRPC.

Each refusal is checked to change nothing: the value is read back by an admin.
Health endpoints, the OpenAPI document and gRPC health/reflection stay open.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lrukv_client import (
    AsyncClient,
    Client,
    HttpClient,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    connect,
)
from lrukv_client.cli.common import EXIT_UNAVAILABLE
from tests.client.fakes import FakeNode, Fault
from tests.harness import ServerProcess, start_server
from tests.security.policies import Tokens, write_policy

LRUKV = Path(sys.executable).parent / "lrukv"


@dataclass(frozen=True)
class Secured:
    server: ServerProcess
    tokens: Tokens


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("secured")
    tokens = Tokens.fresh()
    policy = write_policy(directory / "policy.toml", tokens)
    server = start_server(directory, "--auth-policy", str(policy))
    try:
        yield Secured(server, tokens)
    finally:
        assert server.stop() == 0, server.output()


def curl(*args: str) -> tuple[int, dict[str, str], str]:
    """(status, headers lower-cased, body) of one curl request."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "20", *args],
        capture_output=True,
        timeout=30,
        check=True,
    )
    head, _, body = result.stdout.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def bearer(token: str) -> str:
    return f"Authorization: Bearer {token}"


# -- HTTP, from curl --------------------------------------------------------------------


def test_curl_without_a_token_gets_401_with_a_bearer_challenge(secured: Secured) -> None:
    status, headers, body = curl(secured.server.http_url + "/v1/curl-a")
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="lrukv"'
    assert json.loads(body)["error"]["code"] == "unauthenticated"


def test_curl_reader_can_get_but_not_put_and_the_value_is_unchanged(secured: Secured) -> None:
    url = secured.server.http_url + "/v1/curl-b"
    tokens = secured.tokens
    assert curl("-X", "PUT", "-d", "original", "-H", bearer(tokens.writer), url)[0] == 201
    assert curl("-H", bearer(tokens.reader), url)[::2] == (200, "original")
    status, _, body = curl("-X", "PUT", "-d", "changed", "-H", bearer(tokens.reader), url)
    assert status == 403
    assert json.loads(body) == {
        "error": {
            "code": "permission_denied",
            "message": "subject 'app-reader' has role reader; PUT /v1/curl-b needs writer",
        }
    }
    assert tokens.reader not in body
    assert curl("-X", "DELETE", "-H", bearer(tokens.reader), url)[0] == 403
    assert curl("-H", bearer(tokens.admin), url)[::2] == (200, "original")


def test_curl_with_an_unknown_token_gets_401_naming_no_token(secured: Secured) -> None:
    url = secured.server.http_url + "/v1/curl-c"
    status, headers, body = curl("-X", "PUT", "-d", "x", "-H", bearer(secured.tokens.unknown), url)
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="lrukv", error="invalid_token"'
    assert "the bearer token is not known" in body
    assert secured.tokens.unknown not in body
    assert curl("-H", bearer(secured.tokens.admin), url)[0] == 404  # nothing was stored


def test_health_and_the_openapi_document_stay_open(secured: Secured) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert curl(secured.server.http_url + path)[0] == 200, path


# -- HTTP, from the SDK -----------------------------------------------------------------


def test_http_sdk_reader_writer_and_missing_token(secured: Secured) -> None:
    tokens, url = secured.tokens, secured.server.http_url
    with HttpClient(url, token=tokens.writer) as writer:
        writer.put("http-a", b"original")
    with HttpClient(url, token=tokens.reader) as reader:
        assert reader.get("http-a") == b"original"
        listed = reader.keys()
        assert "http-a" in listed
        assert reader.stats().size >= 1
        with pytest.raises(PermissionDenied) as denied:
            reader.put("http-a", b"changed")
        assert denied.value.error_code == "permission_denied"
        assert denied.value.attempts == 1  # a refusal is not retried
        # The refused PUT's body was never read; the kept-alive connection still works.
        with pytest.raises(PermissionDenied):
            reader.put("http-a", b"x" * 200_000)
        assert reader.get("http-a") == b"original"
    with HttpClient(url) as anonymous, pytest.raises(Unauthenticated):
        anonymous.get("http-a")
    with HttpClient(url, token=tokens.unknown) as stranger, pytest.raises(Unauthenticated):
        stranger.get("http-a")
    with HttpClient(url, token=tokens.admin) as admin:
        assert admin.get("http-a") == b"original"


# -- gRPC, from the SDK -----------------------------------------------------------------


def test_grpc_reader_can_get_but_not_put_and_the_value_is_unchanged(secured: Secured) -> None:
    tokens, addr = secured.tokens, secured.server.rpc_addr
    with Client(addr, token=tokens.writer) as writer:
        writer.put("grpc-a", b"original")
    with Client(addr, token=tokens.reader) as reader:
        assert reader.get("grpc-a") == b"original"
        assert dict(reader.items())["grpc-a"] == b"original"
        assert reader.ttl("grpc-a") is None
        with pytest.raises(PermissionDenied, match="subject 'app-reader' has role reader"):
            reader.put("grpc-a", b"changed")
        with pytest.raises(PermissionDenied, match="Delete needs writer"):
            reader.delete("grpc-a")
    with Client(addr, token=tokens.admin) as admin:
        assert admin.get("grpc-a") == b"original"


def test_grpc_writer_can_put_but_not_change_membership(secured: Secured) -> None:
    tokens, addr = secured.tokens, secured.server.rpc_addr
    with Client(addr, token=tokens.writer) as writer:
        writer.put("grpc-b", b"v")
        assert writer.delete("grpc-b")
        with pytest.raises(PermissionDenied, match="subject 'app-writer' has role writer; "
                           "AddMember needs admin"):  # fmt: skip
            writer.add_member("127.0.0.1:7001")
    # Past authorization: a single node answers that it is not a cluster.
    admin = Client(addr, token=tokens.admin)
    with admin, pytest.raises(InvalidArgument, match="cluster"):
        admin.add_member("127.0.0.1:7001")


def test_grpc_without_a_token_or_with_an_unknown_one_is_unauthenticated(secured: Secured) -> None:
    addr = secured.server.rpc_addr
    with Client(addr) as anonymous:
        with pytest.raises(Unauthenticated) as caught:
            anonymous.put("grpc-c", b"x")
        assert caught.value.error_code == "unauthenticated"
        with pytest.raises(Unauthenticated):
            list(anonymous.items())
    with Client(addr, token=secured.tokens.unknown) as stranger:
        with pytest.raises(Unauthenticated, match="not known") as caught:
            stranger.get("grpc-c")
        assert secured.tokens.unknown not in str(caught.value)
    with Client(addr, token=secured.tokens.admin) as admin:
        assert not admin.exists("grpc-c")


def test_asyncio_client_sends_its_token(secured: Secured) -> None:
    tokens, addr = secured.tokens, secured.server.rpc_addr

    async def scenario() -> None:
        async with AsyncClient(addr, token=tokens.writer) as writer:
            await writer.put("aio-a", b"original")
            assert [k async for k, _ in writer.items() if k == "aio-a"] == ["aio-a"]
        async with AsyncClient(addr, token=tokens.reader) as reader:
            assert await reader.get("aio-a") == b"original"
            with pytest.raises(PermissionDenied):
                await reader.put("aio-a", b"changed")
        async with AsyncClient(addr) as anonymous:
            with pytest.raises(Unauthenticated):
                await anonymous.get("aio-a")

    asyncio.run(scenario())
    with connect(addr, token=tokens.admin) as admin:
        assert admin.get("aio-a") == b"original"


def test_grpc_health_and_reflection_stay_open(secured: Secured) -> None:
    with grpc.insecure_channel(secured.server.rpc_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="lrukv.v1.KV"), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = {s.name for a in answers for s in a.list_services_response.service}
    assert "lrukv.v1.KV" in names


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_the_token_follows_a_redirect_to_the_leader(secured: Secured, transport: str) -> None:
    # A follower (a fake node) names the secured server as the leader: the write
    # arrives there only if the client sends its token to the new target too.
    tokens = secured.tokens
    key = f"redirected-{transport}"
    with FakeNode("follower") as follower:
        follower.fail("Put", Fault(leader=secured.server))
        seed = follower.rpc_addr if transport == "grpc" else f"http://{follower.http_addr}"
        with connect(seed, token=tokens.writer) as writer:
            writer.put(key, b"via the leader")
        assert follower.count("Put") == 1
    with Client(secured.server.rpc_addr, token=tokens.admin) as admin:
        assert admin.get(key) == b"via the leader"


# -- the CLI ----------------------------------------------------------------------------


def lrukv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LRUKV_")}
    environ.update(env)
    return subprocess.run(
        [str(LRUKV), *args], capture_output=True, env=environ, timeout=60, check=False
    )


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_cli_token_from_the_flag_or_the_environment(secured: Secured, transport: str) -> None:
    server = secured.server.rpc_addr if transport == "grpc" else secured.server.http_url
    tokens = secured.tokens
    env = {"LRUKV_SERVER": server}
    key = f"cli-{transport}"
    assert lrukv("--token", tokens.writer, "put", key, "original", env=env).returncode == 0
    read = lrukv("get", key, env={**env, "LRUKV_TOKEN": tokens.reader})
    assert (read.returncode, read.stdout) == (0, b"original")

    denied = lrukv("put", key, "changed", env={**env, "LRUKV_TOKEN": tokens.reader})
    assert denied.returncode == EXIT_UNAVAILABLE == 3
    lines = denied.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrukv: error: permission denied: "), lines
    assert "needs writer" in lines[0]
    assert tokens.reader not in lines[0]

    anonymous = lrukv("get", key, env=env)
    assert anonymous.returncode == 3
    assert anonymous.stderr.decode().startswith("lrukv: error: unauthenticated: ")

    after = lrukv("--token", tokens.admin, "get", key, env=env)
    assert after.stdout == b"original"


def test_cli_refuses_a_token_that_cannot_be_a_header(secured: Secured) -> None:
    result = lrukv(
        "--token", "two words", "get", "k", env={"LRUKV_SERVER": secured.server.rpc_addr}
    )
    assert result.returncode == 2
    assert b"bearer token" in result.stderr
