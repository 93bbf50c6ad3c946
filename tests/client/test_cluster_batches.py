"""The SDK's batches and pipelines through a follower of a real three-node
cluster, over both transports: what a follower takes is on every replica."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lrukv_client import Client, HttpClient
from tests.client.conftest import AnyClient
from tests.replication.cluster import Cluster, Node, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), size=3, extra_args=("-i", "10000"))
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop_all()


def _follower(cluster: Cluster) -> Node:
    leader = cluster.wait_for_leader()
    return next(node for node in cluster.running() if node is not leader)


def _client(transport: str, node: Node) -> AnyClient:
    if transport == "grpc":
        return Client(node.up.rpc_addr, timeout=15)
    return HttpClient(node.up.http_addr, timeout=15)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_batches_through_a_follower_reach_every_replica(cluster: Cluster, transport: str) -> None:
    prefix = f"cb-{transport}/"
    items = {f"{prefix}{i}": bytes([i]) * 10 for i in range(250)}
    with _client(transport, _follower(cluster)) as kv:
        kv.batch_size = 100  # three requests
        assert all(r.ok for r in kv.put_many(items))
        assert kv.get_many(items) == items
        deleted = kv.delete_many([f"{prefix}0", f"{prefix}absent"])
        assert [r.existed for r in deleted] == [True, False]
        with kv.pipeline(window=8) as p:
            futures = [p.put(f"{prefix}p{i}", b"piped") for i in range(20)]
        assert all(f.result() is None for f in futures)
    expected = {k: v for k, v in items.items() if k != f"{prefix}0"}
    expected.update({f"{prefix}p{i}": b"piped" for i in range(20)})
    for node in cluster.running():
        with Client(node.up.rpc_addr, timeout=15) as replica:

            def agrees(replica: Client = replica) -> bool:
                return replica.get_many(expected, consistency="stale") == expected

            wait_until(f"{node.name} to apply the batches", agrees)
