"""RaftNode in one process: a single-node cluster (it elects itself) or a node
whose peers never answer (no leader ever). The multi-process properties are in
tests/cluster/test_raft_cluster.py."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from lrukv_server.errors import NotLeader, Timeout, Unavailable
from lrukv_server.raft import RaftConfig, RaftNode, Role
from tests.cluster.harness import free_ports
from tests.cluster.list_fsm import ListFSM

SECRET = "unit-test-secret-0123456789"
pytestmark = pytest.mark.timeout(60)


class CountingFSM(ListFSM):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bytes, int]] = []

    def apply(self, command: bytes, index: int) -> object:
        self.calls.append((command, index))
        return super().apply(command, index)


def config(tmp_path: Path, **overrides: object) -> RaftConfig:
    port = free_ports(1)[0]
    fields: dict[str, object] = {
        "self_addr": f"127.0.0.1:{port}",
        "secret": SECRET,
        "data_dir": str(tmp_path / str(port)),
    }
    fields.update(overrides)
    return RaftConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def solo(tmp_path: Path) -> Iterator[tuple[RaftNode, CountingFSM]]:
    """A one-member cluster, leading."""
    fsm = CountingFSM()
    node = RaftNode(config(tmp_path), fsm)
    try:
        assert node.wait_ready(10)
        deadline = time.monotonic() + 10
        while not node.is_leader and time.monotonic() < deadline:
            time.sleep(0.01)
        yield node, fsm
    finally:
        node.close()


@pytest.fixture
def leaderless(tmp_path: Path) -> Iterator[RaftNode]:
    """A node whose two peers are never started: it never has a leader."""
    node = RaftNode(
        config(tmp_path, peers=tuple(f"127.0.0.1:{p}" for p in free_ports(2))), ListFSM()
    )
    try:
        yield node
    finally:
        node.close()


def test_proposals_resolve_to_the_fsm_result_with_increasing_raft_indexes(
    solo: tuple[RaftNode, CountingFSM],
) -> None:
    node, fsm = solo
    futures = [node.propose(f"v{i}".encode(), 5) for i in range(200)]
    assert [f.result(10) for f in futures] == list(range(1, 201))
    indexes = [index for _, index in fsm.calls]
    assert indexes == sorted(set(indexes))
    assert [command for command, _ in fsm.calls] == [f"v{i}".encode() for i in range(200)]


def test_an_apply_that_raises_fails_its_proposal_and_is_applied_exactly_once(
    solo: tuple[RaftNode, CountingFSM],
) -> None:
    node, fsm = solo
    with pytest.raises(ValueError, match="boom"):
        node.propose(b"boom", 5).result(10)
    assert node.propose(b"after", 5).result(10) == 1
    assert [c for c, _ in fsm.calls] == [b"boom", b"after"]


def test_a_done_callback_that_raises_does_not_apply_the_write_again(
    solo: tuple[RaftNode, CountingFSM], caplog: pytest.LogCaptureFixture
) -> None:
    node, fsm = solo
    future = node.propose(b"once", 5)

    def bad_callback(_: Future[object]) -> None:
        raise RuntimeError("a careless caller")

    future.add_done_callback(bad_callback)
    future.result(10)
    assert node.read_barrier(5).result(10) > 0  # later ticks ran
    assert [c for c, _ in fsm.calls] == [b"once"]


def test_a_read_barrier_completes_after_every_earlier_write_is_applied(
    solo: tuple[RaftNode, CountingFSM],
) -> None:
    node, fsm = solo
    writes = [node.propose(f"w{i}".encode(), 5) for i in range(50)]
    barriers = [node.read_barrier(5) for _ in range(20)]
    indexes = [b.result(10) for b in barriers]
    assert all(w.done() for w in writes)
    assert min(indexes) > fsm.calls[-1][1]
    assert len(set(indexes)) < len(indexes)  # concurrent barriers shared log entries


def test_status_of_a_single_node_cluster(solo: tuple[RaftNode, CountingFSM]) -> None:
    node, _ = solo
    node.propose(b"x", 5).result(10)
    status = node.status()
    assert status.role is Role.LEADER
    assert status.leader_addr == node.self_addr == status.self_addr
    assert status.applied_index == status.commit_index >= 2
    assert [(m.addr, m.is_self, m.reachable) for m in status.members] == [
        (node.self_addr, True, True)
    ]
    assert status.has_quorum and status.ready and status.term >= 1


def test_without_a_leader_a_proposal_times_out_at_its_own_deadline(leaderless: RaftNode) -> None:
    started = time.monotonic()
    short, longer = leaderless.propose(b"a", 0.3), leaderless.propose(b"b", 1.0)
    with pytest.raises(Timeout):
        short.result(5)
    assert time.monotonic() - started < 1.0
    assert not longer.done()
    with pytest.raises(Timeout):
        longer.result(5)
    with pytest.raises(Timeout):
        leaderless.read_barrier(0.2).result(5)
    assert leaderless.leader_addr is None and not leaderless.is_leader
    assert isinstance(Timeout("x"), Unavailable) and not isinstance(Timeout("x"), NotLeader)


def test_a_full_queue_backs_off_and_fails_unavailable_at_the_deadline(tmp_path: Path) -> None:
    peers = tuple(f"127.0.0.1:{p}" for p in free_ports(2))
    node = RaftNode(config(tmp_path, peers=peers, commands_queue_size=2), ListFSM())
    try:
        started = time.monotonic()
        futures = [node.propose(f"{i}".encode(), 0.5) for i in range(5)]
        errors = []
        for f in futures:
            with pytest.raises(Unavailable) as info:
                f.result(5)
            errors.append(info.value)
        took = time.monotonic() - started
        # Two sat in the queue (outcome unknown); three never got in.
        assert sum(isinstance(e, Timeout) for e in errors) == 2
        assert sum("queue stayed full" in str(e) for e in errors) == 3
        assert 0.4 < took < 2.0
    finally:
        node.close()


def test_close_fails_what_is_pending_and_refuses_what_comes_after(leaderless: RaftNode) -> None:
    pending = leaderless.propose(b"a", 30)
    leaderless.close()
    with pytest.raises(Unavailable, match="closed"):
        pending.result(5)
    with pytest.raises(Unavailable, match="closed"):
        leaderless.propose(b"b", 5).result(5)
    leaderless.close()  # idempotent


def test_a_taken_port_fails_start_up_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(Unavailable, match=f"cannot listen for Raft on {addr}"):
            RaftNode(config(tmp_path, self_addr=addr), ListFSM())
        assert time.monotonic() - started < 5


def test_the_secret_never_appears_in_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node = RaftNode(config(tmp_path), ListFSM())
    try:
        assert node.wait_ready(10)
        node.propose(b"x", 5).result(10)
    finally:
        node.close()
    assert SECRET not in caplog.text
