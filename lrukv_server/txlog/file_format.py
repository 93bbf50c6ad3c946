"""The on-disk format of the file backend: a log file and a compaction snapshot.

Log file (integers little-endian)::

    header   magic b"LRUKVTXL" | version u16 | flags u16 | base_seq u64 | crc32 u32
             (24 bytes; the crc covers the 20 bytes before it. The first record's
             seq is base_seq + 1: 0 for a new log, the snapshot's seq after compaction)
    record   body_len u32 | crc32(body) u32 | body
    body     seq u64 | op u8 | flags u8 | reserved u16 | key_len u32 | value_len u32 |
             expires_at f64 | applied_index u64 | key (UTF-8) | value
             (flags: 1 = expires_at is set, 2 = applied_index is set; unset fields are 0)

Snapshot file (``<log>.snapshot``)::

    magic b"LRUKVCMP" | version u16 | flags u16 | seq u64 | applied_index u64 |
    blob_len u64 | blob (lrukv.snapshot format) | crc32 u32 of every byte before it
    (flags: 2 = applied_index is set)

The writer preallocates the file ahead of its records, so a log that was not
closed cleanly (kill -9, a machine crash) usually ends in zero bytes: space
reserved but not yet written. The logical end of the log is the end of its last
whole record; on a clean close the file is truncated there.

Classifying what follows the last whole record when a log is opened
(:func:`scan`): records are read from the header on. At the first position that
does not hold a whole record with a matching CRC:

* if every byte from there to the end of the file is zero, that is the clean
  end of the log (preallocated space), not damage: nothing is reported;
* otherwise the rest of the file is searched for any valid record with a later
  seq. If there is one, the damage is in the middle: :class:`CorruptLog` with
  the offset and the seq expected there, because data after it was written and
  acknowledged and must not be silently dropped;
* if there is none, the damage is a torn tail (a record cut short by a crash):
  it is cut off and reported.

A record with a valid CRC but the wrong seq is :class:`LogSequenceError`. A
record is never all zeros (its length field is at least ``BODY.size``), so a
zero tail can never hide one.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from lrukv_server.txlog.base import CorruptLog, LogEvent, LogSequenceError, Op, SnapshotRecord

__all__ = [
    "BODY",
    "FILE_HEADER",
    "FLAG_APPLIED",
    "FLAG_EXPIRES",
    "PREFIX",
    "ScanResult",
    "TailCut",
    "decode_header",
    "decode_snapshot",
    "encode_header",
    "encode_record",
    "encode_snapshot",
    "iter_events",
    "last_nonzero",
    "scan",
]

LOG_MAGIC = b"LRUKVTXL"
SNAPSHOT_MAGIC = b"LRUKVCMP"
VERSION = 1

FILE_HEADER = struct.Struct("<8sHHQI")
PREFIX = struct.Struct("<II")
BODY = struct.Struct("<QBBHIIdQ")
_SNAP_HEADER = struct.Struct("<8sHHQQQ")
_CRC = struct.Struct("<I")

FLAG_EXPIRES = 1
FLAG_APPLIED = 2
_OPS = {int(op): op for op in Op}
_PACK_PREFIX = PREFIX.pack
_PACK_BODY = BODY.pack
_crc32 = zlib.crc32


def encode_header(base_seq: int) -> bytes:
    """The 24-byte header of a log whose first record will be ``base_seq + 1``."""
    head = FILE_HEADER.pack(LOG_MAGIC, VERSION, 0, base_seq, 0)[:-4]
    return head + _CRC.pack(_crc32(head))


def decode_header(data: bytes, where: str) -> int:
    """Return base_seq, or raise CorruptLog if *data* is not a valid header."""
    if len(data) < FILE_HEADER.size:
        raise CorruptLog(
            f"{where}: {len(data)} bytes, shorter than a log header", where=where, offset=0
        )
    magic, version, _flags, base_seq, crc = FILE_HEADER.unpack_from(data)
    if magic != LOG_MAGIC:
        raise CorruptLog(f"{where}: not an lrukv transaction log", where=where, offset=0)
    if _crc32(data[: FILE_HEADER.size - 4]) != crc:
        raise CorruptLog(f"{where}: log header checksum mismatch", where=where, offset=0)
    if version != VERSION:
        raise CorruptLog(
            f"{where}: log format version {version}; this lrukv reads {VERSION}",
            where=where,
            offset=0,
        )
    return int(base_seq)


def encode_record(
    seq: int,
    op: int,
    key: bytes,
    value: bytes,
    *,
    expires_at: float | None = None,
    applied_index: int | None = None,
) -> bytes:
    """One whole record (prefix + body). The log's append inlines the same steps."""
    flags = (0 if expires_at is None else FLAG_EXPIRES) | (
        0 if applied_index is None else FLAG_APPLIED
    )
    head = _PACK_BODY(
        seq, op, flags, 0, len(key), len(value), expires_at or 0.0, applied_index or 0
    )
    crc = _crc32(value, _crc32(key, _crc32(head)))
    return b"".join((_PACK_PREFIX(BODY.size + len(key) + len(value), crc), head, key, value))


