"""Names for the PostgreSQL backend: per-node table names and DSNs safe to print.

Kept free of psycopg so configuration and messages work without the extra.
"""

from __future__ import annotations

import re
import zlib
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TABLE_PREFIX", "redact_dsn", "table_name"]

TABLE_PREFIX = "lrukv_txlog_"
_MAX_IDENTIFIER = 63  # PostgreSQL truncates longer identifiers (NAMEDATALEN - 1)
_UNSAFE = re.compile(r"[^a-z0-9_]")


def table_name(node_id: str) -> str:
    """The events table of *node_id*: ``lrukv_txlog_<node>``, lower-case ASCII
    letters, digits and underscores only, at most 63 bytes.

    When sanitising changed the id (or it had to be shortened), a CRC of the
    original id is appended, so distinct ids never share a table.

    >>> table_name("node1")
    'lrukv_txlog_node1'
    >>> table_name("Node-1")
    'lrukv_txlog_node_1_145e1969'
    """
    if not isinstance(node_id, str) or not node_id:
        raise ValueError(f"node id must be a non-empty str, not {node_id!r}")
    clean = _UNSAFE.sub("_", node_id.lower())
    suffix = "" if clean == node_id else f"_{zlib.crc32(node_id.encode('utf-8')):08x}"
    room = _MAX_IDENTIFIER - len(TABLE_PREFIX) - len("_snapshot") - len(suffix)
    if len(clean) > room:
        suffix = f"_{zlib.crc32(node_id.encode('utf-8')):08x}"
        room = _MAX_IDENTIFIER - len(TABLE_PREFIX) - len("_snapshot") - len(suffix)
        clean = clean[:room]
    return f"{TABLE_PREFIX}{clean}{suffix}"


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs.

    >>> redact_dsn("postgresql://app:s3cret@db.local:5432/kv")
    'postgresql://app:***@db.local:5432/kv'
    """
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparsable DSN>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
