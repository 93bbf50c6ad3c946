"""PostgresTransactionLog: events in a PostgreSQL table per node (psycopg 3).

Tables (created if missing; names from ``pg_names.table_name(node_id)``)::

    lrukv_txlog_<node>           seq bigint PRIMARY KEY, op smallint, key text,
                                 value bytea, expires_at float8, applied_index bigint
    lrukv_txlog_<node>_snapshot  one row: seq, applied_index, blob (lrukv.snapshot format)

Write path
----------
``append`` assigns the seq and puts the event on a bounded queue; one writer
thread takes up to ``batch_size`` events at a time and writes them with one
``COPY … FROM STDIN (FORMAT BINARY)`` and one commit. ``sync(seq)`` waits until
*seq* is committed. So concurrent writers share commits, and memory is bounded:
a full queue makes ``append`` wait up to ``queue_timeout_s``, then refuse.

Faults
------
* Unreachable at start: the constructor raises LogOpenError with one line.
* Connection lost mid-run: the writer marks the log unhealthy, so new appends
  are refused (LogUnavailable) and ``health()`` says why, and it reconnects in
  the background with backoff. Events already queued are *kept* and written
  after the reconnect (in order, skipping any whose commit reached the server
  before the connection broke), so the log never gets a gap and always matches
  the store that applied them. Their ``sync`` raises LogUnavailable if the
  commit does not come within ``sync_timeout_s``: they were not acknowledged.
* Nothing waits without a bound: connects use ``connect_timeout``, TCP
  keepalives and ``tcp_user_timeout`` catch a silent network, statements
  have a ``statement_timeout``.
* ``close()`` writes everything queued (waiting up to ``sync_timeout_s``).
* A session advisory lock keeps two processes from writing one node's table.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from lrukv_server.errors import LogUnavailable
from lrukv_server.txlog.base import (
    AlreadyApplied,
    LogEvent,
    LogHealth,
    LogOpenError,
    LogSequenceError,
    Op,
    SnapshotRecord,
)
from lrukv_server.txlog.pg_names import redact_dsn, table_name

__all__ = ["PostgresTransactionLog"]

logger = logging.getLogger("lrukv.txlog")

_LOCK_CLASS = 0x6C72  # advisory lock namespace: "lr"
_COLUMNS = ("seq", "op", "key", "value", "expires_at", "applied_index")
_COPY_TYPES = ["int8", "int2", "text", "bytea", "float8", "int8"]
_IDLE_PING_S = 2.0
_STATEMENT_TIMEOUT_MS = 30_000
_OPS = {int(op): op for op in Op}


@dataclass(frozen=True, slots=True)
class _Mark:
    seq: int
    applied_index: int | None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresTransactionLog:
    """A transaction log in PostgreSQL. See the module docstring."""

    def __init__(
        self,
        dsn: str,
        node_id: str,
        *,
        queue_size: int = 10_000,
        batch_size: int = 1_000,
        queue_timeout_s: float = 1.0,
        sync_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        """Connect, create the tables if missing, lock the node's table and read
        where the log ends. Raises LogOpenError (one line) when PostgreSQL cannot
        be reached or the table is in use by another process."""
        self._dsn = dsn
        self._where = redact_dsn(dsn)
        self._node_id = node_id
        self._table = table_name(node_id)
        self._ident = sql.Identifier(self._table)
        self._snap_ident = sql.Identifier(self._table + "_snapshot")
        self._batch_size = batch_size
        self._queue_timeout = queue_timeout_s
        self._sync_timeout = sync_timeout_s
        self._connect_timeout = connect_timeout_s
        self._queue: queue.Queue[LogEvent] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()  # seq assignment + enqueue, so the queue is in seq order
        self._cond = threading.Condition()  # committed-seq changes and health changes
        self._closed = False
        self._stop = threading.Event()
        self._healthy = True
        self._detail = "ok"
        self.reconnects = 0
        self._commits = 0  # batches committed by the writer thread (metrics)
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise LogOpenError(
                f"transaction log: cannot reach PostgreSQL at {self._where}: {_one_line(exc)}"
            ) from None
        try:
            self._create_tables(conn)
            self._lock_table(conn)
            last_seq, applied, snapshot = self._read_state(conn)
        except psycopg.Error as exc:
            conn.close()
            raise LogOpenError(
                f"transaction log: PostgreSQL at {self._where} failed at start: {_one_line(exc)}"
            ) from None
        except LogOpenError:
            conn.close()
            raise
        self._conn: psycopg.Connection[Any] | None = conn
        self._base = 0 if snapshot is None else snapshot[0]
        self._last_seq = last_seq
        self._committed = last_seq
        self._last_applied = applied
        self._thread = threading.Thread(target=self._run, name="lrukv-txlog-pg", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- connection

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._dsn,
            connect_timeout=max(1, math.ceil(self._connect_timeout)),
            application_name=f"lrukv-txlog-{self._node_id}"[:63],
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=int(self._connect_timeout * 2000),
            options=f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}",
        )

    def _create_tables(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (seq bigint PRIMARY KEY, op smallint NOT NULL,"
                    " key text NOT NULL, value bytea NOT NULL, expires_at double precision,"
                    " applied_index bigint)"
                ).format(self._ident)
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id smallint PRIMARY KEY CHECK (id = 1),"
                    " seq bigint NOT NULL, applied_index bigint, blob bytea NOT NULL)"
                ).format(self._snap_ident)
            )

    def _lock_table(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, self._table)
        ).fetchone()
        conn.commit()
        if not row or not row[0]:
            raise LogOpenError(
                f"transaction log: table {self._table} at {self._where} is in use by another "
                "process (is another node running with the same node id?)"
            )

    def _read_state(
        self, conn: psycopg.Connection[Any]
    ) -> tuple[int, int | None, tuple[int, int | None] | None]:
        snap_row = conn.execute(
            sql.SQL("SELECT seq, applied_index FROM {} WHERE id = 1").format(self._snap_ident)
        ).fetchone()
        row = conn.execute(sql.SQL("SELECT max(seq) FROM {}").format(self._ident)).fetchone()
        applied_row = conn.execute(
            sql.SQL(
                "SELECT applied_index FROM {} WHERE applied_index IS NOT NULL"
                " ORDER BY seq DESC LIMIT 1"
            ).format(self._ident)
        ).fetchone()
        conn.commit()
        snapshot = None if snap_row is None else (int(snap_row[0]), snap_row[1])
        last_seq = int(row[0]) if row and row[0] is not None else 0
        applied = applied_row[0] if applied_row else None
        if snapshot is not None:
            last_seq = max(last_seq, snapshot[0])
            if snapshot[1] is not None and (applied is None or applied < snapshot[1]):
                applied = snapshot[1]
        return last_seq, applied, snapshot

    # ------------------------------------------------------------------ write

    def append(
        self,
        op: Op,
        key: str,
        value: bytes = b"",
        expires_at: float | None = None,
        applied_index: int | None = None,
    ) -> int:
        """Queue one event; return its seq. It is durable after ``sync(seq)``.

        Raises LogUnavailable when closed, when PostgreSQL is unreachable, or when
        the queue stays full for ``queue_timeout_s`` (back-pressure).
        """
        if not self._lock.acquire(timeout=self._queue_timeout):
            raise LogUnavailable(f"transaction log at {self._where}: writers are backed up")
        try:
            if self._closed:
                raise LogUnavailable(f"transaction log at {self._where} is closed")
            if not self._healthy:
                raise LogUnavailable(self._refusal())
            if applied_index is not None:
                last = self._last_applied
                if last is not None and applied_index <= last:
                    raise AlreadyApplied(
                        f"applied_index {applied_index} is not after {last}: already applied"
                    )
            seq = self._last_seq + 1
            event = LogEvent(seq, Op(op), key, value, expires_at, applied_index)
            try:
                self._queue.put(event, timeout=self._queue_timeout)
            except queue.Full:
                raise LogUnavailable(
                    f"transaction log at {self._where}: {self._queue.maxsize} events are "
                    f"waiting for PostgreSQL and none left the queue in {self._queue_timeout:g}s;"
                    " writes are refused until it catches up"
                ) from None
            self._last_seq = seq
            if applied_index is not None:
                self._last_applied = applied_index
            return seq
        finally:
            self._lock.release()

    def sync(self, seq: int) -> None:
        """Wait until event *seq* is committed; LogUnavailable after ``sync_timeout_s``."""
        if seq <= self._committed:
            return
        deadline = time.monotonic() + self._sync_timeout
        with self._cond:
            while self._committed < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    raise LogUnavailable(
                        f"transaction log at {self._where}: event {seq} not committed within "
                        f"{self._sync_timeout:g}s ({self._detail})"
                    )
                self._cond.wait(remaining)

    def flush(self) -> None:
        """Wait until everything appended so far is committed."""
        self.sync(self._last_seq)

    def _refusal(self) -> str:
        return f"transaction log at {self._where} is unavailable: {self._detail}"

    def _set_health(self, healthy: bool, detail: str) -> None:
        with self._cond:
            changed = healthy != self._healthy
            self._healthy = healthy
            self._detail = detail
            self._cond.notify_all()
        if changed and not healthy:
            logger.error("transaction log at %s: %s; refusing writes", self._where, detail)
        elif changed:
            logger.warning("transaction log at %s: %s", self._where, detail)

    # ----------------------------------------------------------- writer thread

    def _run(self) -> None:
        batch: list[LogEvent] = []
        idle_since = time.monotonic()
        backoff = 0.05
        while True:
            if not batch:
                if self._stop.is_set() and self._queue.empty():
                    break
                try:
                    batch.append(self._queue.get(timeout=0.1))
                except queue.Empty:
                    if self._conn is not None and time.monotonic() - idle_since > _IDLE_PING_S:
                        self._ping()
                        idle_since = time.monotonic()
                    if self._conn is not None:
                        continue
                else:
                    while len(batch) < self._batch_size:
                        try:
                            batch.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
            if self._conn is None:
                if not self._reconnect():
                    if self._stop.is_set():
                        break  # closing and PostgreSQL is still gone: close() reports the loss
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.05
                batch = [event for event in batch if event.seq > self._committed]
                if not batch:
                    continue
            try:
                self._write(batch)
            except psycopg.Error as exc:
                self._lost(exc)
                continue
            with self._cond:
                self._committed = batch[-1].seq
                self._cond.notify_all()
            batch = []
            idle_since = time.monotonic()

    def _write(self, batch: list[LogEvent]) -> None:
        conn = self._conn
        assert conn is not None
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in _COLUMNS)
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(self._ident, columns)
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(_COPY_TYPES)
            write_row = copy.write_row
            for event in batch:
                write_row(
                    (
                        event.seq,
                        int(event.op),
                        event.key,
                        event.value,
                        event.expires_at,
                        event.applied_index,
                    )
                )
        conn.commit()
        self._commits += 1  # only the writer thread writes it

    def _ping(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("SELECT 1")
            conn.commit()
        except psycopg.Error as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._set_health(False, f"PostgreSQL connection lost ({_one_line(exc)}); reconnecting")

    def _reconnect(self) -> bool:
        """Connect, re-take the table's lock, learn what was committed. True on success."""
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            self._set_health(False, f"PostgreSQL unreachable ({_one_line(exc)}); reconnecting")
            return False
        try:
            self._lock_table(conn)
            row = conn.execute(sql.SQL("SELECT max(seq) FROM {}").format(self._ident)).fetchone()
            conn.commit()
        except (psycopg.Error, LogOpenError) as exc:
            conn.close()
            self._set_health(False, f"PostgreSQL reconnect failed ({_one_line(exc)}); retrying")
            return False
        committed = int(row[0]) if row and row[0] is not None else 0
        with self._cond:
            # A commit may have reached the server just before the connection broke.
            self._committed = max(self._committed, committed)
            self._cond.notify_all()
        self._conn = conn
        self.reconnects += 1
        self._set_health(True, "ok (reconnected to PostgreSQL)")
        return True

    # ------------------------------------------------------------------- read

    def replay(self, from_seq: int = 1) -> Iterator[LogEvent]:
        """Yield committed events with ``seq >= from_seq`` in seq order, on a
        connection of its own. Everything appended before the call is committed
        first (LogUnavailable if that cannot happen in ``sync_timeout_s``)."""
        self.flush()
        upto = self._last_seq
        if from_seq <= self._base:
            raise ValueError(
                f"events up to seq {self._base} were compacted into the snapshot; "
                f"replay from seq {self._base + 1} or later"
            )
        return self._iter_rows(from_seq, upto)

    def _iter_rows(self, from_seq: int, upto: int) -> Iterator[LogEvent]:
        expected = from_seq
        query = sql.SQL(
            "SELECT seq, op, key, value, expires_at, applied_index FROM {}"
            " WHERE seq >= %s AND seq <= %s ORDER BY seq"
        ).format(self._ident)
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            raise LogUnavailable(
                f"transaction log: cannot reach PostgreSQL at {self._where}: {_one_line(exc)}"
            ) from None
        try:
            with conn.cursor(name="lrukv_replay") as cur:
                cur.itersize = 10_000
                cur.execute(query, (from_seq, upto))
                for seq, op, key, value, expires_at, applied_index in cur:
                    if seq != expected:
                        raise LogSequenceError(
                            f"table {self._table}: sequence gap: expected seq {expected}, "
                            f"found {seq}",
                            where=self._table,
                            seq=expected,
                        )
                    if op not in _OPS:
                        raise LogSequenceError(
                            f"table {self._table}: unknown op {op} at seq {seq}",
                            where=self._table,
                            seq=seq,
                        )
                    yield LogEvent(seq, _OPS[op], key, bytes(value), expires_at, applied_index)
                    expected += 1
            if expected <= upto:
                raise LogSequenceError(
                    f"table {self._table}: events {expected}..{upto} are missing",
                    where=self._table,
                    seq=expected,
                )
        finally:
            conn.close()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def last_applied_index(self) -> int | None:
        return self._last_applied

    @property
    def syncs(self) -> int:
        """Batches committed since the log was opened (one commit per batch)."""
        return self._commits

    @property
    def table(self) -> str:
        """The events table's name."""
        return self._table

    @property
    def application_name(self) -> str:
        """How the writer's connection shows in ``pg_stat_activity``."""
        return f"lrukv-txlog-{self._node_id}"[:63]

    def health(self) -> LogHealth:
        """Not ok while disconnected or closed; ``at_risk`` = events not yet committed."""
        at_risk = self._last_seq - self._committed
        if self._closed:
            return LogHealth(False, f"transaction log at {self._where} is closed", at_risk)
        if not self._healthy:
            return LogHealth(False, self._refusal(), at_risk)
        return LogHealth(True, f"PostgreSQL {self._where} table {self._table}", at_risk)

    # ------------------------------------------------------------- compaction

    def compaction_mark(self) -> object:
        """See CompactableLog: call with appends excluded by the caller."""
        return _Mark(self._last_seq, self._last_applied)

    def compact(self, mark: object, blob: bytes) -> None:
        """Store the snapshot and delete the events it covers, in one transaction."""
        if not isinstance(mark, _Mark):
            raise TypeError("compact() needs the token returned by compaction_mark()")
        self.sync(mark.seq)
        try:
            with self._connect() as conn, conn.transaction():
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (id, seq, applied_index, blob) VALUES (1, %s, %s, %s)"
                        " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq,"
                        " applied_index = excluded.applied_index, blob = excluded.blob"
                        " WHERE {}.seq < excluded.seq"
                    ).format(self._snap_ident, self._snap_ident),
                    (mark.seq, mark.applied_index, blob),
                )
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE seq <= %s").format(self._ident), (mark.seq,)
                )
        except psycopg.Error as exc:
            raise LogUnavailable(
                f"transaction log at {self._where}: compaction failed: {_one_line(exc)}"
            ) from None
        self._base = max(self._base, mark.seq)
        logger.info("transaction log %s compacted at seq %d", self._table, mark.seq)

    def load_snapshot(self) -> SnapshotRecord | None:
        """The compaction snapshot, or None."""
        try:
            with self._connect() as conn:
                row = conn.execute(
                    sql.SQL("SELECT seq, applied_index, blob FROM {} WHERE id = 1").format(
                        self._snap_ident
                    )
                ).fetchone()
        except psycopg.Error as exc:
            raise LogUnavailable(
                f"transaction log: cannot reach PostgreSQL at {self._where}: {_one_line(exc)}"
            ) from None
        if row is None:
            return None
        return SnapshotRecord(int(row[0]), row[1], bytes(row[2]))

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Commit everything queued (waiting up to ``sync_timeout_s``), stop the
        writer, disconnect. Idempotent. Raises LogUnavailable, after releasing
        everything, if some events could not be written (none of them was
        acknowledged: their ``sync`` had not returned)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        error: LogUnavailable | None = None
        try:
            self.sync(self._last_seq)
        except LogUnavailable as exc:
            error = exc
        self._stop.set()
        self._thread.join(timeout=self._sync_timeout + self._connect_timeout + 1)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        lost = self._last_seq - self._committed
        if lost:
            message = (
                f"transaction log at {self._where}: {lost} events could not be written "
                "before shutdown; none of them was acknowledged"
            )
            logger.error(message)
            raise LogUnavailable(message) from error

    def __enter__(self) -> PostgresTransactionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresTransactionLog({self._where!r}, table={self._table!r})"
