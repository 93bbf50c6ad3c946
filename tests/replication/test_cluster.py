"""Real three-node clusters of ``lrukv-server`` on loopback: replication,
failover, recovery and agreement. Each test is named after the property it proves."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lrukv_client import Client
from tests.replication.cluster import Cluster, Node, http, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, size=3, extra_args=("-i", "10000"))
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop_all()


def _followers(cluster: Cluster, leader: Node) -> list[Node]:
    return [n for n in cluster.running() if n is not leader]


def _stale_get(node: Node, key: str) -> bytes | None:
    code, body, _ = http("GET", f"{node.url}/v1/{key}?consistency=stale")
    return body if code == 200 else None


def _recency(node: Node) -> list[str]:
    """The keys of a one-shard store, most recently used first."""
    code, body, _ = http("GET", f"{node.url}/v1/util/keys?consistency=stale")
    assert code == 200, body
    keys: list[str] = json.loads(body)["keys"]
    return keys


def test_a_write_through_any_node_over_either_transport_is_on_every_replica(
    cluster: Cluster,
) -> None:
    leader = cluster.wait_for_leader()
    follower = _followers(cluster, leader)[0]
    # HTTP through a follower: accepted there (forwarded), never "not leader"
    code, body, _ = http("PUT", f"{follower.url}/v1/via-http", b"h")
    assert code == 201, body
    # gRPC through a follower
    with Client(follower.up.rpc_addr, timeout=10) as kv:
        kv.put("via-grpc", b"g")
        assert kv.get("via-grpc") == b"g"  # read-your-write on the node written through
        assert kv.delete("via-http") is True
    for node in cluster.running():

        def applied(node: Node = node) -> bool:
            return _stale_get(node, "via-grpc") == b"g"

        wait_until(f"{node.name} to apply", applied)
        assert _stale_get(node, "via-http") is None


def test_cluster_status_names_the_leader_and_every_member_with_addresses(
    cluster: Cluster,
) -> None:
    leader = cluster.wait_for_leader()

    def everyone_announced() -> dict[str, Any] | None:
        status = _followers(cluster, leader)[0].status()
        return status if all(m["http_addr"] for m in status["members"]) else None

    status = wait_until("every member's addresses", everyone_announced)
    assert status["role"] == "follower"
    assert status["leader"]["raft_addr"] == leader.raft_addr
    assert status["leader"]["http_addr"] == leader.up.http_addr
    assert status["leader"]["grpc_addr"] == leader.up.rpc_addr
    assert {m["id"] for m in status["members"]} == {"n1", "n2", "n3"}
    assert all(m["reachable"] for m in status["members"])
    assert status["term"] >= 1 and status["commit_index"] >= status["applied_index"] > 0
    assert leader.status()["role"] == "leader"


def test_after_the_leader_is_killed_a_new_leader_takes_writes_within_3s_and_the_old_one_catches_up(
    cluster: Cluster,
) -> None:
    old = cluster.wait_for_leader()
    with Client(old.up.rpc_addr, timeout=10) as kv:
        for i in range(50):
            kv.put(f"before-{i}", b"%d" % i)
    survivor = _followers(cluster, old)[0]
    cluster.kill(old)
    killed_at = time.monotonic()

    def write_accepted() -> bool:
        code, _, _ = http("PUT", f"{survivor.url}/v1/after", b"x", timeout=1)
        return code == 201

    wait_until("a write accepted by the survivors", write_accepted, timeout=10)
    assert time.monotonic() - killed_at < 3.0 + 1.0  # 3 s, plus one poll's slack on a busy CI
    new = cluster.wait_for_leader()
    assert new is not old
    cluster.start(old)
    digest = cluster.wait_converged(timeout=30)
    assert digest
    assert _stale_get(old, "after") == b"x"
    assert all(_stale_get(old, f"before-{i}") == b"%d" % i for i in range(50))


def test_a_minority_refuses_writes_and_acknowledges_nothing(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    lonely, *others = cluster.running()
    for node in others:
        cluster.pause(node)
    try:
        code, body, _ = http("PUT", f"{lonely.url}/v1/minority", b"x", timeout=15)
        assert code in (307, 503), (code, body)
        error = json.loads(body)["error"]
        assert error["code"] in ("unavailable", "not_leader")
    finally:
        for node in others:
            cluster.resume(node)
    cluster.wait_for_leader()
    cluster.wait_converged()
    # an unacknowledged write may or may not have been applied; the replicas agree either way
    values = {_stale_get(node, "minority") for node in cluster.running()}
    assert len(values) == 1
    del leader


def test_every_member_killed_at_once_and_restarted_loses_no_acknowledged_write(
    cluster: Cluster,
) -> None:
    acknowledged: dict[str, bytes] = {}
    stop = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        node = cluster.running()[seed % 3]
        with Client(node.up.rpc_addr, timeout=3) as kv:
            i = 0
            while not stop.is_set():
                key, value = f"w{seed}-{i}", b"%d" % rng.randrange(10**9)
                try:
                    kv.put(key, value)
                except Exception:
                    return  # the cluster died mid-write: this one is not acknowledged
                acknowledged[key] = value
                i += 1

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(6)]
    for thread in threads:
        thread.start()
    wait_until("some acknowledged writes", lambda: len(acknowledged) >= 200, timeout=30)
    for node in list(cluster.running()):
        cluster.kill(node)
    stop.set()
    for thread in threads:
        thread.join(10)
    for node in cluster.nodes:
        cluster.start(node)
    cluster.wait_for_leader(timeout=30)
    cluster.wait_converged(timeout=60)
    node = cluster.running()[0]
    missing = [k for k, v in acknowledged.items() if _stale_get(node, k) != v]
    # capacity 10 x 100 items would evict: the cluster runs with a larger one
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged writes lost"


def test_a_paused_follower_resumed_while_the_leader_writes_catches_up_and_agrees(
    cluster: Cluster,
) -> None:
    leader = cluster.wait_for_leader()
    paused = _followers(cluster, leader)[0]
    stop = threading.Event()
    written = [0]

    def write() -> None:
        with Client(leader.up.rpc_addr, timeout=10) as kv:
            while not stop.is_set():
                i = written[0]
                kv.put(f"p{i % 150}", b"%d" % i)
                if i % 3 == 0:
                    with contextlib.suppress(KeyError):
                        kv.get(f"p{(i * 7) % 150}")
                written[0] = i + 1

    writer = threading.Thread(target=write)
    cluster.pause(paused)
    writer.start()
    try:
        wait_until("writes while the follower is paused", lambda: written[0] >= 150, 60)
        cluster.resume(paused)
        wait_until("writes after it resumed", lambda: written[0] >= 300, 60)
    finally:
        stop.set()
        cluster.resume(paused)
        writer.join(30)
    cluster.wait_converged()


def test_a_node_joins_through_any_member_and_receives_everything(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    with Client(leader.up.rpc_addr, timeout=10) as kv:
        for i in range(100):
            kv.put(f"j{i}", b"%d" % i)
    joiner = cluster.add_joiner(via=_followers(cluster, leader)[0])
    cluster.start(joiner)
    cluster.wait_converged(timeout=60)
    assert _stale_get(joiner, "j99") == b"99"
    status = wait_until(
        "every member to know the new one",
        lambda: all(len(n.status()["members"]) == 4 for n in cluster.running()),
    )
    assert status
    # and it takes writes, which reach every member
    assert http("PUT", f"{joiner.url}/v1/from-joiner", b"x")[0] == 201
    cluster.wait_converged()


def test_a_five_node_cluster_keeps_taking_writes_after_losing_its_leader_and_a_follower(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, size=5)
    try:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=30)
        lost = [leader, _followers(cluster, leader)[0]]
        for node in lost:
            cluster.kill(node)
        survivor = cluster.running()[0]

        def write_accepted() -> bool:
            return http("PUT", f"{survivor.url}/v1/after", b"x", timeout=2)[0] == 201

        wait_until("a write accepted by three of five", write_accepted, timeout=15)
        for node in lost:
            cluster.start(node)
        cluster.wait_converged(timeout=60)
        assert all(_stale_get(n, "after") == b"x" for n in cluster.running())
    finally:
        cluster.stop_all()


def test_replicas_agree_on_contents_and_recency_after_a_workload_that_evicts_heavily(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, size=3, extra_args=("-s", "4", "-i", "16"))
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=30)
        rng = random.Random(7)
        clients = [Client(n.up.rpc_addr, timeout=10) for n in cluster.running()]
        try:
            for i in range(1500):
                kv = rng.choice(clients)
                key = f"k{rng.randrange(200)}"
                roll = rng.random()
                if roll < 0.5:
                    kv.put(key, b"%d" % i)
                elif roll < 0.9:
                    consistency = rng.choice(["stale", "default", "linearizable"])
                    with contextlib.suppress(KeyError):
                        kv.get(key, consistency=consistency)
                else:
                    kv.delete(key)
        finally:
            for kv in clients:
                kv.close()
        digest = cluster.wait_converged()
        # and the reads moved keys: recency replicated, not only contents
        evicting = cluster.running()[0].status(digest=True)
        assert evicting["digest"] == digest
    finally:
        cluster.stop_all()


def test_a_read_on_a_follower_protects_the_key_from_eviction_on_every_replica(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, size=3, extra_args=("-s", "1", "-i", "3"))
    try:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=30)
        follower = _followers(cluster, leader)[0]
        for key in ("a", "b", "c"):
            assert http("PUT", f"{leader.url}/v1/{key}", b"v")[0] == 201
        cluster.wait_converged()
        assert _recency(leader) == ["c", "b", "a"]
        assert _stale_get(follower, "a") == b"v"  # "a" is read: no longer the oldest
        for node in cluster.running():
            wait_until(
                f"the read replicated to {node.name} as a TOUCH",
                lambda node=node: _recency(node) == ["a", "c", "b"],  # type: ignore[misc]
            )
        assert http("PUT", f"{leader.url}/v1/d", b"v")[0] == 201  # evicts the oldest
        cluster.wait_converged()
        for node in cluster.running():
            assert _stale_get(node, "a") == b"v", node.name
            assert _stale_get(node, "b") is None, node.name
    finally:
        cluster.stop_all()


def test_the_cli_shows_the_cluster_and_a_removed_member_leaves_it(cluster: Cluster) -> None:
    from typer.testing import CliRunner

    from lrukv_client import ClusterStatus, HttpClient
    from lrukv_client.cli import app

    runner = CliRunner()
    leader = cluster.wait_for_leader()
    gone, stays = _followers(cluster, leader)

    def lrukv(*args: str) -> dict[str, Any]:
        result = runner.invoke(
            app,
            ["--server", leader.up.rpc_addr, "--timeout", "10", "--json", *args],
            env={"LRUKV_SERVER": None, "LRUKV_TRANSPORT": None},
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if result.stdout.startswith("{") else {}

    status = lrukv("cluster", "status", "--digest")
    assert status["role"] == "leader" and status["node_id"] == leader.name
    assert len(status["members"]) == 3 and len(status["digest"]) == 64
    lrukv("cluster", "remove", gone.raft_addr)
    cluster.stop(gone)
    wait_until(
        "the leader to list two members",
        lambda: len(lrukv("cluster", "status")["members"]) == 2,
    )
    # a follower over HTTP agrees, and names the leader's APIs
    with HttpClient(f"http://{stays.up.http_addr}", timeout=10) as kv:

        def two_members() -> ClusterStatus | None:
            status = kv.cluster_status()
            return status if len(status.members) == 2 else None

        seen = wait_until("the follower to list two members", two_members)
        assert seen.leader is not None and seen.leader.grpc_addr == leader.up.rpc_addr
        kv.put("after-removal", b"x")  # two of two still make a majority


def test_a_node_with_other_shard_settings_is_refused_with_a_clear_reason(
    cluster: Cluster,
) -> None:
    leader = cluster.wait_for_leader()
    assert http("PUT", f"{leader.url}/v1/k", b"v")[0] == 201
    odd = cluster.add_joiner(via=leader)
    odd.args += ["-i", "50"]  # the cluster runs with -i 10000
    cluster.start(odd)

    def refused() -> dict[str, Any] | None:
        code, body, _ = http("GET", f"{odd.url}/readyz")
        health: dict[str, Any] = json.loads(body)
        return health if code == 503 and "refused" in health["checks"]["store"] else None

    health = wait_until("the odd node to refuse itself", refused, timeout=30)
    assert "items_per_shard=10000" in health["checks"]["store"]
    assert "items_per_shard=50" in health["checks"]["store"]
    code, body, _ = http("GET", f"{odd.url}/v1/k?consistency=stale")
    assert code == 503 and b"refused by the cluster" in body
    # the others are unaffected
    assert http("PUT", f"{leader.url}/v1/k2", b"v")[0] == 201
