"""LoggedStore: every acknowledged write is logged, in the order it was applied."""

from __future__ import annotations

import inspect
import random
import threading
from pathlib import Path

import pytest

from lrukv import EvictionCause, InvalidKey, InvalidTTL, InvalidValue, ShardedMap
from lrukv_server.errors import LogUnavailable
from lrukv_server.fsm import ConfigMismatch
from lrukv_server.txlog import (
    FileTransactionLog,
    LogEvent,
    LoggedStore,
    Op,
    TxLogConfig,
    recover,
)
from lrukv_server.txlog.recovery import ReplayError
from tests.pg import wait_until


def logged(tmp_path: Path, store: ShardedMap | None = None) -> LoggedStore:
    log = FileTransactionLog(tmp_path / "log")
    return LoggedStore(
        store if store is not None else ShardedMap(shards=2, items_per_shard=50), log
    )


@pytest.mark.parametrize(
    "name", ["put", "get", "peek", "delete", "pop", "keys", "items", "values", "stats",
             "expires_at", "touch", "check_put", "check_key"],
)  # fmt: skip
def test_methods_have_the_signatures_of_sharded_map(name: str) -> None:
    ours = inspect.signature(getattr(LoggedStore, name))
    theirs = inspect.signature(getattr(ShardedMap, name))
    assert list(ours.parameters.values()) == list(theirs.parameters.values())


def test_writes_are_logged_and_reads_are_not(tmp_path: Path) -> None:
    store = logged(tmp_path)
    store.put("a", b"1")
    store.put("b", b"2", 60.0)
    assert store.get("a") == b"1"
    assert store.peek("b") == b"2"
    assert store.delete("a") is True
    assert store.delete("a") is False  # absent: nothing to log
    assert store.pop("b") == b"2"
    events = list(store.log.replay())
    assert [(e.op, e.key) for e in events] == [
        (Op.PUT, "a"),
        (Op.PUT, "b"),
        (Op.DELETE, "a"),
        (Op.DELETE, "b"),
    ]
    assert events[1].expires_at is not None
    store.close()


@pytest.mark.parametrize(
    ("key", "value", "ttl", "error"),
    [("", b"v", None, InvalidKey), ("k", "text", None, InvalidValue), ("k", b"v", -1, InvalidTTL)],
)
def test_rejected_input_is_never_logged(
    tmp_path: Path, key: str, value: bytes, ttl: float | None, error: type[Exception]
) -> None:
    store = logged(tmp_path)
    with pytest.raises(error):
        store.put(key, value, ttl)
    with pytest.raises(InvalidKey):
        store.delete("")
    assert store.log.last_seq == 0
    store.close()


def test_when_the_log_refuses_the_store_is_unchanged(tmp_path: Path) -> None:
    store = logged(tmp_path)
    store.put("kept", b"1")
    store.log.close()  # the log can no longer take writes
    with pytest.raises(LogUnavailable):
        store.put("new", b"2")
    with pytest.raises(LogUnavailable):
        store.delete("kept")
    assert store.get("new") is None
    assert store.get("kept") == b"1"
    assert not store.log_health().ok


def test_concurrent_writers_are_logged_in_the_order_they_were_applied(tmp_path: Path) -> None:
    """Replaying the log gives the very same store, recency and evictions included."""
    live = logged(tmp_path, ShardedMap(shards=3, items_per_shard=10))

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            key = f"k{rng.randrange(60)}"
            if rng.random() < 0.2:
                live.delete(key)
            else:
                live.put(key, b"%d" % rng.randrange(1000))

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    live.close()
    replayed = ShardedMap(shards=3, items_per_shard=10)
    with FileTransactionLog(tmp_path / "log") as log:
        recover(replayed, log)
    assert replayed.snapshot() == live.snapshot()


def test_an_eviction_callback_error_still_leaves_the_write_logged(tmp_path: Path) -> None:
    def on_evict(key: str, value: bytes, cause: EvictionCause) -> None:
        raise RuntimeError(f"observer failed on {key}")

    store = logged(tmp_path, ShardedMap(shards=1, items_per_shard=1, on_evict=on_evict))
    store.put("a", b"1")
    with pytest.raises(RuntimeError, match="observer failed on a"):
        store.put("b", b"2")
    assert store.get("b") == b"2"
    assert list(store.log.replay())[-1] == LogEvent(2, Op.PUT, "b", b"2")
    store.close()