def _record_at(view: memoryview, offset: int, end: int) -> tuple[int, int, int | None] | None:
    """(end offset, seq, applied_index) of a whole valid record at *offset*, else None."""
    if offset + PREFIX.size + BODY.size > end:
        return None
    length, crc = PREFIX.unpack_from(view, offset)
    start = offset + PREFIX.size
    stop = start + length
    if length < BODY.size or stop > end:
        return None
    if _crc32(view[start:stop]) != crc:
        return None
    seq, op, flags, _reserved, key_len, value_len, _expires, applied = BODY.unpack_from(view, start)
    if op not in _OPS or BODY.size + key_len + value_len != length:
        return None
    return stop, seq, (applied if flags & FLAG_APPLIED else None)


@dataclass(frozen=True, slots=True)
class TailCut:
    """A torn tail found at open and cut at ``offset``. ``dropped_bytes`` counts
    the bytes from ``offset`` to the last non-zero byte: the remains of the torn
    record. Zeros after them (preallocated space) are not counted: they held
    nothing."""

    offset: int
    dropped_bytes: int

    def __str__(self) -> str:
        return f"cut a torn tail of {self.dropped_bytes} bytes at byte {self.offset}"


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What :func:`scan` found: the end of the last whole record (the logical end
    of the log) and its seq. Zero bytes after it are preallocated space, not damage."""

    end: int
    last_seq: int
    records: int
    last_applied_index: int | None
    tail: TailCut | None


# Zero runs are compared a chunk at a time (bytes == is a memcmp): a preallocated
# tail can be tens of MiB, too many bytes to look at one by one in Python.
_ZERO_CHUNK = bytes(1 << 20)


def last_nonzero(view: memoryview, start: int, end: int) -> int:
    """The offset just after the last non-zero byte in ``view[start:end]``, or *start*."""
    stop = end
    while stop > start:
        offset = max(start, stop - len(_ZERO_CHUNK))
        chunk = view[offset:stop].tobytes()
        if chunk != (_ZERO_CHUNK if len(chunk) == len(_ZERO_CHUNK) else bytes(len(chunk))):
            return offset + len(chunk.rstrip(b"\0"))
        stop = offset
    return start


def scan(view: memoryview, base_seq: int, where: str) -> ScanResult:
    """Verify every record after the header; classify damage (see module docstring).

    Cost: O(file size). Raises CorruptLog or LogSequenceError.
    """
    end = len(view)
    offset = FILE_HEADER.size
    seq = base_seq
    applied: int | None = None
    records = 0
    while offset < end:
        found = _record_at(view, offset, end)
        if found is None:
            torn_end = last_nonzero(view, offset, end)
            if torn_end == offset:  # only zeros: the preallocated, unwritten rest
                return ScanResult(offset, seq, records, applied, None)
            later = _find_later_record(view, offset, torn_end, end, seq)
            if later is not None:
                raise CorruptLog(
                    f"{where}: corrupt record at byte {offset} (expected seq {seq + 1}), "
                    f"but a valid record (seq {later[1]}) follows at byte {later[0]}: "
                    "this is damage in the middle of the log, not a torn tail, so replay "
                    "stops here instead of guessing",
                    where=where,
                    offset=offset,
                    seq=seq + 1,
                )
            return ScanResult(offset, seq, records, applied, TailCut(offset, torn_end - offset))
        stop, record_seq, record_applied = found
        if record_seq != seq + 1:
            kind = "gap" if record_seq > seq + 1 else "reordering"
            raise LogSequenceError(
                f"{where}: sequence {kind} at byte {offset}: expected seq {seq + 1}, "
                f"found {record_seq}",
                where=where,
                offset=offset,
                seq=seq + 1,
            )
        seq = record_seq
        if record_applied is not None:
            applied = record_applied
        records += 1
        offset = stop
    return ScanResult(offset, seq, records, applied, None)


def _find_later_record(
    view: memoryview, bad: int, nonzero_end: int, end: int, last_seq: int
) -> tuple[int, int] | None:
    """Find any valid record after byte *bad* with seq > *last_seq*: (offset, seq).

    A record starts with its length (at least ``BODY.size``, so not four zero
    bytes), hence none starts at or after *nonzero_end* (just after the last
    non-zero byte): the search stops there instead of walking a preallocated
    zero tail byte by byte."""
    # Where the damaged record says the next one starts is the likely place: try it first.
    if bad + PREFIX.size <= end:
        (length,) = struct.unpack_from("<I", view, bad)
        declared = bad + PREFIX.size + length
        found = _record_at(view, declared, end) if declared < end else None
        if found is not None and found[1] > last_seq:
            return declared, found[1]
    for offset in range(bad + 1, min(nonzero_end, end - PREFIX.size - BODY.size + 1)):
        found = _record_at(view, offset, end)
        if found is not None and found[1] > last_seq:
            return offset, found[1]
    return None


def iter_events(
    data: bytes | memoryview | mmap.mmap, start: int, end: int, from_seq: int, where: str
) -> Iterator[LogEvent]:
    """Decode the records in ``data[start:end]`` (already scanned), yielding those
    with ``seq >= from_seq``. CRCs are checked again: the file may have been
    damaged since it was opened. Cost: O(bytes)."""
    unpack_prefix = PREFIX.unpack_from
    unpack_body = BODY.unpack_from
    body_size = BODY.size
    ops = _OPS
    crc32 = _crc32
    make = LogEvent
    offset = start
    while offset < end:
        length, crc = unpack_prefix(data, offset)
        body_start = offset + 8
        stop = body_start + length
        seq, op, flags, _r, key_len, _value_len, expires, applied = unpack_body(data, body_start)
        if seq >= from_seq:
            body = bytes(data[body_start:stop])
            if crc32(body) != crc or stop > end:
                raise CorruptLog(
                    f"{where}: record at byte {offset} (seq {seq}) changed since the log was "
                    "opened and fails its checksum",
                    where=where,
                    offset=offset,
                    seq=seq,
                )
            key_end = body_size + key_len
            yield make(
                seq,
                ops[op],
                str(body[body_size:key_end], "utf-8"),
                body[key_end:],
                expires if flags & FLAG_EXPIRES else None,
                applied if flags & FLAG_APPLIED else None,
            )
        offset = stop


def encode_snapshot(record: SnapshotRecord) -> bytes:
    """The snapshot file's bytes."""
    flags = 0 if record.applied_index is None else FLAG_APPLIED
    head = _SNAP_HEADER.pack(
        SNAPSHOT_MAGIC,
        VERSION,
        flags,
        record.seq,
        record.applied_index or 0,
        len(record.blob),
    )
    crc = _crc32(record.blob, _crc32(head))
    return head + record.blob + _CRC.pack(crc)


def decode_snapshot(data: bytes, where: str) -> SnapshotRecord:
    """Parse a snapshot file; CorruptLog if it is damaged (never half-trusted)."""
    if len(data) < _SNAP_HEADER.size + _CRC.size:
        raise CorruptLog(f"{where}: snapshot file is truncated", where=where, offset=0)
    magic, version, flags, seq, applied, blob_len = _SNAP_HEADER.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise CorruptLog(f"{where}: not an lrukv log snapshot", where=where, offset=0)
    if version != VERSION:
        raise CorruptLog(
            f"{where}: snapshot format version {version}; this lrukv reads {VERSION}",
            where=where,
            offset=0,
        )
    body_end = _SNAP_HEADER.size + blob_len
    if body_end + _CRC.size != len(data):
        raise CorruptLog(f"{where}: snapshot length does not match its header", where=where)
    (crc,) = _CRC.unpack_from(data, body_end)
    if _crc32(data[:body_end]) != crc:
        raise CorruptLog(f"{where}: snapshot checksum mismatch", where=where, offset=0)
    return SnapshotRecord(
        int(seq),
        int(applied) if flags & FLAG_APPLIED else None,
        bytes(data[_SNAP_HEADER.size : body_end]),
    )
