"""The versioned binary snapshot format of a ShardedMap.

Layout (all integers little-endian)::

    header   magic b"LRUKVSNP" | version u16 | flags u16 |
             shards u32 | items_per_shard u32 | max_bytes u64 (0 = unbounded) |
             entries u64
    body     for each shard, in shard order:
                 count u32, then ``count`` entries from least to most recently used:
                 key_len u32 | value_len u32 | expires_at f64 (NaN = never) | key | value
    trailer  crc32 u32 of every byte before it

Entries are stored least recently used first, so inserting them in order rebuilds
each shard's recency list exactly. The CRC makes a torn or bit-flipped snapshot a
clear :class:`~lrukv.errors.CorruptSnapshot` rather than silently wrong data.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from lrukv.errors import CorruptSnapshot, UnsupportedSnapshotVersion

__all__ = ["FORMAT_VERSION", "MAGIC", "Entry", "SnapshotData", "decode", "encode", "read_geometry"]

MAGIC = b"LRUKVSNP"
FORMAT_VERSION = 1

_HEADER = struct.Struct("<8sHHIIQQ")
_SHARD = struct.Struct("<I")
_ENTRY = struct.Struct("<IId")
_TRAILER = struct.Struct("<I")

Entry = tuple[str, bytes, float | None]
"""(key, value, expires_at) as stored: expires_at is an absolute clock time or None."""


@dataclass(frozen=True, slots=True)
class SnapshotData:
    """A decoded snapshot: geometry plus each shard's entries, least recent first."""

    shards: int
    items_per_shard: int
    max_bytes: int | None
    entries: tuple[tuple[Entry, ...], ...]


def encode(data: SnapshotData) -> bytes:
    """Serialise *data*. Cost: O(total bytes).

    >>> blob = encode(SnapshotData(1, 2, None, (((("k", b"v", None)),),)))
    >>> decode(blob).entries
    ((('k', b'v', None),),)
    """
    total = sum(len(shard) for shard in data.entries)
    parts: list[bytes] = [
        _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            0,
            data.shards,
            data.items_per_shard,
            data.max_bytes or 0,
            total,
        )
    ]
    pack_entry = _ENTRY.pack
    for shard in data.entries:
        parts.append(_SHARD.pack(len(shard)))
        for key, value, expires_at in shard:
            encoded_key = key.encode("utf-8")
            parts.append(
                pack_entry(
                    len(encoded_key),
                    len(value),
                    math.nan if expires_at is None else expires_at,
                )
            )
            parts.append(encoded_key)
            parts.append(value)
    body = b"".join(parts)
    return body + _TRAILER.pack(zlib.crc32(body))


def read_geometry(blob: bytes | bytearray | memoryview) -> tuple[int, int, int | None]:
    """Return (shards, items_per_shard, max_bytes) from a snapshot's header only,
    without verifying the body (``decode`` does). Cost: O(1).

    >>> read_geometry(encode(SnapshotData(3, 7, None, ((), (), ()))))
    (3, 7, None)
    """
    view = memoryview(blob)
    if len(view) < _HEADER.size:
        raise CorruptSnapshot(f"snapshot is {len(view)} bytes, shorter than its header")
    magic, version, _flags, shards, items_per_shard, max_bytes, _total = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise CorruptSnapshot("not an lrukv snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise UnsupportedSnapshotVersion(
            f"snapshot format version {version}; this lrukv reads version {FORMAT_VERSION}"
        )
    return shards, items_per_shard, max_bytes or None


def decode(blob: bytes | bytearray | memoryview) -> SnapshotData:
    """Parse and verify a snapshot. Raises CorruptSnapshot or UnsupportedSnapshotVersion.

    Cost: O(total bytes). Nothing is trusted before the checksum has been verified.
    """
    view = memoryview(blob)
    if len(view) < _HEADER.size + _TRAILER.size:
        raise CorruptSnapshot(f"snapshot is {len(view)} bytes, shorter than its header")
    magic, version, _flags, shards, items_per_shard, max_bytes, total = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise CorruptSnapshot("not an lrukv snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise UnsupportedSnapshotVersion(
            f"snapshot format version {version}; this lrukv reads version {FORMAT_VERSION}"
        )
    body_end = len(view) - _TRAILER.size
    (expected_crc,) = _TRAILER.unpack_from(view, body_end)
    if zlib.crc32(view[:body_end]) != expected_crc:
        raise CorruptSnapshot("snapshot checksum mismatch: the data is damaged")
    if shards < 1 or items_per_shard < 1:
        raise CorruptSnapshot(f"snapshot geometry {shards}x{items_per_shard} is impossible")

    offset = _HEADER.size
    all_entries: list[tuple[Entry, ...]] = []
    unpack_entry = _ENTRY.unpack_from
    try:
        for _ in range(shards):
            (count,) = _SHARD.unpack_from(view, offset)
            offset += _SHARD.size
            shard: list[Entry] = []
            for _ in range(count):
                key_len, value_len, expires_at = unpack_entry(view, offset)
                offset += _ENTRY.size
                key_end = offset + key_len
                value_end = key_end + value_len
                if value_end > body_end:
                    raise CorruptSnapshot(f"entry at byte {offset} runs past the end")
                key = str(view[offset:key_end], "utf-8")
                value = bytes(view[key_end:value_end])
                offset = value_end
                shard.append((key, value, None if math.isnan(expires_at) else expires_at))
            all_entries.append(tuple(shard))
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptSnapshot(f"snapshot body is malformed at byte {offset}: {exc}") from None
    if offset != body_end:
        raise CorruptSnapshot(f"snapshot has {body_end - offset} unexpected trailing bytes")
    if sum(len(s) for s in all_entries) != total:
        raise CorruptSnapshot("snapshot entry count does not match its header")
    return SnapshotData(shards, items_per_shard, max_bytes or None, tuple(all_entries))
