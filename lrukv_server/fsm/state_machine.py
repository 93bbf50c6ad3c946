"""StoreFSM: the store as a deterministic state machine over commands.

The contract is hashicorp/raft's FSM contract:

* ``apply(command, index)`` is called with strictly increasing indexes, one at
  a time (the caller serialises calls: the Raft thread, or a single node's
  write lock). Given the same state and the same command it produces the same
  state and the same result on every replica. It never reads the replica's
  clock: time-dependent decisions use the time stamped in the command, and
  the API's per-node limits (value size…) are checked before a command is
  made, never at apply time. (The store's counters, such as evictions by
  cause, are each node's own observation and may differ between replicas.)
* ``snapshot()`` captures the whole state (contents, recency order, expiry
  times, geometry and the last applied index) as bytes, cheaply: the store's
  locks are held only while references are copied.
* ``restore(data)`` discards all state and loads a snapshot.

Reads (``get``, ``peek``, ``keys``…) go to :attr:`store` directly and may run
concurrently with ``apply``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

from lrukv import ShardedMap
from lrukv import snapshot as snapshot_format
from lrukv.errors import CorruptSnapshot, InvalidConfig, UnsupportedSnapshotVersion
from lrukv_server.fsm import commands
from lrukv_server.fsm.commands import (
    Batch,
    Command,
    Config,
    Delete,
    Forget,
    Member,
    Noop,
    Purge,
    Put,
    Touch,
)

__all__ = ["ConfigMismatch", "StoreFSM"]

_SNAPSHOT_MAGIC = b"LKVFSM"
_SNAPSHOT_VERSION = 1
_SNAPSHOT_HEAD = struct.Struct(">6sBQI")


class ConfigMismatch(InvalidConfig):
    """The store's geometry differs from the one the data (log, snapshot or
    cluster) was written with. Carries both, and says what to do."""

    def __init__(self, *, theirs: Config, mine: Config, where: str) -> None:
        super().__init__(
            f"{where} was written by a store with {theirs.describe()}, but this server is "
            f"configured with {mine.describe()}; start it with the same settings "
            f"(-s/--shards, -i/--items-per-shard, --max-bytes), or move the data away "
            f"to start empty"
        )
        self.theirs = theirs
        self.mine = mine


class StoreFSM:
    """A ShardedMap driven by commands; see the module docstring for the contract.

    >>> import lrukv
    >>> fsm = StoreFSM(lrukv.ShardedMap(shards=1, items_per_shard=2))
    >>> fsm.apply(commands.encode(Put("a", b"1"), time=0.0), 1)
    >>> fsm.apply_command(Delete("a"), 2, time=0.0), fsm.last_applied
    (b'1', 2)
    """

    def __init__(self, store: ShardedMap) -> None:
        self._store = store
        self._last_applied = 0
        self._members: dict[str, Member] = {}
        self._cluster_config: Config | None = None
        self._handlers: dict[type, Callable[[Any, float], object]] = {
            Put: self._put,
            Delete: self._delete,
            Touch: self._touch,
            Purge: self._purge,
            Config: self._config,
            Member: self._member,
            Forget: self._forget,
            Noop: self._noop,
            Batch: self._batch,
        }

    @property
    def store(self) -> ShardedMap:
        """The map, for reads. Writing to it directly bypasses the log."""
        return self._store

    @property
    def last_applied(self) -> int:
        """The index of the last command applied (0 before the first)."""
        return self._last_applied

    @property
    def members(self) -> dict[str, Member]:
        """The member directory (Raft address -> addresses), a copy."""
        return dict(self._members)

    @property
    def cluster_config(self) -> Config | None:
        """The geometry a CONFIG command established, or None before one."""
        return self._cluster_config

    @property
    def config(self) -> Config:
        """This store's geometry as a CONFIG command."""
        store = self._store
        return Config(store.shards, store.items_per_shard, store.max_bytes)

    def apply(self, data: bytes, index: int) -> object:
        """Decode and apply one encoded command at *index*; return its result."""
        envelope = commands.decode(data)
        return self.apply_command(envelope.command, index, time=envelope.time)

    def apply_command(self, command: Command, index: int, *, time: float) -> object:
        """Apply *command* at *index*, as of the proposer's clock *time*.

        Results: PUT None, DELETE the removed value (None if no live key), TOUCH how many
        keys were present, PURGE how many were removed, CONFIG and NOOP None,
        BATCH a tuple of its commands' results. The first CONFIG establishes
        the geometry (later ones change nothing); when the established geometry
        differs from this store's, ConfigMismatch is raised (a replica or a
        restart with other shard settings is refused).
        """
        if index <= self._last_applied:
            raise ValueError(
                f"command index {index} is not after the last applied {self._last_applied}"
            )
        result = self._handlers[command.__class__](command, time)
        self._last_applied = index
        return result

    # One small method per command, found by type: a dict lookup costs far less
    # than a match over class patterns, and replay applies millions of commands.

    def _put(self, command: Put, time: float) -> None:
        self._store.put(command.key, command.value, None, expires_at=command.expires_at)

    def _delete(self, command: Delete, time: float) -> bytes | None:
        return self._store.pop(command.key, now=time)

    def _touch(self, command: Touch, time: float) -> int:
        return self._store.touch(command.keys, now=time)

    def _purge(self, command: Purge, time: float) -> int:
        return self._store.purge_expired(now=time)

    def _config(self, command: Config, time: float) -> None:
        # The first CONFIG establishes the geometry; later ones change nothing.
        # A replica (or a restart) whose own geometry differs is refused.
        if self._cluster_config is None:
            self._cluster_config = command
        self.check_config(self._cluster_config, where="the store")

    def _member(self, command: Member, time: float) -> None:
        self._members[command.raft_addr] = command

    def _forget(self, command: Forget, time: float) -> bool:
        return self._members.pop(command.raft_addr, None) is not None

    def _noop(self, command: Noop, time: float) -> None:
        return None

    def _batch(self, command: Batch, time: float) -> tuple[object, ...]:
        handlers = self._handlers
        results = []
        for inner in command.commands:
            if isinstance(inner, Batch):  # the codec never decodes one
                raise TypeError(f"cannot apply a nested batch: {inner!r}")
            results.append(handlers[inner.__class__](inner, time))
        return tuple(results)

    def check_config(self, theirs: Config, *, where: str) -> None:
        """Raise ConfigMismatch if *theirs* is not this store's geometry."""
        mine = self.config
        if theirs != mine:
            raise ConfigMismatch(theirs=theirs, mine=mine, where=where)

    def digest(self) -> tuple[int, str]:
        """(applied index, SHA-256 of the store's snapshot at that index): equal on
        every replica that applied the same log. Retries while applies race it."""
        while True:
            before = self._last_applied
            blob = self._store.snapshot()
            if self._last_applied == before:
                return before, hashlib.sha256(blob).hexdigest()

    def snapshot(self) -> bytes:
        """The whole state as bytes: a header (format version, last applied index),
        the cluster metadata (CONFIG and MEMBER commands, encoded as a batch) and
        the core's snapshot (``lrukv.snapshot``, recency kept)."""
        index = self._last_applied  # the caller serialises apply, so no apply runs now
        meta: list[Command] = [] if self._cluster_config is None else [self._cluster_config]
        meta.extend(self._members.values())
        directory = commands.encode(Batch(tuple(meta)), time=0.0)
        head = _SNAPSHOT_HEAD.pack(_SNAPSHOT_MAGIC, _SNAPSHOT_VERSION, index, len(directory))
        return head + directory + self._store.snapshot()

    def restore(self, data: bytes) -> None:
        """Discard all state and load *data* from :meth:`snapshot`. The geometry
        must match (else ConfigMismatch); a damaged snapshot changes nothing."""
        if len(data) < _SNAPSHOT_HEAD.size:
            raise CorruptSnapshot("state machine snapshot is truncated")
        magic, version, index, directory_len = _SNAPSHOT_HEAD.unpack_from(data, 0)
        if magic != _SNAPSHOT_MAGIC:
            raise CorruptSnapshot("not a state machine snapshot")
        if version != _SNAPSHOT_VERSION:
            raise UnsupportedSnapshotVersion(
                f"state machine snapshot version {version}; this build reads {_SNAPSHOT_VERSION}"
            )
        start = _SNAPSHOT_HEAD.size
        try:
            meta = commands.decode(data[start : start + directory_len]).command
        except commands.CommandDecodeError as exc:
            raise CorruptSnapshot(f"state machine snapshot metadata: {exc}") from None
        if not isinstance(meta, Batch):
            raise CorruptSnapshot("state machine snapshot metadata is not a batch")
        config = next((c for c in meta.commands if isinstance(c, Config)), None)
        if config is not None:
            self.check_config(config, where="the snapshot")
        self.restore_store(data[start + directory_len :], where="the snapshot")
        self._cluster_config = config
        self._members = {c.raft_addr: c for c in meta.commands if isinstance(c, Member)}
        self._last_applied = index

    def restore_store(self, blob: bytes, *, where: str, last_applied: int | None = None) -> None:
        """Load a core snapshot (``ShardedMap.snapshot``) as the whole state;
        the transaction log's compaction snapshots are in this format."""
        self.check_config(Config(*snapshot_format.read_geometry(blob)), where=where)
        self._store.restore(blob)
        if last_applied is not None:
            self._last_applied = last_applied

    def start_at(self, index: int) -> None:
        """Set the last applied index of a store whose state was loaded another
        way (a single node recovering from its transaction log)."""
        self._last_applied = index
