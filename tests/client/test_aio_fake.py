"""AsyncClient against the fake node: the same contract as the blocking client."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from lrukv_client import (
    AsyncClient,
    ConstantBackoff,
    KeyNotFound,
    PermissionDenied,
    Retry,
    ServerInfo,
    TooManyRedirects,
    Unavailable,
)
from tests.client.conftest import fast_retry
from tests.client.fakes import FakeNode, Fault


def test_the_api_round_trips(fake: FakeNode) -> None:
    async def scenario() -> None:
        async with AsyncClient(fake.rpc_addr, retry=fast_retry()) as kv:
            await kv.put("k", b"\x00binary", ttl=3)
            await kv.put("s", "text")
            assert await kv.get("k") == b"\x00binary"
            assert sorted(await kv.keys()) == ["k", "s"]
            assert [pair async for pair in kv.items()] == [("k", b"\x00binary"), ("s", b"text")]
            assert await kv.delete("k") is True
            assert await kv.delete("k") is False
            with pytest.raises(KeyNotFound):
                await kv.get("k")
            assert await kv.servers() == [ServerInfo("fake-1", fake.rpc_addr, fake.http_addr, True)]

    asyncio.run(scenario())
    assert fake.ttls == {"s": None}


def test_retries_and_redirects(fake_pair: tuple[FakeNode, FakeNode]) -> None:
    follower, leader = fake_pair
    follower.fail("Put", Fault(leader=leader))
    leader.fail("Get", Fault(grpc.StatusCode.UNAVAILABLE), times=2)
    leader.fail("GetKeys", Fault(grpc.StatusCode.PERMISSION_DENIED, "no"), times=2)

    async def scenario() -> None:
        async with AsyncClient(follower.rpc_addr, retry=fast_retry()) as kv:
            await kv.put("k", b"v")
            assert await kv.get("k") == b"v"
            with pytest.raises(PermissionDenied):
                await kv.keys()

    asyncio.run(scenario())
    # After each UNAVAILABLE from the leader the client asks its seed again, which
    # points it back to the leader; PERMISSION_DENIED is final at once.
    assert follower.calls == ["Put", "Get", "Get"]
    assert leader.calls == ["Put", "Get", "Get", "Get", "GetKeys"]


def test_a_redirect_loop_is_bounded(fake_pair: tuple[FakeNode, FakeNode]) -> None:
    a, b = fake_pair
    a.fail("Get", Fault(leader=b), times=10)
    b.fail("Get", Fault(leader=a), times=10)

    async def scenario() -> None:
        async with AsyncClient(a.rpc_addr, retry=fast_retry(max_redirects=2)) as kv:
            with pytest.raises(TooManyRedirects):
                await kv.get("k")

    asyncio.run(scenario())
    assert a.count("Get") + b.count("Get") == 3


def test_items_can_stop_early_and_a_stopped_server_is_unavailable(fake: FakeNode) -> None:
    for i in range(30):
        fake.put(f"k{i:02}", b"v", None)

    async def scenario() -> None:
        kv = AsyncClient(fake.rpc_addr, retry=Retry(ConstantBackoff(0.05), deadline=0.5))
        try:
            async with kv.items() as items:
                assert await items.__anext__() == ("k00", b"v")
            assert [pair async for pair in items] == []
            assert await kv.get("k01") == b"v"
            fake.stop()
            with pytest.raises(Unavailable) as info:
                await kv.get("k01")
            assert info.value.attempts > 1
        finally:
            await kv.close()

    asyncio.run(scenario())
