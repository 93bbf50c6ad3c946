"""Batches on a real three-node cluster of ``lrukv-server``: a batch of writes is
ONE Raft command, and reads in a batch honour the consistency level."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc
from tests.replication.cluster import Cluster, Node, http, wait_until

pytestmark = pytest.mark.slow

TIMEOUT = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("batch-cluster")), size=3)
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop_all()


def _quiet_index(cluster: Cluster) -> int:
    """The applied index once the cluster has settled (every member announced,
    nothing applied for a second), the same on every node."""
    last: list[int] = []

    def settled() -> int | None:
        indexes = {n.status()["applied_index"] for n in cluster.running()}
        last.append(min(indexes))
        if len(indexes) != 1 or len(last) < 20 or len(set(last[-20:])) != 1:
            return None
        return last[-1]

    return wait_until("the cluster to settle", settled, timeout=60)


def _applied_everywhere(cluster: Cluster, index: int) -> None:
    wait_until(
        f"every node to apply index {index}",
        lambda: all(n.status()["applied_index"] >= index for n in cluster.running()),
    )


def _follower(cluster: Cluster) -> Node:
    leader = cluster.wait_for_leader()
    return next(n for n in cluster.running() if n is not leader)


def test_a_put_many_through_a_follower_is_one_raft_command_on_every_replica(
    cluster: Cluster,
) -> None:
    follower = _follower(cluster)
    before = _quiet_index(cluster)
    entries = [kv_pb2.PutManyEntry(key=f"one-{i}", value=b"%d" % i) for i in range(50)]
    entries.append(kv_pb2.PutManyEntry(key="", value=b"refused"))  # its own error only
    with grpc.insecure_channel(follower.up.rpc_addr) as channel:
        answer = kv_pb2_grpc.KVStub(channel).PutMany(
            kv_pb2.PutManyRequest(entries=entries), timeout=TIMEOUT
        )
    assert [r.error.code for r in answer.results] == [""] * 50 + ["invalid_key"]
    _applied_everywhere(cluster, before + 1)
    time.sleep(0.5)  # nothing else may follow: the 50 puts were one entry
    assert {n.status()["applied_index"] for n in cluster.running()} == {before + 1}
    digest = cluster.wait_converged()
    assert digest


def test_an_http_batch_of_writes_is_one_raft_command(cluster: Cluster) -> None:
    follower = _follower(cluster)
    before = _quiet_index(cluster)
    ops = [{"op": "put", "key": f"h-{i}", "value": "AQ=="} for i in range(20)]
    ops += [{"op": "delete", "key": "h-3"}, {"op": "delete", "key": "h-none"}]
    code, body, _ = http("POST", f"{follower.url}/v1/util/batch", json.dumps({"ops": ops}).encode())
    assert code == 200, body
    results = json.loads(body)["results"]
    assert [r.get("existed") for r in results[-2:]] == [True, False]
    _applied_everywhere(cluster, before + 1)
    time.sleep(0.5)
    assert {n.status()["applied_index"] for n in cluster.running()} == {before + 1}


def test_reads_in_a_batch_through_a_follower_honour_the_consistency_level(
    cluster: Cluster,
) -> None:
    leader = cluster.wait_for_leader()
    follower = _follower(cluster)
    keys = [f"read-{i}" for i in range(30)]
    with grpc.insecure_channel(leader.up.rpc_addr) as channel:
        kv_pb2_grpc.KVStub(channel).PutMany(
            kv_pb2.PutManyRequest(entries=[kv_pb2.PutManyEntry(key=k, value=b"x") for k in keys]),
            timeout=TIMEOUT,
        )
    with grpc.insecure_channel(follower.up.rpc_addr) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        # default and linearizable pass a read barrier on a follower: the write
        # acknowledged by the leader is seen at once, by every key of the batch.
        for level in (kv_pb2.CONSISTENCY_DEFAULT, kv_pb2.CONSISTENCY_LINEARIZABLE):
            answer = kv.GetMany(
                kv_pb2.GetManyRequest(keys=keys, consistency=level), timeout=TIMEOUT
            )
            assert all(r.found and r.value == b"x" for r in answer.results), level

        def stale_sees_all() -> bool:
            answer = kv.GetMany(
                kv_pb2.GetManyRequest(keys=keys, consistency=kv_pb2.CONSISTENCY_STALE),
                timeout=TIMEOUT,
            )
            return all(r.found for r in answer.results)

        wait_until("a stale batch read to see the writes", stale_sees_all)
    for name in ("stale", "default", "linearizable"):
        ops = [{"op": "get", "key": k} for k in keys[:5]] + [{"op": "get", "key": "absent"}]
        code, body, _ = http(
            "POST",
            f"{follower.url}/v1/util/batch?consistency={name}",
            json.dumps({"ops": ops}).encode(),
        )
        assert code == 200, body
        results = json.loads(body)["results"]
        assert [r["found"] for r in results] == [True] * 5 + [False], name
        assert base64.b64decode(results[0]["value"]) == b"x"


def test_a_pipeline_through_a_follower_groups_writes_and_reads_its_own_writes(
    cluster: Cluster,
) -> None:
    follower = _follower(cluster)
    P = kv_pb2.PipelineRequest
    requests = [P(id=i, put=kv_pb2.PutRequest(key=f"pipe-{i}", value=b"p")) for i in range(40)]
    requests.append(
        P(id=99, get=kv_pb2.GetRequest(key="pipe-39", consistency=kv_pb2.CONSISTENCY_STALE))
    )
    with grpc.insecure_channel(follower.up.rpc_addr) as channel:
        answers = {
            a.id: a for a in kv_pb2_grpc.KVStub(channel).Pipeline(iter(requests), timeout=TIMEOUT)
        }
    assert all(answers[i].WhichOneof("response") == "put" for i in range(40))
    # A write is answered once applied on the node written through, so a stale
    # read there after it sees it.
    assert answers[99].get.value == b"p"
