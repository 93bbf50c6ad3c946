"""Commands: the writes a StoreFSM applies, and their versioned binary encoding.

Every change to a store, on a single node or in a cluster, is one of these
commands. On a single node they are applied directly (and recorded by the
transaction log); in a cluster they are the payload of Raft log entries, so the
encoding is a wire and disk format: opcodes are numbered explicitly and never
reused, and every encoded command starts with a format version byte. Nothing
is pickled.

Layout (all integers big-endian)::

    command   version u8 (=1) | time f64 | body
    body      opcode u8 | fields
    PUT       key | value | has_expiry u8 | expires_at f64
    DELETE    key
    TOUCH     count u32 | key * count
    CONFIG    shards u32 | items_per_shard u32 | max_bytes u64 (0 = none)
    PURGE     (no fields: purge what expired at the command's time)
    NOOP      (no fields: a read barrier)
    BATCH     count u32 | body * count (no nested batches)
    MEMBER    node_id key | raft_addr key | http_addr key | grpc_addr key
    FORGET    raft_addr key
    key       length u16 | UTF-8 bytes
    value     length u32 | bytes

``time`` is the proposer's wall clock when the command was made. Appliers use
it, never their own clock, for every time-dependent decision (is this key
expired?), so every replica reaches the same state at the same index.

>>> data = encode(Put("k", b"v", None), time=1.5)
>>> decode(data)
Envelope(time=1.5, command=Put(key='k', value=b'v', expires_at=None))
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "FORMAT_VERSION",
    "Batch",
    "Command",
    "CommandDecodeError",
    "Config",
    "Delete",
    "Envelope",
    "Forget",
    "Member",
    "Noop",
    "Opcode",
    "Purge",
    "Put",
    "Touch",
    "decode",
    "encode",
]

FORMAT_VERSION = 1


class Opcode(enum.IntEnum):
    """Wire numbers of the commands: never renumber, never reuse."""

    PUT = 1
    DELETE = 2
    TOUCH = 3
    CONFIG = 4
    PURGE = 5
    NOOP = 6
    BATCH = 7
    MEMBER = 8
    FORGET = 9


@dataclass(frozen=True, slots=True)
class Put:
    """Store *value* under *key*; ``expires_at`` is absolute (seconds since the epoch)."""

    key: str
    value: bytes
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove *key*; applying it answers the removed value, or None."""

    key: str


@dataclass(frozen=True, slots=True)
class Touch:
    """Make each present key the most recently used of its shard, in order:
    reads made on any node, replicated in a batch."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Config:
    """The store's geometry, which every replica (and every restart) must share."""

    shards: int
    items_per_shard: int
    max_bytes: int | None = None

    def describe(self) -> str:
        """The settings as an operator spells them."""
        budget = "none" if self.max_bytes is None else str(self.max_bytes)
        return f"shards={self.shards}, items_per_shard={self.items_per_shard}, max_bytes={budget}"


@dataclass(frozen=True, slots=True)
class Purge:
    """Remove every key whose expiry time has passed at the command's time."""


@dataclass(frozen=True, slots=True)
class Noop:
    """Changes nothing; a committed NOOP proves leadership for a linearizable read."""


@dataclass(frozen=True, slots=True)
class Member:
    """A cluster member's addresses, keyed by its Raft address: how every node
    finds the leader's APIs to forward a request or redirect a client."""

    node_id: str
    raft_addr: str
    http_addr: str
    grpc_addr: str


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop a removed member from the directory."""

    raft_addr: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Several commands applied in order at one log index."""

    commands: tuple[Command, ...]


Command = Put | Delete | Touch | Config | Purge | Noop | Member | Forget | Batch


class Envelope(NamedTuple):
    """A decoded command and the proposer's clock when it was made."""

    time: float
    command: Command


class CommandDecodeError(ValueError):
    """Bytes that are not a command of a format this code knows."""


_HEAD = struct.Struct(">Bd")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_EXPIRY = struct.Struct(">Bd")
_CONFIG = struct.Struct(">IIQ")
_MAX_KEY = 0xFFFF
_MAX_COUNT = 0xFFFFFFFF


def encode(command: Command, *, time: float) -> bytes:
    """Encode *command*, stamped with the proposer's clock *time*.

    Raises ValueError for what the format cannot carry (a key over 65,535 UTF-8
    bytes, a nested batch, a non-finite time). Cost: O(size of the command).
    """
    if not math.isfinite(time):
        raise ValueError(f"command time must be finite, not {time!r}")
    out = bytearray(_HEAD.pack(FORMAT_VERSION, time))
    _encode_body(command, out, nested=False)
    return bytes(out)


def _encode_key(key: str, out: bytearray) -> None:
    encoded = key.encode()
    if len(encoded) > _MAX_KEY:
        raise ValueError(f"key is {len(encoded)} bytes; a command carries at most {_MAX_KEY}")
    out += _U16.pack(len(encoded))
    out += encoded