def test_open_recovers_and_expiry_times_are_kept(tmp_path: Path) -> None:
    now = [1_000_000.0]
    config = TxLogConfig.from_flag("file", fsync="never")
    store = LoggedStore.open(
        config, ShardedMap(clock=lambda: now[0]), data_dir=tmp_path, node_id="n"
    )
    store.put("session", b"token", ttl=30)
    store.put("forever", b"x")
    store.close()
    now[0] += 10  # restarted ten seconds later: the key still expires at the same moment
    again = LoggedStore.open(
        config, ShardedMap(clock=lambda: now[0]), data_dir=tmp_path, node_id="n"
    )
    assert again.expires_at("session") == 1_000_030.0
    assert again.get("forever") == b"x"
    assert again.recovery is not None
    assert again.recovery.puts == 2
    again.close()


def test_compaction_runs_in_the_background_after_enough_writes(tmp_path: Path) -> None:
    config = TxLogConfig.from_flag("file", compact_after_events=50)
    store = LoggedStore.open(config, ShardedMap(), data_dir=tmp_path, node_id="n")
    for i in range(120):
        store.put(f"k{i % 70}", b"%d" % i)
    log = store.log
    assert isinstance(log, FileTransactionLog)
    wait_until(lambda: log.load_snapshot() is not None, what="a background compaction")
    expected = store.snapshot()
    store.close()
    again = LoggedStore.open(config, ShardedMap(), data_dir=tmp_path, node_id="n")
    assert again.snapshot() == expected
    assert again.recovery is not None
    assert again.recovery.snapshot_seq is not None
    assert again.recovery.replayed < 120
    assert again.log_health().ok
    again.close()


@pytest.mark.parametrize("compacted", [False, True], ids=["before-compaction", "after"])
@pytest.mark.parametrize("other", [(5, 100, None), (4, 50, None), (4, 100, 1 << 20)], ids=str)
def test_a_restart_with_other_shard_settings_is_refused_with_one_message(
    tmp_path: Path, compacted: bool, other: tuple[int, int, int | None]
) -> None:
    # Shrinking -i before the first compaction used to drop acknowledged keys
    # silently at restart; after one, the snapshot refused it. Now both refuse.
    config = TxLogConfig.from_flag("file")
    store = LoggedStore.open(config, ShardedMap(4, 100), data_dir=tmp_path, node_id="n")
    for i in range(300):
        store.put(f"k{i}", b"v")
    if compacted:
        store.compact()
    store.close()
    shards, items, max_bytes = other
    with pytest.raises(ConfigMismatch) as refused:
        LoggedStore.open(
            config, ShardedMap(shards, items, max_bytes=max_bytes), data_dir=tmp_path, node_id="n"
        )
    message = str(refused.value)
    assert "was written by a store with shards=4, items_per_shard=100, max_bytes=none" in message
    assert "start it with the same settings" in message
    # the failed start released the log and lost nothing: the right geometry opens it
    again = LoggedStore.open(config, ShardedMap(4, 100), data_dir=tmp_path, node_id="n")
    try:
        assert all(again.get(f"k{i}") == b"v" for i in range(300))
    finally:
        again.close()


def test_a_replay_refused_by_todays_limits_names_the_event_and_the_fix(tmp_path: Path) -> None:
    config = TxLogConfig.from_flag("file")
    store = LoggedStore.open(config, ShardedMap(), data_dir=tmp_path, node_id="n")
    store.put("small", b"x")
    store.put("big", bytes(5000))
    store.close()
    with pytest.raises(ReplayError) as refused:
        LoggedStore.open(config, ShardedMap(max_value_bytes=1000), data_dir=tmp_path, node_id="n")
    message = str(refused.value)
    assert "replay failed at event seq 3 (PUT of key 'big' (5000 bytes))" in message
    assert "value is 5000 bytes; the limit is 1000" in message
    assert "--max-value-bytes 5000" in message


def test_open_with_the_log_off_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="off"):
        LoggedStore.open(TxLogConfig(), ShardedMap(), data_dir=tmp_path, node_id="n")


def test_compaction_racing_writers_never_repeats_or_loses_a_record(tmp_path: Path) -> None:
    """Regression: a compaction mark taken while sync() was writing a buffer out
    fell inside that buffer, and the compacted log repeated a record."""
    config = TxLogConfig.from_flag("file", compact_after_events=20)
    store = LoggedStore.open(
        config, ShardedMap(shards=2, items_per_shard=500), data_dir=tmp_path, node_id="n"
    )

    def writer(number: int) -> None:
        for i in range(300):
            store.put(f"w{number}-{i % 40}", b"%d" % i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        store.compact()
    for thread in threads:
        thread.join()
    expected = store.snapshot()
    store.close()
    again = LoggedStore.open(
        config, ShardedMap(shards=2, items_per_shard=500), data_dir=tmp_path, node_id="n"
    )
    assert again.snapshot() == expected
    again.close()
