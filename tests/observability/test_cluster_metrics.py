"""Metrics of a real three-node cluster: each node exports its Raft role, term
and indexes, its leader changes, and the writes it forwarded to the leader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.promtools import Samples, scrape
from tests.replication.cluster import Cluster, Node, http, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, size=3, extra_args=("-m",))
    try:
        cluster.start_all()
        cluster.wait_for_leader(timeout=30)
        yield cluster
    finally:
        cluster.stop_all()


def _roles(m: Samples) -> dict[str, float]:
    return {
        role: m.value("lrukv_raft_role", role=role) for role in ("leader", "follower", "candidate")
    }


def test_every_node_exports_its_raft_role_term_and_indexes(cluster: Cluster) -> None:
    leader = cluster.wait_for_leader()
    followers = [n for n in cluster.running() if n is not leader]
    code, body, _ = http("PUT", f"{followers[0].url}/v1/via-follower", b"v")
    assert code == 201, body
    assert http("PUT", f"{leader.url}/v1/via-leader", b"v")[0] == 201
    cluster.wait_converged()

    # Each node's own status just before its scrape: indexes only grow (the leader
    # keeps appending TOUCH and upkeep entries), so the scrape is at least that.
    applied_before: dict[str, int] = {}

    def scraped(node: Node) -> Samples:
        applied_before[node.name] = node.status()["applied_index"]
        return scrape(node.url)

    views = {node.name: scraped(node) for node in cluster.running()}
    assert _roles(views[leader.name]) == {"leader": 1, "follower": 0, "candidate": 0}
    for node in followers:
        assert _roles(views[node.name]) == {"leader": 0, "follower": 1, "candidate": 0}
    terms = {m.value("lrukv_raft_term") for m in views.values()}
    assert len(terms) == 1 and terms.pop() >= 1
    for node in cluster.running():
        m = views[node.name]
        assert m.value("lrukv_raft_applied_index") >= applied_before[node.name] > 0
        assert m.value("lrukv_raft_commit_index") >= m.value("lrukv_raft_applied_index")
        assert m.value("lrukv_raft_leader_changes_total") >= 1
        assert m.value("lrukv_raft_has_quorum") == 1
        assert (
            m.value("lrukv_raft_peers", state="reachable")
            + m.value("lrukv_raft_peers", state="unreachable")
            == 2
        )
        assert m.value("lrukv_store_items") == 2  # replicated state, read on each node
    assert views[followers[0].name].value("lrukv_raft_forwarded_writes_total") == 1
    assert views[leader.name].value("lrukv_raft_forwarded_writes_total") == 0
    assert views[leader.name].value("lrukv_raft_peers", state="reachable") == 2


def test_a_new_leader_is_counted_after_failover(cluster: Cluster) -> None:
    old = cluster.wait_for_leader()
    survivors = [n for n in cluster.running() if n is not old]
    before = {n.name: scrape(n.url).value("lrukv_raft_leader_changes_total") for n in survivors}
    cluster.kill(old)
    new = cluster.wait_for_leader(timeout=30, among=survivors)

    def counted() -> bool:
        for node in survivors:
            m = scrape(node.url)
            if m.value("lrukv_raft_leader_changes_total") <= before[node.name]:
                return False
        return True

    wait_until("the survivors to count the new leader", counted, timeout=30)
    assert scrape(new.url).value("lrukv_raft_role", role="leader") == 1
    # The new leader notices the dead peer when its connection attempt fails.
    wait_until(
        "the new leader to count the killed node unreachable",
        lambda: scrape(new.url).value("lrukv_raft_peers", state="unreachable") >= 1,
        timeout=30,
    )
