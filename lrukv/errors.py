"""Exceptions raised by the lrukv core.

Every exception the core raises on purpose derives from :class:`LrukvError`, and
each one also derives from the built-in exception a Python user would expect, so
``except KeyError`` and ``except ValueError`` keep working::

    LrukvError
    ├── KeyNotFound            (also KeyError)    the key is absent or expired
    ├── InvalidArgument        (also ValueError)  bad input; the store is unchanged
    │   ├── InvalidKey                            not str, empty, too long, not UTF-8, controls
    │   ├── InvalidValue       (also TypeError)   the value is not ``bytes``
    │   ├── ValueTooLarge                         value or item larger than a limit allows
    │   ├── InvalidTTL                            TTL not a finite positive number
    │   └── InvalidConfig                         negative or zero sizes, conflicting options
    └── SnapshotError          (also ValueError)  cannot restore; the store is unchanged
        ├── CorruptSnapshot                       bad magic, truncated, CRC mismatch
        ├── UnsupportedSnapshotVersion            written by a newer lrukv
        └── SnapshotMismatch                      geometry (shards, items per shard, bytes) differs
"""

from __future__ import annotations

__all__ = [
    "CorruptSnapshot",
    "InvalidArgument",
    "InvalidConfig",
    "InvalidKey",
    "InvalidTTL",
    "InvalidValue",
    "KeyNotFound",
    "LrukvError",
    "SnapshotError",
    "SnapshotMismatch",
    "UnsupportedSnapshotVersion",
    "ValueTooLarge",
]


class LrukvError(Exception):
    """Base class of every error the lrukv core raises."""


class KeyNotFound(LrukvError, KeyError):
    """The key is not in the store (never written, deleted, evicted or expired)."""

    def __init__(self, key: object) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"key not found: {self.key!r}"


class InvalidArgument(LrukvError, ValueError):
    """An argument is unacceptable. The operation did nothing."""


class InvalidKey(InvalidArgument):
    """A key is not a non-empty str of printable UTF-8 within the length limit."""


class InvalidValue(InvalidArgument, TypeError):
    """A value is not ``bytes``."""


class ValueTooLarge(InvalidArgument):
    """A value exceeds ``max_value_bytes``, or an item can never fit the byte budget."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class InvalidTTL(InvalidArgument):
    """A TTL or expiry time is not a finite positive number."""


class InvalidConfig(InvalidArgument):
    """A configuration value is out of range or conflicts with another."""


class SnapshotError(LrukvError, ValueError):
    """A snapshot cannot be restored. The store was left as it was."""


class CorruptSnapshot(SnapshotError):
    """The snapshot is truncated, has a bad magic number or fails its checksum."""


class UnsupportedSnapshotVersion(SnapshotError):
    """The snapshot was written in a format version this lrukv does not read."""


class SnapshotMismatch(SnapshotError):
    """The snapshot's geometry differs from the store it is restored into."""
