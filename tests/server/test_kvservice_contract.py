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
from lrukv_server.errors import Unavailable
from lrukv_server.fsm import Member, StoreFSM
from lrukv_server.raft import RaftConfig, RaftNode
from lrukv_server.service.base import Consistency, KVService, ServerInfo
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
    service.put("short", b"v", ttl=0.3)
    service.put("long", b"v", ttl=60)
    assert service.get("short", consistency=Consistency.LINEARIZABLE) == b"v"
    deadline = time.monotonic() + 10
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
