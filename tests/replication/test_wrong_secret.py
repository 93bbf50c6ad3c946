"""A Raft peer with the wrong cluster secret, on real ``lrukv-server`` processes.

Peer traffic is authenticated and encrypted with a key derived from the cluster
secret (docs/security.md): a member started with another secret cannot talk to
the others, so it gets no entry, elects no leader with them, and the two
members that share the secret go on taking writes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.replication.cluster import Cluster, http, wait_until

pytestmark = pytest.mark.slow


def test_a_member_with_the_wrong_secret_gets_nothing_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, size=3)
    intruder = cluster.nodes[2]
    intruder.args[intruder.args.index("--cluster-secret") + 1] = "not-the-cluster-secret-at-all"
    try:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout=30, among=cluster.nodes[:2])
        code, body, _ = http("PUT", f"{leader.url}/v1/written", b"by the members")
        assert code == 201, body
        follower = next(n for n in cluster.nodes[:2] if n is not leader)

        def applied() -> bool:
            code, body, _ = http("GET", f"{follower.url}/v1/written?consistency=stale")
            return code == 200 and body == b"by the members"

        wait_until("the follower with the secret to apply the write", applied)
        time.sleep(2)  # time enough for an entry to reach a member that could read it
        code, _, _ = http("GET", f"{intruder.url}/v1/written?consistency=stale")
        assert code == 404
        status = intruder.status()
        assert status["applied_index"] == 0 or status["leader"] is None, status
        others = [m for m in status["members"] if m["raft_addr"] != intruder.raft_addr]
        assert not any(m["reachable"] for m in others), status
        # A write through the intruder is not acknowledged: it has no leader.
        code, _, _ = http("PUT", f"{intruder.url}/v1/from-intruder", b"x")
        assert code != 201
        code, _, _ = http("GET", f"{leader.url}/v1/from-intruder?consistency=stale")
        assert code == 404
    finally:
        cluster.stop_all()
