"""Server addresses are checked before anything is dialled, get lrukv's port when
they have none, and a server that is not running is reported at once (while a
node that answered before is waited for: tests/client/test_clients_fake.py)."""

from __future__ import annotations

import socket
import time

import pytest
from typer.testing import CliRunner

from lrukv_client import (
    AsyncClient,
    Client,
    HttpClient,
    InvalidArgument,
    Retry,
    Unavailable,
    Unreachable,
    connect,
)
from lrukv_client.cli import app
from tests.client.conftest import MakeClient
from tests.client.fakes import FakeNode

runner = CliRunner()
CLEAN_ENV = {"LRUKV_SERVER": None, "LRUKV_TRANSPORT": None, "LRUKV_DEBUG": None}

BAD_ADDRESSES = [
    "127.0.0.1:99999",  # grpc would dial 99999 mod 65536
    "127.0.0.1:0",
    "not a host:xx",  # used to be retried 14 times, then "unavailable"
    "localhost:xx",
    "localhost:",
    "::1",  # an IPv6 address needs brackets
    "[::1",
    "[not-v6]:1",
    "user@host:1",
]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_address_without_a_port_gets_lrukvs_port() -> None:
    assert Client("localhost").server == "localhost:50051"
    assert Client("[::1]").server == "[::1]:50051"
    assert HttpClient("localhost").server == "localhost:8080"
    assert HttpClient("http://localhost").server == "localhost:8080"
    assert HttpClient("http://localhost:9000/").server == "localhost:9000"
    assert connect("localhost").server == "localhost:50051"
    assert connect("localhost", transport="http").server == "localhost:8080"
    assert Client("a, b:7").server == "a:50051"


@pytest.mark.parametrize("address", BAD_ADDRESSES)
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_bad_address_is_refused_before_dialling(address: str, transport: str) -> None:
    with pytest.raises(InvalidArgument, match="bad server address"):
        connect(address, transport=transport)


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_the_cli_refuses_a_bad_address_as_a_usage_error(address: str) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["-s", address, "--timeout", "60", "get", "k"], env=CLEAN_ENV)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrukv: error: bad server address")
    assert time.monotonic() - started < 30  # no retries until the 60 s deadline


def test_a_server_that_is_not_running_fails_at_once(make_client: MakeClient) -> None:
    # The deadline is long; a refused connection from a node the client never
    # reached is reported after one attempt per seed, not after the deadline.
    node = FakeNode()
    node.rpc_addr = node.http_addr = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        make_client(node, retry=Retry(deadline=60.0)).get("k")
    assert time.monotonic() - started < 30  # one attempt, not the 60 s deadline
    assert isinstance(info.value, Unavailable)
    assert info.value.attempts == 1


def test_every_seed_is_tried_once_before_giving_up(make_client: MakeClient) -> None:
    nodes = [FakeNode(f"n{i}") for i in range(2)]
    for node in nodes:
        node.rpc_addr = node.http_addr = f"127.0.0.1:{closed_port()}"
    with pytest.raises(Unreachable) as info:
        make_client(*nodes, retry=Retry(deadline=30.0)).get("k")
    assert info.value.attempts == 2


def test_a_down_seed_is_skipped_for_one_that_answers(
    fake: FakeNode, make_client: MakeClient
) -> None:
    down = FakeNode("down")
    down.rpc_addr = down.http_addr = f"127.0.0.1:{closed_port()}"
    fake.put("k", b"v", None)
    assert make_client(down, fake, retry=Retry(deadline=30.0)).get("k") == b"v"


def test_wait_for_server_keeps_retrying_a_refused_connection(make_client: MakeClient) -> None:
    node = FakeNode()
    node.rpc_addr = node.http_addr = f"127.0.0.1:{closed_port()}"
    with pytest.raises(Unavailable) as info:
        make_client(node, retry=Retry(deadline=0.5, wait_for_server=True)).get("k")
    assert info.value.attempts > 1


def test_the_asyncio_client_fails_at_once_too() -> None:
    import asyncio

    async def scenario() -> None:
        async with AsyncClient(f"127.0.0.1:{closed_port()}", retry=Retry(deadline=60.0)) as kv:
            with pytest.raises(Unreachable):
                await kv.get("k")

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_the_cli_reports_a_server_that_is_not_running_at_once(transport: str) -> None:
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = runner.invoke(
        app, ["-s", address, "-t", transport, "--timeout", "60", "get", "k"], env=CLEAN_ENV
    )
    assert result.exit_code == 3, result.output
    assert time.monotonic() - started < 30  # it used to take the whole --timeout
    (line,) = result.stderr.splitlines()
    assert line.startswith("lrukv: error: unavailable:") and "refused" in line.lower()
