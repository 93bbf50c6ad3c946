"""One contract suite for every KVService: a single node (with and without its
transaction log) and, unchanged, a replicated one on a three-node Raft cluster
(in this process, on loopback), through its leader and through a follower."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import lrukv
from lrukv.errors import InvalidKey, InvalidTTL, KeyNotFound, ValueTooLarge
from lrukv_server.errors import BatchTooLarge, Unavailable
from lrukv_server.fsm import Member, StoreFSM
from lrukv_server.raft import RaftConfig, RaftNode
from lrukv_server.service.base import Consistency, KVService, ServerInfo
from lrukv_server.service.batch import DeleteOp, PutOp, WriteOp
from lrukv_server.service.local import LocalService
from lrukv_server.service.replicated import (
    ReplicaStateMachine,
    ReplicatedService,
    ReplicationTimings,
)
from lrukv_server.txlog import LoggedStore, TxLogConfig

LIMIT = 1000
STORE = lrukv.StoreConfig(shards=4, items_per_shard=64, max_value_bytes=LIMIT)
NODE = ServerInfo("n1", "127.0.0.1:1", "127.0.0.1:2", True)


def _free_addr() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _local(tmp_path: Path) -> Iterator[KVService]:
    service = LocalService(StoreFSM(STORE.build()), node=NODE)
    yield service
    service.close()


def _logged(tmp_path: Path) -> Iterator[KVService]:
    logged = LoggedStore.open(
        TxLogConfig.from_flag("file", env={}), STORE.build(), data_dir=tmp_path, node_id="n1"
    )
    service = LocalService(logged.fsm, node=NODE, writer=logged)
    yield service
    service.close()
    logged.close()


def _replicated(tmp_path: Path, *, through_leader: bool) -> Iterator[KVService]:
    addrs = [_free_addr() for _ in range(3)]
    services: list[ReplicatedService] = []
    nodes: list[RaftNode] = []
    try:
        for number, addr in enumerate(addrs, start=1):
            fsm = StoreFSM(replace(STORE, max_value_bytes=None).build(reap_on_read=False))
            replica = ReplicaStateMachine(fsm)
            config = RaftConfig(
                self_addr=addr,
                secret="contract-suite-secret",
                peers=tuple(a for a in addrs if a != addr),
                data_dir=str(tmp_path / f"n{number}"),
            )
            node = RaftNode(config, replica)
            nodes.append(node)
            me = Member(
                f"n{number}", addr, f"127.0.0.1:{8000 + number}", f"127.0.0.1:{9000 + number}"
            )
            service = ReplicatedService(
                fsm,
                node,
                replica,
                me=me,
                max_value_bytes=LIMIT,
                timings=ReplicationTimings(write_timeout=10.0, read_timeout=10.0),
            )
            service.start()
            services.append(service)
        deadline = time.monotonic() + 30
        while not any(node.is_leader for node in nodes) or not all(
            node.leader_addr for node in nodes
        ):
            assert time.monotonic() < deadline, "no leader elected"
            time.sleep(0.05)
        leader = next(i for i, node in enumerate(nodes) if node.is_leader)
        chosen = leader if through_leader else (leader + 1) % 3
        yield services[chosen]
    finally:
        for service in services:
            service.close()
        for node in nodes:
            node.close()


FACTORIES: dict[str, Callable[[Path], Iterator[KVService]]] = {
    "local": _local,
    "local-txlog": _logged,
    "replicated-leader": lambda p: _replicated(p, through_leader=True),
    "replicated-follower": lambda p: _replicated(p, through_leader=False),
}


@pytest.fixture(params=list(FACTORIES))
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVService]:
    yield from FACTORIES[request.param](tmp_path)


def test_put_then_get_returns_exact_bytes_at_every_consistency(service: KVService) -> None:
    value = bytes(range(256))
    service.put("k", value)
    service.put("empty", b"")
    for level in Consistency:
        assert service.get("k", consistency=level) == value
        assert service.get("empty", consistency=level) == b""


def test_an_overwrite_wins_and_a_delete_says_whether_the_key_existed(service: KVService) -> None:
    service.put("k", b"1")
    service.put("k", b"2")
    assert service.get("k", consistency=Consistency.LINEARIZABLE) == b"2"
    assert service.delete("k") is True
    assert service.delete("k") is False
    with pytest.raises(KeyNotFound):
        service.get("k", consistency=Consistency.LINEARIZABLE)


def test_bad_input_is_refused_before_anything_is_written(service: KVService) -> None:
    with pytest.raises(InvalidKey):
        service.put("", b"v")
    with pytest.raises(InvalidKey):
        service.put("bad\x00key", b"v")
    with pytest.raises(ValueTooLarge):
        service.put("big", bytes(LIMIT + 1))
    with pytest.raises(InvalidTTL):
        service.put("k", b"v", ttl=-1)
    with pytest.raises(InvalidKey):
        service.delete("")
    assert list(service.keys(consistency=Consistency.LINEARIZABLE)) == []


def test_a_key_with_a_ttl_expires(service: KVService) -> None:
    service.put("short", b"v", ttl=0.5)
    service.put("long", b"v", ttl=60)
    deadline = time.monotonic() + 15
    while True:
        try:
            service.get("short", consistency=Consistency.LINEARIZABLE)
        except KeyNotFound:
            break
        assert time.monotonic() < deadline, "the key never expired"
        time.sleep(0.05)
    assert service.get("long", consistency=Consistency.LINEARIZABLE) == b"v"


def test_keys_and_items_list_what_is_stored(service: KVService) -> None:
    expected = {f"k{i}": b"%d" % i for i in range(20)}
    for key, value in expected.items():
        service.put(key, value)
    assert sorted(service.keys(consistency=Consistency.LINEARIZABLE)) == sorted(expected)
    assert dict(service.items(consistency=Consistency.LINEARIZABLE)) == expected


def test_the_node_is_healthy_lists_itself_and_refuses_calls_once_closed(
    service: KVService,
) -> None:
    health = service.health()
    assert health.live and health.ready, health.checks
    assert any(s.id for s in service.servers())
    assert sum(s.is_leader for s in service.servers()) <= 1
    status = service.cluster_status()
    assert status.role in ("leader", "follower")
    service.close()
    with pytest.raises(Unavailable):
        service.put("k", b"v")
    with pytest.raises(Unavailable):
        service.get("k")
    assert not service.health().ready


def test_stats_count_what_is_stored_and_ttl_tells_the_time_left(service: KVService) -> None:
    service.put("forever", b"v")
    service.put("soon", b"vv", ttl=60)
    level = Consistency.LINEARIZABLE
    assert service.ttl("forever", consistency=level) is None
    left = service.ttl("soon", consistency=level)
    assert left is not None and 0 < left <= 60
    with pytest.raises(KeyNotFound):
        service.ttl("absent", consistency=level)
    stats = service.stats()
    assert (stats.size, stats.capacity, stats.max_value_bytes) == (2, 4 * 64, LIMIT)


# ------------------------------------------------------------------ batches


def test_a_write_batch_applies_in_order_and_answers_each_key(service: KVService) -> None:
    ops: list[WriteOp] = [
        PutOp("a", b"1"),
        PutOp("b", b"2", ttl=60),
        PutOp("a", b"3"),  # the same key again: the last write wins
        DeleteOp("b"),  # sees the put before it
        DeleteOp("never"),
        PutOp("", b"x"),  # refused: that key's error, the others still apply
        PutOp("big", bytes(LIMIT + 1)),
        PutOp("t", b"v", ttl=-1),
        DeleteOp("bad\x00key"),
    ]
    results = service.write_many(ops)
    assert [r.key for r in results] == [op.key for op in ops]
    assert [type(r.error) for r in results] == [
        *[type(None)] * 5,
        InvalidKey,
        ValueTooLarge,
        InvalidTTL,
        InvalidKey,
    ]
    assert [r.existed for r in results[3:5]] == [True, False]
    got = service.get_many(["a", "b", "never", "big", "t"], consistency=Consistency.LINEARIZABLE)
    assert [(r.key, r.value, r.error) for r in got] == [
        ("a", b"3", None),
        ("b", None, None),
        ("never", None, None),
        ("big", None, None),
        ("t", None, None),
    ]


def test_a_read_batch_answers_every_key_in_order_at_every_consistency(
    service: KVService,
) -> None:
    service.write_many([PutOp("x", b"1"), PutOp("y", bytes(range(256)))])
    for level in Consistency:
        got = service.get_many(["y", "absent", "x", "", "y"], consistency=level)
        assert [r.key for r in got] == ["y", "absent", "x", "", "y"]
        assert [r.value for r in got] == [bytes(range(256)), None, b"1", None, bytes(range(256))]
        assert isinstance(got[3].error, InvalidKey)
        assert [r.error for r in got[:3]] == [None, None, None]


def test_empty_batches_answer_nothing_and_change_nothing(service: KVService) -> None:
    assert service.write_many([]) == []
    assert service.write_many([], atomic=True) == []
    assert service.get_many([]) == []
    assert service.write_many([PutOp("", b"v")])[0].error is not None
    assert list(service.keys(consistency=Consistency.LINEARIZABLE)) == []


def test_an_atomic_batch_with_one_refused_op_changes_nothing(service: KVService) -> None:
    service.put("kept", b"old")
    with pytest.raises(ValueTooLarge):
        service.write_many(
            [PutOp("kept", b"new"), DeleteOp("kept"), PutOp("big", bytes(LIMIT + 1))],
            atomic=True,
        )
    with pytest.raises(InvalidKey):
        service.write_many([PutOp("other", b"v"), DeleteOp("")], atomic=True)
    assert service.get("kept", consistency=Consistency.LINEARIZABLE) == b"old"
    assert sorted(service.keys(consistency=Consistency.LINEARIZABLE)) == ["kept"]
    results = service.write_many([PutOp("kept", b"new"), DeleteOp("kept")], atomic=True)
    assert [(r.error, r.existed) for r in results] == [(None, False), (None, True)]
    assert list(service.keys(consistency=Consistency.LINEARIZABLE)) == []


def test_a_read_batch_moves_keys_as_that_sequence_of_gets_would(service: KVService) -> None:
    keys = [f"r{i}" for i in range(12)]
    service.write_many([PutOp(key, b"v") for key in keys])
    read = ["r3", "r0", "absent", "r7", "r3", "r11"]
    service.get_many(read)
    model = STORE.build()
    for key in keys:
        model.put(key, b"v")
    for key in read:
        model.get(key)
    expected = list(model.keys())
    deadline = time.monotonic() + 15
    # In a cluster the reads reach recency through a replicated TOUCH, shortly after.
    while list(service.keys(consistency=Consistency.LINEARIZABLE)) != expected:
        assert time.monotonic() < deadline, list(service.keys(consistency=Consistency.STALE))
        time.sleep(0.05)


def test_a_read_batch_over_its_answer_limit_refuses_only_the_keys_that_do_not_fit(
    service: KVService,
) -> None:
    service.write_many([PutOp(f"m{i}", bytes(100)) for i in range(3)])
    got = service.get_many(["m0", "m1", "absent", "m2"], max_bytes=250)  # 102 bytes each
    assert [r.value for r in got[:3]] == [bytes(100), bytes(100), None]
    assert got[3].value is None and isinstance(got[3].error, BatchTooLarge)
    assert "smaller batch" in str(got[3].error)
