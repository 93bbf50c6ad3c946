"""LocalService: the single-node KVService over a StoreFSM, with or without a LoggedStore."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrukv
from lrukv.errors import InvalidKey, KeyNotFound, ValueTooLarge
from lrukv_server.errors import Unavailable
from lrukv_server.fsm import StoreFSM
from lrukv_server.service import Consistency, KVService, ServerInfo
from lrukv_server.service.local import LocalService
from lrukv_server.txlog import LoggedStore, TxLogConfig

NODE = ServerInfo("n1", "127.0.0.1:50051", "127.0.0.1:8080", True)


def _service(shards: int = 10, items_per_shard: int = 100) -> LocalService:
    return LocalService(StoreFSM(lrukv.ShardedMap(shards, items_per_shard)), node=NODE)


def test_it_is_a_kv_service() -> None:
    assert isinstance(_service(), KVService)


def test_put_get_delete() -> None:
    svc = _service()
    svc.put("key-a", b"Hello, key-value store!")
    assert svc.get("key-a") == b"Hello, key-value store!"
    assert svc.delete("key-a") is True
    assert svc.delete("key-a") is False
    with pytest.raises(KeyNotFound):
        svc.get("key-a")


@pytest.mark.parametrize("level", list(Consistency))
def test_every_consistency_level_reads_locally_on_one_node(level: Consistency) -> None:
    svc = _service()
    svc.put("k", b"v")
    assert svc.get("k", consistency=level) == b"v"
    assert list(svc.keys(consistency=level)) == ["k"]
    assert list(svc.items(consistency=level)) == [("k", b"v")]


def test_binary_values_round_trip() -> None:
    svc = _service()
    value = bytes(range(256))
    svc.put("bin", value)
    assert svc.get("bin") == value


def test_ttl_expires_keys() -> None:
    now = [1000.0]
    svc = LocalService(StoreFSM(lrukv.ShardedMap(clock=lambda: now[0])), node=NODE)
    svc.put("session", b"t", ttl=5)
    assert svc.get("session") == b"t"
    now[0] += 6
    with pytest.raises(KeyNotFound):
        svc.get("session")


def test_reads_make_keys_recent_so_the_lru_evicts_others() -> None:
    svc = _service(shards=1, items_per_shard=2)
    svc.put("a", b"1")
    svc.put("b", b"2")
    svc.get("a")
    svc.put("c", b"3")
    assert sorted(svc.keys()) == ["a", "c"]


def test_core_errors_pass_through_unchanged() -> None:
    svc = LocalService(StoreFSM(lrukv.ShardedMap(max_value_bytes=4)), node=NODE)
    with pytest.raises(ValueTooLarge):
        svc.put("k", b"12345")
    with pytest.raises(InvalidKey):
        svc.put("bad\x00key", b"v")
    with pytest.raises(InvalidKey):
        svc.get("")


def test_an_abandoned_iterator_blocks_no_writer() -> None:
    svc = _service(shards=2, items_per_shard=100)
    for i in range(50):
        svc.put(f"k{i}", b"v")
    items = svc.items()
    next(items)  # a consumer that stops here, as a disconnected stream does
    svc.put("k-new", b"v")  # would deadlock if the iteration held a shard lock
    svc.delete("k1")
    assert svc.get("k-new") == b"v"


def test_servers_reports_itself_as_leader() -> None:
    assert _service().servers() == [NODE]


def test_health_reports_every_registered_check_and_is_ready_only_when_all_pass() -> None:
    health = _service().health()
    assert (health.live, health.ready) == (True, True)
    assert health.checks == {"store": "ok"}
    state = {"txlog": "off"}
    svc = LocalService(
        StoreFSM(lrukv.ShardedMap()), node=NODE, checks={"txlog": lambda: state["txlog"]}
    )
    assert svc.health().ready and svc.health().checks["txlog"] == "off"
    state["txlog"] = "disk full"
    assert not svc.health().ready and svc.health().checks["txlog"] == "disk full"


def test_after_close_every_call_is_unavailable() -> None:
    svc = _service()
    svc.put("k", b"v")
    svc.close()
    svc.close()  # idempotent
    for call in (
        lambda: svc.get("k"),
        lambda: svc.put("k", b"v"),
        lambda: svc.delete("k"),
        svc.keys,
        svc.items,
    ):
        with pytest.raises(Unavailable):
            call()
    assert svc.health().live is False


def test_with_a_transaction_log_writes_survive_close_and_reopen(tmp_path: Path) -> None:
    config = TxLogConfig.from_flag("file", env={})

    def open_service() -> tuple[LocalService, LoggedStore]:
        store = LoggedStore.open(config, lrukv.ShardedMap(), data_dir=tmp_path, node_id="n1")
        checks = {"txlog": lambda: "ok" if store.log_health().ok else "failed"}
        return LocalService(store.fsm, writer=store, node=NODE, checks=checks), store

    svc, store = open_service()
    svc.put("durable", b"yes")
    svc.put("gone", b"x")
    svc.delete("gone")
    health = svc.health()
    assert health.ready and health.checks["txlog"] == "ok"
    svc.close()
    store.close()  # flushes the log
    reopened, store = open_service()
    try:
        assert reopened.get("durable") == b"yes"
        with pytest.raises(KeyNotFound):
            reopened.get("gone")
    finally:
        store.close()
