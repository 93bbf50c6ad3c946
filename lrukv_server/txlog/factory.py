"""open_log: build the configured TransactionLog backend."""

from __future__ import annotations

import os

from lrukv_server.txlog.base import TransactionLog
from lrukv_server.txlog.config import Backend, TxLogConfig
from lrukv_server.txlog.file_log import FileTransactionLog

__all__ = ["open_log"]


def open_log(
    config: TxLogConfig, data_dir: str | os.PathLike[str], node_id: str
) -> TransactionLog | None:
    """Open the log *config* describes, or return None when it is off.

    The file log lives at ``config.file_path(data_dir)``; the PostgreSQL log in
    the table of *node_id*. Raises ValueError for a bad config, LogOpenError
    when the log cannot be opened (one line: unreachable PostgreSQL, a file in
    use by another process…), CorruptLog for damage that is not a torn tail.
    """
    config.validate()
    if config.backend is Backend.OFF:
        return None
    if config.backend is Backend.FILE:
        return FileTransactionLog(
            config.file_path(data_dir),
            fsync=config.fsync,
            fsync_interval_ms=config.fsync_interval_ms,
        )
    # Imported here: psycopg is an optional extra, needed only for this backend.
    from lrukv_server.txlog.pg_log import PostgresTransactionLog  # noqa: PLC0415

    assert config.dsn is not None  # validate() checked it
    return PostgresTransactionLog(
        config.dsn,
        node_id,
        queue_size=config.pg_queue_size,
        batch_size=config.pg_batch_size,
        queue_timeout_s=config.pg_queue_timeout_s,
        sync_timeout_s=config.pg_sync_timeout_s,
        connect_timeout_s=config.pg_connect_timeout_s,
    )
