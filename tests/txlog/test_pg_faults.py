"""The PostgreSQL backend against a real server: lost connections, a stopped server,
back-pressure, separate tables per node. Nothing acknowledged may be lost."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from lrukv import ShardedMap
from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog import LoggedStore, LogOpenError, Op
from lrukv_server.txlog.pg_log import PostgresTransactionLog
from tests.pg import ThrowawayCluster, _free_port, drop_node_tables, wait_until


@contextlib.contextmanager
def pg_log(dsn: str, node: str, **options: float) -> Iterator[PostgresTransactionLog]:
    log = PostgresTransactionLog(dsn, node, **options)  # type: ignore[arg-type]
    try:
        yield log
    finally:
        with contextlib.suppress(LogUnavailable):
            log.close()


def put_acked(store: LoggedStore, key: str, acked: dict[str, bytes]) -> bool:
    """Put; remember the value if acknowledged. A refusal is allowed, a loss is not."""
    value = key.encode()
    try:
        store.put(key, value)
    except LogUnavailable:
        return False
    acked[key] = value
    return True


def assert_all_replayed(dsn: str, node: str, acked: dict[str, bytes]) -> None:
    fresh = ShardedMap(shards=4, items_per_shard=10_000)
    with pg_log(dsn, node) as log:
        for event in log.replay():
            if event.op is Op.PUT:
                fresh.put(event.key, event.value, expires_at=event.expires_at)
            else:
                fresh.pop(event.key)
    lost = {key for key, value in acked.items() if fresh.get(key) != value}
    assert lost == set()


def test_unreachable_at_start_refuses_with_one_clear_line() -> None:
    dsn = f"postgresql://app:hunter2@127.0.0.1:{_free_port()}/db"
    with pytest.raises(LogOpenError) as caught:
        PostgresTransactionLog(dsn, "n1", connect_timeout_s=2)
    message = str(caught.value)
    assert "\n" not in message
    assert "cannot reach PostgreSQL at postgresql://app:***@127.0.0.1" in message
    assert "hunter2" not in message


def test_each_node_has_its_own_table_and_one_writer(pg_dsn: str, pg_node: str) -> None:
    other = f"{pg_node}-other"
    try:
        with pg_log(pg_dsn, pg_node) as mine, pg_log(pg_dsn, other) as theirs:
            mine.sync(mine.append(Op.PUT, "a", b"mine"))
            theirs.sync(theirs.append(Op.PUT, "a", b"theirs"))
            assert [e.value for e in mine.replay()] == [b"mine"]
            assert [e.value for e in theirs.replay()] == [b"theirs"]
            assert mine.table != theirs.table
            with pytest.raises(LogOpenError, match="in use by another process"):
                PostgresTransactionLog(pg_dsn, pg_node)
    finally:
        drop_node_tables(pg_dsn, other)


def terminate_writer(
    admin: psycopg.Connection[tuple[object, ...]], log: PostgresTransactionLog
) -> int:
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (log.application_name,),
    ).fetchall()
    return len(rows)


def test_a_killed_connection_is_reconnected_and_nothing_acked_is_lost(
    pg_dsn: str, pg_node: str
) -> None:
    log = PostgresTransactionLog(pg_dsn, pg_node, sync_timeout_s=1.0)
    store = LoggedStore(ShardedMap(shards=4, items_per_shard=10_000), log)
    acked: dict[str, bytes] = {}
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for i in range(50):
            assert put_acked(store, f"before-{i}", acked)

        # 1. Killed, and PostgreSQL lets it straight back in: the writer retries
        #    the batch on a new connection and the put is acknowledged.
        assert terminate_writer(admin, log) == 1
        wait_until(lambda: put_acked(store, "after-first-kill", acked), what="a write")
        assert log.reconnects == 1

        # 2. Killed, and it cannot get its table back (we hold its lock): writes
        #    are refused and health says why, until it can.
        assert terminate_writer(admin, log) == 1
        lock = ("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (0x6C72, log.table))
        wait_until(lambda: admin.execute(*lock).fetchone() == (True,), what="the table lock")
        assert not put_acked(store, "refused-1", acked)  # not committed within sync timeout
        assert not log.health().ok
        assert "in use by another process" in log.health().detail
        with pytest.raises(LogUnavailable):
            store.put("refused-2", b"x")
        admin.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock[1])
        wait_until(lambda: log.health().ok, what="the log to reconnect")
        for i in range(20):
            assert put_acked(store, f"after-{i}", acked)
    store.close()
    assert_all_replayed(pg_dsn, pg_node, acked)


@pytest.mark.slow
def test_a_stopped_server_refuses_writes_until_it_is_back(pg_throwaway: ThrowawayCluster) -> None:
    dsn, node = pg_throwaway.dsn, "stopped"
    log = PostgresTransactionLog(dsn, node, sync_timeout_s=1.0, connect_timeout_s=1.0)
    store = LoggedStore(ShardedMap(shards=4, items_per_shard=10_000), log)
    acked: dict[str, bytes] = {}
    for i in range(20):
        assert put_acked(store, f"before-{i}", acked)

    pg_throwaway.stop()
    assert not put_acked(store, "while-down-1", acked)  # waited sync_timeout_s, refused
    health = store.log_health()
    assert not health.ok
    assert "PostgreSQL" in health.detail
    with pytest.raises(LogUnavailable, match="unavailable"):
        store.put("while-down-2", b"x")  # refused at once: the log knows it is down
    assert store.get("while-down-2") is None

    pg_throwaway.start()
    wait_until(lambda: store.log_health().ok, what="the log to reconnect")
    for i in range(20):
        assert put_acked(store, f"after-{i}", acked)
    store.close()
    assert_all_replayed(dsn, node, acked)


def test_a_full_queue_pushes_back_with_bounded_memory(pg_dsn: str, pg_node: str) -> None:
    with pg_log(
        pg_dsn, pg_node, queue_size=10, batch_size=5, queue_timeout_s=0.2, sync_timeout_s=10
    ) as log:
        log.sync(log.append(Op.PUT, "first", b"v"))  # the table exists and is ours
        with psycopg.connect(pg_dsn) as blocker:
            # Another session holds the table, so the writer's COPY waits.
            blocker.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(log.table))
            )
            accepted = 0
            with pytest.raises(LogUnavailable, match="waiting for PostgreSQL"):
                for i in range(100):
                    log.append(Op.PUT, f"k{i}", b"v")
                    accepted += 1
            # At most: a batch in flight, the queue, and one more being taken.
            assert accepted <= 10 + 5 + 1
            assert log.health().at_risk == accepted
            blocker.rollback()  # release the table
        log.flush()
        assert log.health().at_risk == 0
        assert [e.key for e in log.replay()] == ["first"] + [f"k{i}" for i in range(accepted)]


def test_shutdown_commits_everything_queued(pg_dsn: str, pg_node: str) -> None:
    with pg_log(pg_dsn, pg_node) as log:
        for i in range(2_000):
            log.append(Op.PUT, f"k{i}", b"v")  # none synced
    with pg_log(pg_dsn, pg_node) as log:
        assert log.last_seq == 2_000
        assert sum(1 for _ in log.replay()) == 2_000
