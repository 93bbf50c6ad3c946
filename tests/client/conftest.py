"""Fixtures of the client tests: fake nodes, and clients of either transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lrukv_client import Client, HttpClient, Retry
from lrukv_client.backoff import NoBackoff
from tests.client.fakes import FakeNode

AnyClient = Client | HttpClient
MakeClient = Callable[..., AnyClient]


@pytest.fixture
def fake() -> Iterator[FakeNode]:
    with FakeNode("fake-1") as node:
        yield node


@pytest.fixture
def fake_pair() -> Iterator[tuple[FakeNode, FakeNode]]:
    """A follower and a leader that know each other."""
    with FakeNode("follower") as follower, FakeNode("leader") as leader:
        for node in (follower, leader):
            node.cluster = [follower, leader]
            node.leader = leader
        yield follower, leader


def fast_retry(**kwargs: Any) -> Retry:
    """A retry policy that does not sleep, so fault tests run in milliseconds."""
    kwargs.setdefault("deadline", 5.0)
    return Retry(NoBackoff(), **kwargs)


@pytest.fixture(params=["grpc", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(transport: str) -> Iterator[MakeClient]:
    """``make_client(*nodes, **kwargs)``: a client of the parametrized transport whose
    seeds are the nodes' addresses; closed after the test."""
    made: list[AnyClient] = []

    def make(*nodes: FakeNode, **kwargs: Any) -> AnyClient:
        kwargs.setdefault("retry", fast_retry())
        client: AnyClient
        if transport == "grpc":
            client = Client([node.rpc_addr for node in nodes], **kwargs)
        else:
            client = HttpClient([node.http_addr for node in nodes], **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
