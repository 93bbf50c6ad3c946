"""The snapshot file: the state machine's own snapshot bytes plus the Raft
metadata PySyncObj needs, in a compact, versioned, checksummed envelope.

PySyncObj calls the ``serializer`` hook at log compaction with
``(file_name, (last_entry, prev_entry, cluster))``: the last two applied log
entries (``(command, index, term)`` tuples, kept so the journal can restart
from them) and the members (a set of ``TCPNode``). Its ``deserializer`` hook
must return that same triple, and restoring the state machine is the hook's
job too (PySyncObj restores nothing itself once the hooks are set). The same
file is what a leader streams to a follower that is too far behind
(InstallSnapshot), so one format serves both.

Layout (integers little-endian)::

    magic      8 bytes  b"LRKVRAFT"
    version    u16      1
    last       u64 index, u64 term, u32 length, command bytes
    prev       u64 index, u64 term, u32 length, command bytes
    members    u16 count, then per member: u16 length, UTF-8 "host:port"
    state      u64 length, the state machine's snapshot bytes
    crc        u32      CRC-32 of everything before it

A file that is not whole (bad magic, unknown version, short, bad CRC) is
refused before the state machine is touched.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pysyncobj.node import TCPNode

__all__ = ["FORMAT_VERSION", "MAGIC", "SnapshotError", "SnapshotMeta", "decode", "encode", "hooks"]

log = logging.getLogger(__name__)

MAGIC = b"LRKVRAFT"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sH")
_ENTRY = struct.Struct("<QQI")
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")
_CRC = struct.Struct("<I")

Entry = tuple[bytes, int, int]  # PySyncObj's log entry: (command, index, term)


class SnapshotError(ValueError):
    """A snapshot file that is not a whole, known-version lrukv Raft snapshot."""


class _Snapshotting(Protocol):
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """The Raft metadata of a snapshot. ``last`` is the entry the state is at."""

    last: Entry
    prev: Entry
    members: tuple[str, ...]


def encode(meta: SnapshotMeta, state: bytes) -> bytes:
    """The file's bytes.

    >>> meta = SnapshotMeta((b"c", 9, 2), (b"b", 8, 2), ("127.0.0.1:5000",))
    >>> decode(encode(meta, b"state")) == (meta, b"state")
    True
    """
    parts = [_HEAD.pack(MAGIC, FORMAT_VERSION)]
    for command, index, term in (meta.last, meta.prev):
        parts += [_ENTRY.pack(index, term, len(command)), bytes(command)]
    parts.append(_U16.pack(len(meta.members)))
    for member in meta.members:
        raw = member.encode()
        parts += [_U16.pack(len(raw)), raw]
    parts += [_U64.pack(len(state)), state]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    parts.append(_CRC.pack(crc))
    return b"".join(parts)


def decode(data: bytes) -> tuple[SnapshotMeta, bytes]:
    """Parse and check a file's bytes; raise SnapshotError if it is not whole."""
    view = memoryview(data)
    if len(view) < _HEAD.size + _CRC.size:
        raise SnapshotError(f"snapshot too short ({len(view)} bytes)")
    magic, version = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise SnapshotError("not an lrukv Raft snapshot (bad magic)")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format version {version}; this build reads {FORMAT_VERSION}")
    (crc,) = _CRC.unpack_from(view, len(view) - _CRC.size)
    if zlib.crc32(view[: len(view) - _CRC.size]) != crc:
        raise SnapshotError("snapshot checksum mismatch (torn or corrupted file)")
    body = view[: len(view) - _CRC.size]
    try:
        pos = _HEAD.size
        entries: list[Entry] = []
        for _ in range(2):
            index, term, length = _ENTRY.unpack_from(body, pos)
            pos += _ENTRY.size
            command = bytes(body[pos : pos + length])
            if len(command) != length:
                raise SnapshotError("snapshot entry runs past the end")
            pos += length
            entries.append((command, index, term))
        (count,) = _U16.unpack_from(body, pos)
        pos += _U16.size
        members = []
        for _ in range(count):
            (length,) = _U16.unpack_from(body, pos)
            pos += _U16.size
            members.append(bytes(body[pos : pos + length]).decode())
            pos += length
        (length,) = _U64.unpack_from(body, pos)
        pos += _U64.size
        state = bytes(body[pos : pos + length])
        if len(state) != length or pos + length != len(body):
            raise SnapshotError("snapshot state length does not match the file")
    except (struct.error, UnicodeDecodeError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc}") from None
    return SnapshotMeta(entries[0], entries[1], tuple(members)), state


def _entry(raw: Any) -> Entry:
    command, index, term = raw
    return (bytes(command), int(index), int(term))


def write_file(path: str, data: bytes) -> None:
    """Write *data* to *path* and fsync it: PySyncObj renames it into place and
    then cuts the journal, so it must be on disk before that."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def hooks(
    fsm: _Snapshotting,
) -> tuple[Callable[[str, Any], None], Callable[[str], tuple[Entry, Entry, set[TCPNode]]]]:
    """PySyncObj's ``(serializer, deserializer)`` for *fsm*.

    Both run on the Raft thread. The serializer captures ``fsm.snapshot()``
    there, so the snapshot is exactly the state after ``last`` (nothing else
    applies in between). An exception is logged and re-raised: PySyncObj then
    keeps the old snapshot and journal (serialize) or keeps the node's state
    (deserialize, refused before ``restore`` is called).
    """

    def serialize(file_name: str, raft_data: Any) -> None:
        try:
            started = time.perf_counter()
            last, prev, cluster = raft_data
            members = tuple(sorted(str(node.id) for node in cluster))
            state = fsm.snapshot()
            meta = SnapshotMeta(_entry(last), _entry(prev), members)
            data = encode(meta, state)
            write_file(file_name, data)
            log.info(
                "raft snapshot at index %d: %d bytes in %.1f ms",
                meta.last[1],
                len(data),
                (time.perf_counter() - started) * 1000,
            )
        except Exception:
            log.exception("raft snapshot failed; keeping the previous one")
            raise

    def deserialize(file_name: str) -> tuple[Entry, Entry, set[TCPNode]]:
        try:
            with open(file_name, "rb") as f:
                meta, state = decode(f.read())
            fsm.restore(state)
        except Exception:
            log.critical("cannot load raft snapshot %s", file_name, exc_info=True)
            raise
        log.info("raft snapshot loaded: state at index %d", meta.last[1])
        # TCPNode objects, not strings: PySyncObj drops itself from this set by
        # comparing Nodes, and a string never equals a Node.
        return meta.last, meta.prev, {TCPNode(member) for member in meta.members}

    return serialize, deserialize
