"""Transaction logs: every acknowledged PUT and DELETE, recorded and replayed at start.

Run a store with a log::

    from lrukv import StoreConfig
    from lrukv_server.txlog import LoggedStore, TxLogConfig

    config = TxLogConfig.from_flag("file")          # the -d/--dbLogger value
    store = LoggedStore.open(config, StoreConfig().build(), data_dir="data", node_id="n1")
    store.put("key-a", b"Hello, key-value store!")  # returns once logged
    store.close()

Backends: :class:`FileTransactionLog` (``file_log``, the default) and
``PostgresTransactionLog`` (``pg_log``, needs the ``postgres`` extra; imported
lazily by :func:`open_log`). Format, fsync policies and faults: docs/txlog.md.
"""

from lrukv_server.txlog.base import (
    AlreadyApplied,
    CompactableLog,
    CorruptLog,
    LogCounters,
    LogEvent,
    LogHealth,
    LogOpenError,
    LogSequenceError,
    Op,
    SnapshotRecord,
    TransactionLog,
    TxLogError,
)
from lrukv_server.txlog.config import Backend, FsyncPolicy, TxLogConfig
from lrukv_server.txlog.factory import open_log
from lrukv_server.txlog.file_log import FileTransactionLog
from lrukv_server.txlog.logged_store import LoggedStore
from lrukv_server.txlog.recovery import RecoveryReport, recover

__all__ = [
    "AlreadyApplied",
    "Backend",
    "CompactableLog",
    "CorruptLog",
    "FileTransactionLog",
    "FsyncPolicy",
    "LogCounters",
    "LogEvent",
    "LogHealth",
    "LogOpenError",
    "LogSequenceError",
    "LoggedStore",
    "Op",
    "RecoveryReport",
    "SnapshotRecord",
    "TransactionLog",
    "TxLogConfig",
    "TxLogError",
    "open_log",
    "recover",
]
