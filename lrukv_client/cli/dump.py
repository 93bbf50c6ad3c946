"""The file format of ``lrukv export`` / ``lrukv import``: NDJSON, one item a line.

    {"key": "caf\u00e9", "value": "AP8="}

``key`` is the key as a JSON string (any Unicode, exactly); ``value`` is the
value's bytes in standard base64 (RFC 4648, with padding), so every byte
survives. An optional ``ttl`` (seconds, > 0) is read on import; export does not
write it (TTLs are not exported: the stream of items does not carry them, and
asking for each key's TTL would double the cost of an export).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from lrukv_client import InvalidArgument

__all__ = ["BadLine", "DumpItem", "encode_item", "parse_line"]


@dataclass(frozen=True, slots=True)
class DumpItem:
    """One item of a dump file."""

    key: str
    value: bytes
    ttl: float | None = None


class BadLine(InvalidArgument):
    """A line that is not an item; the message says why (a usage error, exit 2)."""


def encode_item(key: str, value: bytes) -> str:
    """The line of one item, newline included.

    >>> encode_item("caf\u00e9", b"\\x00\\xff")
    '{"key": "caf\u00e9", "value": "AP8="}\\n'
    """
    encoded = base64.b64encode(value).decode("ascii")
    return f'{{"key": {json.dumps(key, ensure_ascii=False)}, "value": "{encoded}"}}\n'


def parse_line(line: str | bytes) -> DumpItem:
    """Read one line back; raise :class:`BadLine` saying what is wrong.

    >>> parse_line('{"key": "k", "value": "AP8="}')
    DumpItem(key='k', value=b'\\x00\\xff', ttl=None)
    >>> parse_line('{"key": "k"}')
    Traceback (most recent call last):
    ...
    lrukv_client.cli.dump.BadLine: no "value" (base64 of the bytes)
    """
    try:
        item = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadLine(f"not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise BadLine('not an object {"key": ..., "value": ...}')
    key = item.get("key")
    if not isinstance(key, str):
        raise BadLine('no "key" string')
    value = item.get("value")
    if not isinstance(value, str):
        raise BadLine('no "value" (base64 of the bytes)')
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise BadLine('"value" is not base64') from None
    ttl = item.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)):
        raise BadLine('"ttl" is not a number of seconds')
    return DumpItem(key, data, None if ttl is None else float(ttl))