def _encode_body(command: Command, out: bytearray, *, nested: bool) -> None:
    match command:
        case Put(key, value, expires_at):
            out.append(Opcode.PUT)
            _encode_key(key, out)
            out += _U32.pack(len(value))
            out += value
            out += _EXPIRY.pack(expires_at is not None, 0.0 if expires_at is None else expires_at)
        case Delete(key):
            out.append(Opcode.DELETE)
            _encode_key(key, out)
        case Touch(keys):
            out.append(Opcode.TOUCH)
            out += _U32.pack(len(keys))
            for key in keys:
                _encode_key(key, out)
        case Config(shards, items_per_shard, max_bytes):
            out.append(Opcode.CONFIG)
            out += _CONFIG.pack(shards, items_per_shard, max_bytes or 0)
        case Purge():
            out.append(Opcode.PURGE)
        case Noop():
            out.append(Opcode.NOOP)
        case Member(node_id, raft_addr, http_addr, grpc_addr):
            out.append(Opcode.MEMBER)
            for text in (node_id, raft_addr, http_addr, grpc_addr):
                _encode_key(text, out)
        case Forget(raft_addr):
            out.append(Opcode.FORGET)
            _encode_key(raft_addr, out)
        case Batch(commands):
            if nested:
                raise ValueError("a batch cannot contain a batch")
            out.append(Opcode.BATCH)
            out += _U32.pack(len(commands))
            for inner in commands:
                _encode_body(inner, out, nested=True)
        case _:
            raise TypeError(f"not a command: {command!r}")


def decode(data: bytes | bytearray | memoryview) -> Envelope:
    """Decode what :func:`encode` made. Raises CommandDecodeError for anything
    else (unknown version or opcode, truncated or trailing bytes)."""
    view = memoryview(data)
    try:
        version, time = _HEAD.unpack_from(view, 0)
        if version != FORMAT_VERSION:
            raise CommandDecodeError(
                f"command format version {version} is not supported (this build reads "
                f"{FORMAT_VERSION}); upgrade this node"
            )
        command, offset = _decode_body(view, _HEAD.size, nested=False)
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise CommandDecodeError(f"malformed command: {exc}") from None
    if offset != len(view):
        raise CommandDecodeError(f"malformed command: {len(view) - offset} trailing bytes")
    return Envelope(time, command)


def _decode_key(view: memoryview, offset: int) -> tuple[str, int]:
    (length,) = _U16.unpack_from(view, offset)
    start = offset + _U16.size
    stop = start + length
    if stop > len(view):
        raise CommandDecodeError("malformed command: key runs past the end")
    return bytes(view[start:stop]).decode(), stop


def _decode_body(view: memoryview, offset: int, *, nested: bool) -> tuple[Command, int]:
    opcode = view[offset]
    offset += 1
    if opcode == Opcode.PUT:
        key, offset = _decode_key(view, offset)
        (length,) = _U32.unpack_from(view, offset)
        start = offset + _U32.size
        stop = start + length
        if stop > len(view):
            raise CommandDecodeError("malformed command: value runs past the end")
        has_expiry, expires_at = _EXPIRY.unpack_from(view, stop)
        value = bytes(view[start:stop])
        return Put(key, value, expires_at if has_expiry else None), stop + _EXPIRY.size
    if opcode == Opcode.DELETE:
        key, offset = _decode_key(view, offset)
        return Delete(key), offset
    if opcode == Opcode.TOUCH:
        (count,) = _U32.unpack_from(view, offset)
        offset += _U32.size
        keys = []
        for _ in range(count):
            key, offset = _decode_key(view, offset)
            keys.append(key)
        return Touch(tuple(keys)), offset
    if opcode == Opcode.CONFIG:
        shards, items_per_shard, max_bytes = _CONFIG.unpack_from(view, offset)
        return Config(shards, items_per_shard, max_bytes or None), offset + _CONFIG.size
    if opcode == Opcode.PURGE:
        return Purge(), offset
    if opcode == Opcode.NOOP:
        return Noop(), offset
    if opcode == Opcode.MEMBER:
        fields = []
        for _ in range(4):
            text, offset = _decode_key(view, offset)
            fields.append(text)
        return Member(*fields), offset
    if opcode == Opcode.FORGET:
        raft_addr, offset = _decode_key(view, offset)
        return Forget(raft_addr), offset
    if opcode == Opcode.BATCH and not nested:
        (count,) = _U32.unpack_from(view, offset)
        offset += _U32.size
        commands = []
        for _ in range(count):
            inner, offset = _decode_body(view, offset, nested=True)
            commands.append(inner)
        return Batch(tuple(commands)), offset
    raise CommandDecodeError(f"malformed command: unknown opcode {opcode}")
