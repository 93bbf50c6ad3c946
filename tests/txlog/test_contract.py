"""The TransactionLog contract, run against every backend (file x 3 fsync policies, PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from lrukv import ShardedMap
from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import (
    AlreadyApplied,
    CompactableLog,
    LogEvent,
    LoggedStore,
    Op,
    TransactionLog,
    recover,
)
from tests.txlog.conftest import LogOpener

ALL_BYTES = bytes(range(256))


def test_a_backend_is_a_compactable_transaction_log(open_backend: LogOpener) -> None:
    log = open_backend()
    assert isinstance(log, TransactionLog)
    assert isinstance(log, CompactableLog)


def test_appends_get_consecutive_sequence_numbers_from_one(open_backend: LogOpener) -> None:
    log = open_backend()
    assert log.last_seq == 0
    seqs = [log.append(Op.PUT, f"k{i}", b"v") for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert log.last_seq == 5


def test_replay_returns_every_field_in_order(open_backend: LogOpener) -> None:
    log = open_backend()
    log.append(Op.PUT, "plain", b"value")
    log.append(Op.PUT, "clé-✓", ALL_BYTES, expires_at=1_900_000_000.25)
    log.append(Op.PUT, "empty", b"")
    log.append(Op.DELETE, "plain")
    last = log.append(Op.PUT, "raft", b"x", applied_index=42)
    log.sync(last)
    assert list(log.replay()) == [
        LogEvent(1, Op.PUT, "plain", b"value"),
        LogEvent(2, Op.PUT, "clé-✓", ALL_BYTES, 1_900_000_000.25),
        LogEvent(3, Op.PUT, "empty", b""),
        LogEvent(4, Op.DELETE, "plain"),
        LogEvent(5, Op.PUT, "raft", b"x", None, 42),
    ]
    assert [event.seq for event in log.replay(from_seq=4)] == [4, 5]
    assert list(log.replay(from_seq=6)) == []


def test_replay_includes_events_not_yet_synced(open_backend: LogOpener) -> None:
    log = open_backend()
    for i in range(10):
        log.append(Op.PUT, f"k{i}", b"v")
    assert [event.key for event in log.replay()] == [f"k{i}" for i in range(10)]


def test_close_flushes_and_reopen_continues_the_sequence(open_backend: LogOpener) -> None:
    log = open_backend()
    for i in range(100):
        log.append(Op.PUT, f"k{i}", b"%d" % i)  # no sync: close must write them all
    log.close()
    again = open_backend()
    assert again.last_seq == 100
    assert [event.value for event in again.replay()] == [b"%d" % i for i in range(100)]
    assert again.append(Op.DELETE, "k0") == 101
    again.close()
    third = open_backend()
    events = list(third.replay())
    assert [event.seq for event in events] == list(range(1, 102))
    assert events[-1] == LogEvent(101, Op.DELETE, "k0")


def test_a_closed_log_refuses_writes_and_says_so(open_backend: LogOpener) -> None:
    log = open_backend()
    log.append(Op.PUT, "k", b"v")
    log.close()
    log.close()  # idempotent
    with pytest.raises(LogUnavailable):
        log.append(Op.PUT, "k2", b"v")
    assert not log.health().ok
    assert "closed" in log.health().detail


def test_health_is_ok_and_nothing_at_risk_after_flush(open_backend: LogOpener) -> None:
    log = open_backend()
    for i in range(20):
        log.append(Op.PUT, f"k{i}", b"v")
    log.flush()
    health = log.health()
    assert health.ok, health.detail
    assert health.at_risk == 0


def test_applied_index_must_increase_and_survives_reopen(open_backend: LogOpener) -> None:
    log = open_backend()
    assert log.last_applied_index is None
    log.append(Op.PUT, "a", b"1", applied_index=7)
    with pytest.raises(AlreadyApplied):
        log.append(Op.PUT, "b", b"2", applied_index=7)
    log.append(Op.PUT, "c", b"3")  # events without an index do not reset it
    assert log.last_applied_index == 7
    log.close()
    again = open_backend()
    assert again.last_applied_index == 7
    assert again.last_seq == 2
    with pytest.raises(AlreadyApplied):
        again.append(Op.PUT, "b", b"2", applied_index=3)


def test_concurrent_appends_get_distinct_contiguous_seqs(open_backend: LogOpener) -> None:
    log = open_backend()
    recorded: dict[int, str] = {}
    guard = threading.Lock()

    def writer(name: str) -> None:
        for i in range(100):
            key = f"{name}-{i}"
            seq = log.append(Op.PUT, key, b"v")
            log.sync(seq)
            with guard:
                recorded[seq] = key

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recorded) == list(range(1, 601))
    assert {event.seq: event.key for event in log.replay()} == recorded


def test_compaction_replaces_the_prefix_by_a_snapshot(open_backend: LogOpener) -> None:
    log = open_backend()
    assert isinstance(log, CompactableLog)
    for i in range(10):
        log.append(Op.PUT, f"k{i}", b"v", applied_index=i + 1)
    mark = log.compaction_mark()
    log.append(Op.PUT, "after-mark", b"w")
    log.compact(mark, b"snapshot-bytes")
    log.append(Op.DELETE, "k1")
    log.close()

    again = open_backend()
    assert isinstance(again, CompactableLog)
    snapshot = again.load_snapshot()
    assert snapshot is not None
    assert (snapshot.seq, snapshot.applied_index, snapshot.blob) == (10, 10, b"snapshot-bytes")
    assert [(e.seq, e.key) for e in again.replay(11)] == [(11, "after-mark"), (12, "k1")]
    assert again.last_seq == 12
    assert again.last_applied_index == 10
    with pytest.raises(ValueError, match="compacted"):
        list(again.replay(5))


def test_a_logged_store_comes_back_exactly_after_restart(open_backend: LogOpener) -> None:
    """Contents, expiry times and recency order (no reads were made) are all restored."""
    store = LoggedStore(ShardedMap(shards=2, items_per_shard=8), open_backend())
    for i in range(40):  # more keys than capacity: replay must evict the same ones
        store.put(f"k{i % 23}", b"value-%d" % i, ttl=3600 if i % 5 == 0 else None)
    store.delete("k3")
    store.delete("never-there")
    expected = store.snapshot()
    store.close()

    fresh = ShardedMap(shards=2, items_per_shard=8)
    log = open_backend()
    report = recover(fresh, log)
    assert fresh.snapshot() == expected
    assert report.replayed == 41  # 40 puts and one delete; the absent key was not logged
    fresh._check()


def test_syncs_count_the_times_events_were_made_durable(open_backend: LogOpener) -> None:
    # metrics read this as lrukv_txlog_fsyncs_total (fsyncs; PostgreSQL: commits)
    log = open_backend()
    before = log.syncs
    log.append(Op.PUT, "a", b"v")
    log.flush()
    after_one = log.syncs
    assert after_one >= before + 1
    log.flush()  # nothing new to make durable: not counted
    assert log.syncs == after_one
    log.append(Op.PUT, "b", b"v")
    log.flush()
    assert log.syncs >= after_one + 1
