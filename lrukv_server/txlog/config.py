"""TxLogConfig: which transaction log to run, and how, as a frozen validated value.

The server's ``-d/--dbLogger`` flag value is parsed by :meth:`TxLogConfig.from_flag`:

==============================  ==============================================
``-d`` value                    log
==============================  ==============================================
(absent), ``off``, ``false``    none (the default, as in the original)
``file``                        file ``txlog.log`` under the data directory
``file:/some/path``             that file (a relative path is under the data dir)
``postgresql://…`` DSN          PostgreSQL (``postgres://`` is accepted too)
``postgres``, ``on``, ``true``  PostgreSQL at the DSN in ``LRUKV_PG_DSN``
                                (the original's ``-d`` was a boolean that meant
                                "log to PostgreSQL")
==============================  ==============================================
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from lrukv_server.txlog.pg_names import redact_dsn

__all__ = ["DEFAULT_FILE_NAME", "PG_DSN_ENV", "Backend", "FsyncPolicy", "TxLogConfig"]

PG_DSN_ENV = "LRUKV_PG_DSN"
DEFAULT_FILE_NAME = "txlog.log"

_OFF = frozenset({"", "off", "none", "false", "no", "0"})
_PG_FROM_ENV = frozenset({"postgres", "postgresql", "pg", "on", "true", "yes", "1"})


class Backend(enum.Enum):
    OFF = "off"
    FILE = "file"
    POSTGRES = "postgres"


_VALID_POLICIES = "valid policies: always, interval:MS (interval alone: 100 ms), never"


class FsyncPolicy(enum.Enum):
    """When the file backend calls fsync. Every policy hands each record to the
    operating system (a copy into a shared mapping of the log file, so into the
    page cache) before the write is acknowledged, so a crash of the *process*
    (kill -9) loses nothing under any policy; they differ in what a crash of the
    *machine* (power loss, kernel panic) can lose:

    * ``always``: nothing. Each acknowledgement waits for an fsync; concurrent
      writers share one fsync (group commit).
    * ``interval``: at most the last ``fsync_interval_ms`` of acknowledged writes;
      a background thread fsyncs on that period.
    * ``never``: whatever the OS had not written back (the OS decides; on Linux
      typically up to ~30 s). fsync happens only at flush, compaction and close.
    """

    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"

    @classmethod
    def parse(cls, text: str) -> tuple[FsyncPolicy, int | None]:
        """Parse ``always``, ``never``, ``interval`` or ``interval:<ms>``; return
        the policy and the interval given (None when not given).

        >>> FsyncPolicy.parse("interval:50")
        (<FsyncPolicy.INTERVAL: 'interval'>, 50)
        """
        name, _, ms = text.strip().lower().partition(":")
        try:
            policy = cls(name)
        except ValueError:
            raise ValueError(f"invalid fsync policy {text!r}; {_VALID_POLICIES}") from None
        if not ms:
            return policy, None
        if policy is not cls.INTERVAL:
            raise ValueError(
                f"only the interval policy takes milliseconds, not {text!r}; {_VALID_POLICIES}"
            )
        if not (ms.isascii() and ms.isdigit()) or int(ms) < 1:
            raise ValueError(
                f"fsync interval must be a positive whole number of milliseconds, not {ms!r}; "
                f"{_VALID_POLICIES}"
            )
        return policy, int(ms)


@dataclass(frozen=True, slots=True)
class TxLogConfig:
    """Settings of the transaction log. Defaults: off; when on, the safest choices.

    >>> TxLogConfig.from_flag("file:/var/lib/lrukv/log").path
    '/var/lib/lrukv/log'
    >>> TxLogConfig(backend=Backend.FILE, fsync_interval_ms=0).validate()
    Traceback (most recent call last):
    ...
    ValueError: fsync_interval_ms must be a positive int, not 0
    """

    backend: Backend = Backend.OFF
    # File backend: the log file (its snapshot is ``<path>.snapshot``). None means
    # DEFAULT_FILE_NAME under the data directory; a relative path is under it too.
    path: str | None = None
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    fsync_interval_ms: int = 100
    # Compact (snapshot the store, start a fresh log) after this many events; None never.
    compact_after_events: int | None = 100_000
    # PostgreSQL backend.
    dsn: str | None = None
    pg_queue_size: int = 10_000  # events waiting for the writer thread, at most
    pg_batch_size: int = 1_000  # events per COPY and commit, at most
    pg_queue_timeout_s: float = 1.0  # a writer waits this long for queue room, then refused
    pg_sync_timeout_s: float = 5.0  # a writer waits this long for its commit, then refused
    pg_connect_timeout_s: float = 5.0

    def validate(self) -> TxLogConfig:
        """Raise ValueError naming the first bad setting; return self."""
        if not isinstance(self.backend, Backend):
            raise ValueError(f"backend must be a Backend, not {self.backend!r}")
        if not isinstance(self.fsync, FsyncPolicy):
            raise ValueError(f"fsync must be an FsyncPolicy, not {self.fsync!r}")
        ints: dict[str, int | None] = {
            "fsync_interval_ms": self.fsync_interval_ms,
            "compact_after_events": self.compact_after_events,
            "pg_queue_size": self.pg_queue_size,
            "pg_batch_size": self.pg_batch_size,
        }
        for name, number in ints.items():
            if number is None and name == "compact_after_events":
                continue
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(f"{name} must be a positive int, not {number!r}")
        for name in ("pg_queue_timeout_s", "pg_sync_timeout_s", "pg_connect_timeout_s"):
            seconds = getattr(self, name)
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not math.isfinite(seconds)
                or seconds <= 0
            ):
                raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
        if self.backend is Backend.POSTGRES:
            if not self.dsn:
                raise ValueError(
                    "the PostgreSQL transaction log needs a DSN "
                    f"(-d postgresql://… or {PG_DSN_ENV})"
                )
            if not self.dsn.startswith(("postgresql://", "postgres://")):
                raise ValueError("the PostgreSQL DSN must start with postgresql://")
        if self.path is not None and (not isinstance(self.path, str) or not self.path):
            raise ValueError(f"path must be a non-empty str or None, not {self.path!r}")
        return self

    @classmethod
    def from_flag(
        cls,
        value: str | None,
        *,
        env: Mapping[str, str] | None = None,
        fsync: str | None = None,
        **overrides: object,
    ) -> TxLogConfig:
        """Build a validated config from the ``-d/--dbLogger`` value (see the
        module docstring), an optional fsync policy text (``FsyncPolicy.parse``)
        and any other field given by name. ValueError says what is wrong.

        >>> TxLogConfig.from_flag("postgres", env={"LRUKV_PG_DSN": "postgresql://db/x"}).dsn
        'postgresql://db/x'
        >>> TxLogConfig.from_flag(None).backend
        <Backend.OFF: 'off'>
        """
        environ = os.environ if env is None else env
        text = (value or "").strip()
        lowered = text.lower()
        if lowered in _OFF:
            config = cls()
        elif lowered == "file":
            config = cls(backend=Backend.FILE)
        elif lowered.startswith("file:"):
            path = text[len("file:") :]
            if path.startswith("//"):  # file:///abs/path
                path = path[2:]
            if not path:
                raise ValueError("-d file: needs a path after the colon, or use -d file")
            config = cls(backend=Backend.FILE, path=path)
        elif lowered.startswith(("postgresql://", "postgres://")):
            config = cls(backend=Backend.POSTGRES, dsn=text)
        elif lowered in _PG_FROM_ENV:
            dsn = environ.get(PG_DSN_ENV, "").strip()
            if not dsn:
                raise ValueError(
                    f"-d {text} logs to PostgreSQL, but {PG_DSN_ENV} is not set; "
                    "give a DSN (-d postgresql://user@host/db) or use -d file"
                )
            config = cls(backend=Backend.POSTGRES, dsn=dsn)
        else:
            raise ValueError(
                f"unknown transaction log {text!r}; "
                "use off, file, file:/path or a postgresql:// DSN"
            )
        fields: dict[str, object] = dict(overrides)
        if fsync is not None:
            policy, interval = FsyncPolicy.parse(fsync)
            fields["fsync"] = policy
            if interval is not None:
                fields["fsync_interval_ms"] = interval
        if fields:
            config = replace(config, **fields)  # type: ignore[arg-type]
        return config.validate()

    def file_path(self, data_dir: str | os.PathLike[str]) -> str:
        """The log file's absolute path for the file backend."""
        path = self.path or DEFAULT_FILE_NAME
        return os.path.abspath(os.path.join(os.fspath(data_dir), path))

    def describe(self) -> str:
        """One line for the start-up log, without secrets."""
        if self.backend is Backend.OFF:
            return "transaction log off"
        if self.backend is Backend.FILE:
            policy = self.fsync.value
            if self.fsync is FsyncPolicy.INTERVAL:
                policy += f":{self.fsync_interval_ms}ms"
            return f"transaction log: file {self.path or DEFAULT_FILE_NAME}, fsync={policy}"
        return f"transaction log: PostgreSQL {redact_dsn(self.dsn or '')}"
