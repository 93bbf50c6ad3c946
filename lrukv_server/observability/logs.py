"""Log formats of ``lrukv-server`` (``-l``): where every line goes and what it carries.

==============  ===========================================================
``prod``        JSON lines at INFO: ``ts`` (ISO-8601, UTC, milliseconds),
                ``level``, ``logger``, ``msg``, ``node``, ``pid``, and
                ``request_id`` / ``exc`` when there is one. No access log.
``development`` readable lines at INFO, with the access log (each line
                ends with the request's id).
``debug``       readable lines at DEBUG: lrukv's own debug lines (Raft
                proposals that fail...), PySyncObj's, gunicorn's.
==============  ===========================================================

Every record made while a request is handled carries that request's id
(:mod:`lrukv_server.observability.request_id`). Everything goes to stderr;
stdout carries only the start-up banner.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from lrukv_server.config import LogMode
from lrukv_server.observability.request_id import RequestIdFilter

__all__ = ["JsonFormatter", "ReadableFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers expect in production.

    >>> record = logging.LogRecord("lrukv", logging.INFO, "f.py", 1, "hi %s", ("x",), None)
    >>> record.created = 0.0
    >>> JsonFormatter(node_id="n1").format(record)[:60]
    '{"ts": "1970-01-01T00:00:00.000+00:00", "level": "info", "lo'
    """

    def __init__(self, *, node_id: str = "") -> None:
        super().__init__()
        self._node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._node_id:
            entry["node"] = self._node_id
        entry["pid"] = record.process
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """``2026-12-03 17:23:56,564 INFO lrukv_server[1234]: message [request_id=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return text if request_id is None else f"{text} [request_id={request_id}]"


def configure_logging(mode: LogMode, *, node_id: str = "") -> None:
    """Send every logger's records to stderr in *mode*'s format (module docstring)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(node_id=node_id) if mode is LogMode.PROD else ReadableFormatter()
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if mode is LogMode.DEBUG else logging.INFO)
