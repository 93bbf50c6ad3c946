"""RaftNode on real processes: three (or more) tests/cluster/node_proc.py nodes on
loopback, killed, stopped and restarted for real. Each test is named after the
property it proves; replicas are compared by ListFSM's (count, digest)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from lrukv_server.raft.snapshot import MAGIC
from tests.cluster.harness import Cluster, Node, NodeStartError, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def converged(nodes: list[Node], min_count: int = 0) -> dict[str, Any] | None:
    """The common state when every node has the same (count, digest), else None."""
    states = [n.state() for n in nodes]
    first = states[0]
    same = all((s["count"], s["digest"]) == (first["count"], first["digest"]) for s in states)
    return first if same and first["count"] >= min_count else None


def wait_converged(
    nodes: list[Node], count: int | None = None, min_count: int = 0, timeout: float = 20.0
) -> Any:
    """Wait until the replicas agree (on exactly *count* entries, if given)."""

    def check() -> dict[str, Any] | None:
        state = converged(nodes, min_count if count is None else count)
        return state if state is not None and count in (None, state["count"]) else None

    return wait_for(f"{len(nodes)} replicas to agree", check, timeout)


def propose(node: Node, value: str, timeout: float = 10.0) -> dict[str, Any]:
    return node.call("propose", value=value, timeout=timeout)


def write_until_accepted(nodes: list[Node], prefix: str, timeout: float) -> str:
    """Propose at each node in turn (short deadlines) until one acknowledges;
    return the value acknowledged. Each attempt writes a new value: an attempt
    that timed out may still be applied, and must not be mistaken for a duplicate."""
    attempts = iter(range(1_000_000))

    def attempt() -> str | None:
        for node in nodes:
            value = f"{prefix}-{next(attempts)}"
            if propose(node, value, timeout=0.5)["ok"]:
                return value
        return None

    return wait_for(f"a write of {prefix!r} to be acknowledged", attempt, timeout, every=0.0)


def test_a_write_acknowledged_at_any_node_is_applied_in_the_same_order_on_every_node(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path) as cluster:
        leader = cluster.wait_leader()
        follower = next(n for n in cluster.nodes if n is not leader)
        via_leader = leader.call("propose_many", prefix="L", count=300, timeout=10, in_flight=64)
        via_follower = follower.call(
            "propose_many", prefix="F", count=300, timeout=10, in_flight=64
        )
        # On a loaded machine an election can cut in: then some proposals fail
        # (DISCARDED, or an unknown outcome), which is what their errors say.
        acked = via_leader["acked"] + via_follower["acked"]
        assert len(via_leader["acked"]) >= 100 and len(via_follower["acked"]) >= 100
        for node in cluster.nodes:
            assert node.call("barrier", timeout=10)["ok"]
        state = wait_converged(cluster.nodes, min_count=len(acked))
        items = leader.state(items=True)["items"]
        assert set(acked) <= set(items) and len(items) == len(set(items))
        if not (via_leader["errors"] or via_follower["errors"]):
            assert len(items) == 600
        assert state["restores"] == []


def test_after_the_leader_is_killed_a_new_leader_takes_writes_within_3s_and_the_old_one_catches_up(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path) as cluster:
        old = cluster.wait_leader()
        assert old.call("propose_many", prefix="a", count=100, timeout=10, in_flight=32)["acked"]
        others = [n for n in cluster.nodes if n is not old]
        wait_converged(cluster.nodes, count=100)

        old.kill()
        killed_at = time.monotonic()
        after_kill = write_until_accepted(others, "after-kill", timeout=10)
        failover = time.monotonic() - killed_at
        assert failover < 3.0, f"no write accepted for {failover:.2f}s after the leader died"
        new = cluster.wait_leader(among=others)
        assert new is not old

        cluster.start(old)
        assert (reply := propose(new, "after-restart"))["ok"], reply
        wait_converged(cluster.nodes, min_count=102)
        items = old.state(items=True)["items"]
        assert {after_kill, "after-restart"} <= set(items) and len(items) == len(set(items))
        cluster.wait_leader()  # and it follows the same leader as the others


def test_a_joined_node_gets_every_entry_and_a_removed_node_gets_no_more(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        leader = cluster.wait_leader()
        assert (
            len(
                leader.call("propose_many", prefix="a", count=50, timeout=10, in_flight=16)["acked"]
            )
            == 50
        )
        # Join through a follower: it forwards the change to the leader.
        follower = next(n for n in cluster.nodes if n is not leader)
        newcomer = cluster.add_node().start(join=follower.raft_addr)
        cluster.nodes.append(newcomer)
        assert (reply := propose(leader, "after-join"))["ok"], reply
        wait_converged(cluster.nodes, count=51)
        members = {m["addr"] for m in leader.status()["members"]}
        assert members == {n.raft_addr for n in cluster.nodes}

        leaving = next(n for n in cluster.nodes if n not in (leader, newcomer))
        assert leader.call("remove", addr=leaving.raft_addr, timeout=5)["ok"]
        cluster.nodes.remove(leaving)
        assert (reply := propose(leader, "after-remove"))["ok"], reply
        wait_converged(cluster.nodes, count=52)
        for node in cluster.nodes:
            assert leaving.raft_addr not in {m["addr"] for m in node.status()["members"]}
        # The removed node is alive but is sent nothing new.
        assert leaving.alive()
        assert leaving.state()["count"] == 51
        # Three members again: losing one more still leaves a majority.
        other = next(n for n in cluster.nodes if n is not leader)
        other.kill()
        write_until_accepted([leader, newcomer], "with-one-down", timeout=15)


def test_a_minority_refuses_writes_within_its_deadline_and_recovers_when_healed(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path) as cluster:
        leader = cluster.wait_leader()
        assert (reply := propose(leader, "before"))["ok"], reply
        others = [n for n in cluster.nodes if n is not leader]
        for node in others:
            node.signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            reply = propose(leader, "isolated", timeout=1.0)
            took = time.monotonic() - started
            assert not reply["ok"]
            assert reply["error"] in ("Timeout", "Unavailable")
            assert took < 1.0 + 2.0, f"the refusal took {took:.2f}s for a 1 s deadline"
            barrier = leader.call("barrier", timeout=1.0)
            assert not barrier["ok"] and barrier["error"] == "Timeout"
            # Without a majority the leader steps down (leader_fallback_timeout).
            wait_for(
                "the isolated leader to step down", lambda: leader.status()["role"] != "leader", 10
            )
        finally:
            for node in others:
                node.signal(signal.SIGCONT)
        healed = write_until_accepted(cluster.nodes, "healed", timeout=15)
        wait_converged(cluster.nodes, min_count=2)
        # "isolated" (a Timeout: outcome unknown) may have been committed after
        # healing, like other timed-out attempts; what was acknowledged is there once.
        items = cluster.nodes[0].state(items=True)["items"]
        assert items.count("before") == 1 and items.count(healed) == 1
        assert len(items) == len(set(items))


def test_every_acknowledged_write_survives_all_nodes_killed_at_once(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        leader = cluster.wait_leader()
        acked: list[str] = []
        answers = leader.stream(
            "propose_stream", prefix="w", count=1_000_000, in_flight=128, timeout=10
        )
        for line in answers:
            acked.append(line["ack"])
            if len(acked) == 1000:
                break
        # With 128 writes in flight, at once: no node gets to close its journal.
        for node in cluster.nodes:
            node.signal(signal.SIGKILL)
        acked += [line["ack"] for line in answers if "ack" in line]  # sent before the kill
        for node in cluster.nodes:
            node.kill()
        for node in cluster.nodes:
            cluster.start(node)
        new_leader = cluster.wait_leader()
        assert new_leader.call("barrier", timeout=10)["ok"]
        state = wait_converged(cluster.nodes, min_count=len(acked))
        items = new_leader.state(items=True)["items"]
        assert set(acked) <= set(items)
        assert len(items) == len(set(items))
        assert state["restores"] == []  # rebuilt from the journal alone


def test_a_snapshot_rebuilds_a_restarted_node_and_a_new_node_through_the_lrukv_format(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path, snapshot_entries=40) as cluster:
        leader = cluster.wait_leader()
        lagging = next(n for n in cluster.nodes if n is not leader)
        lagging.kill()
        up = [n for n in cluster.nodes if n is not lagging]
        assert (
            len(
                leader.call("propose_many", prefix="s", count=300, timeout=10, in_flight=32)[
                    "acked"
                ]
            )
            == 300
        )
        wait_converged(up, count=300)
        for node in up:
            snap = (node.data_dir / "raft.snapshot").read_bytes()
            assert snap.startswith(MAGIC)

        # The lagging node's log was compacted away on the leader: it must be
        # sent a snapshot (InstallSnapshot), which restores its ListFSM.
        cluster.start(lagging)
        wait_converged(cluster.nodes, count=300)
        assert lagging.state()["restores"], "caught up without a snapshot"

        # A restarted node loads its own snapshot file, then replays the journal tail.
        leader.stop()
        cluster.start(leader)
        wait_for("the restarted node to load its snapshot", lambda: leader.state()["restores"], 10)
        assert propose(cluster.wait_leader(), "after")["ok"]
        wait_converged(cluster.nodes, count=301)

        # A brand-new node joins after compaction: it too starts from a snapshot.
        newcomer = cluster.add_node().start(join=leader.raft_addr)
        cluster.nodes.append(newcomer)
        wait_converged(cluster.nodes, count=301)
        assert newcomer.state()["restores"]
        # Membership came through the snapshot too: each member once, itself included once.
        addrs = sorted(n.raft_addr for n in cluster.nodes)
        for node in cluster.nodes:
            assert sorted(m["addr"] for m in node.status()["members"]) == addrs


def test_a_node_with_the_wrong_secret_cannot_join_or_receive_entries(tmp_path: Path) -> None:
    with Cluster(tmp_path, start=False) as cluster:
        a, b, c = cluster.nodes
        c.secret = "not-the-cluster-secret-at-all"
        for node in cluster.nodes:
            cluster.start(node)
        leader = cluster.wait_leader(among=[a, b])
        assert (reply := propose(leader, "x"))["ok"], reply
        wait_converged([a, b], count=1)
        # c listed as a peer but with another key: no connection, no entries.
        assert c.state()["count"] == 0
        assert not any(m["reachable"] for m in c.status()["members"] if not m["is_self"])

        intruder = cluster.add_node(secret="also-the-wrong-secret-000")
        with pytest.raises(NodeStartError, match="Unavailable"):
            intruder.start(join=leader.raft_addr)
        members = {m["addr"] for m in leader.status()["members"]}
        assert intruder.raft_addr not in members
