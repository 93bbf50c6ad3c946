"""RaftConfig: one node's Raft settings, as a frozen validated value, and the
PySyncObj configuration made from it.

>>> RaftConfig(self_addr="127.0.0.1:4321", secret="s" * 16).validate().journal_path
'./raft.journal'
>>> RaftConfig(self_addr="0.0.0.0:4321", secret="s" * 16).validate()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: self_addr '0.0.0.0:4321': the host must be this node's own address, not a wildcard...

The timing defaults are the tuned starting point measured in DESIGN.md
("Replication"): a 10 ms batch period instead of PySyncObj's 100 ms (a write
waits for the next batch), a 5 ms tick, elections after 0.3-0.9 s instead of
0.4-1.4 s, and reconnects every 0.25 s instead of 5 s (a crashed leader's
followers must reconnect to each other before the vote that replaces it).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MIN_SECRET_LENGTH", "RaftConfig", "derive_password", "parse_addr"]

MIN_SECRET_LENGTH = 16
JOURNAL_FILE = "raft.journal"  # PySyncObj also writes raft.journal.meta (term, vote, commit)
SNAPSHOT_FILE = "raft.snapshot"
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def parse_addr(addr: object, what: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (an IPv6 host in brackets or bare) and check both parts.

    >>> parse_addr("10.0.0.7:4321", "peer")
    ('10.0.0.7', 4321)
    >>> parse_addr("node-1:0", "peer")
    Traceback (most recent call last):
    ...
    ValueError: peer 'node-1:0': port must be 1-65535
    """
    if not isinstance(addr, str) or ":" not in addr:
        raise ValueError(f"{what} {addr!r} must be HOST:PORT")
    host, _, port_text = addr.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{what} {addr!r}: port must be 1-65535")
    if host in _WILDCARDS:
        raise ValueError(
            f"{what} {addr!r}: the host must be this node's own address, not a wildcard "
            "(peers connect to it and PySyncObj binds it)"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"{what} {addr!r}: host is neither an IP address nor a name") from None
    return host, int(port_text)


def derive_password(secret: str) -> str:
    """The PySyncObj password for a cluster secret: HKDF-SHA256 of it, hex.

    PySyncObj stretches the password into a Fernet key (authenticated encryption
    of all peer traffic). Deriving first keeps the raw secret, which gossip also
    uses, out of PySyncObj and gives Raft its own key (domain separation).

    >>> len(derive_password("correct horse battery staple"))
    64
    """
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"lrukv",
        info=b"lrukv raft peer password v1",
    )
    return hkdf.derive(secret.encode()).hex()


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Settings of one Raft node. ``validate()`` returns self or raises ValueError.

    Membership: a new cluster starts with every member listing the others in
    ``peers``. A node that joins a running cluster instead gives ``join_addr``
    (the Raft address of any member) and no peers: it learns the members from
    that node and asks to be added. On restart a node keeps whatever membership
    its journal and snapshot say; ``peers`` and ``join_addr`` only seed it.
    """

    self_addr: str  # HOST:PORT this node binds and is known by (its Raft identity)
    secret: str = field(default="", repr=False)  # cluster secret; never logged
    peers: tuple[str, ...] = ()  # the other members of a new cluster
    join_addr: str | None = None  # a member of a running cluster to join through
    data_dir: str = "."  # journal and snapshot live here
    # Timing (seconds).
    append_entries_period: float = 0.01  # a batch of new entries goes out this often
    tick_period: float = 0.005  # the Raft thread wakes at least this often
    election_timeout_min: float = 0.3
    election_timeout_max: float = 0.9
    connection_retry: float = 0.25  # reconnect to a lost peer this often
    connection_timeout: float = 3.5  # a peer silent this long is disconnected
    # A leader that hears from no majority for this long steps down (PySyncObj's
    # default is 30 s: a partitioned leader would keep believing it leads).
    leader_fallback_timeout: float = 1.8
    # Snapshot (and compact the journal) after this many entries, or this long
    # after the previous snapshot, whichever comes first.
    snapshot_min_entries: int = 50_000
    snapshot_min_interval: float = 300.0
    commands_queue_size: int = 100_000  # proposals waiting for the Raft thread, at most
    join_timeout: float = 10.0  # how long joining a cluster may take

    @property
    def journal_path(self) -> str:
        return os.path.join(self.data_dir, JOURNAL_FILE)

    @property
    def snapshot_path(self) -> str:
        return os.path.join(self.data_dir, SNAPSHOT_FILE)

    def validate(self) -> RaftConfig:
        """Raise ValueError naming the first bad setting; return self."""
        parse_addr(self.self_addr, "self_addr")
        if not isinstance(self.peers, tuple):
            raise ValueError(f"peers must be a tuple of HOST:PORT, not {self.peers!r}")
        for peer in self.peers:
            parse_addr(peer, "peer")
        if self.self_addr in self.peers:
            raise ValueError(f"peers must not contain self_addr {self.self_addr!r}")
        if len(set(self.peers)) != len(self.peers):
            raise ValueError(f"peers has duplicates: {list(self.peers)}")
        if self.join_addr is not None:
            parse_addr(self.join_addr, "join_addr")
            if self.peers:
                raise ValueError("give peers (a new cluster) or join_addr (join one), not both")
            if self.join_addr == self.self_addr:
                raise ValueError("join_addr must be another member, not self_addr")
        if not isinstance(self.secret, str) or len(self.secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"secret must be at least {MIN_SECRET_LENGTH} characters (peer traffic is "
                "authenticated and encrypted with a key derived from it)"
            )
        if not isinstance(self.data_dir, str) or not self.data_dir:
            raise ValueError("data_dir must be a non-empty path")
        for name in (
            "append_entries_period",
            "tick_period",
            "election_timeout_min",
            "election_timeout_max",
            "connection_retry",
            "connection_timeout",
            "leader_fallback_timeout",
            "snapshot_min_interval",
            "join_timeout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        # PySyncObj asserts these; say which setting is wrong instead.
        if not self.election_timeout_min > 3 * self.append_entries_period:
            raise ValueError("election_timeout_min must be more than 3 x append_entries_period")
        if not self.election_timeout_max > self.election_timeout_min:
            raise ValueError("election_timeout_max must be more than election_timeout_min")
        if not self.connection_timeout >= self.election_timeout_max:
            raise ValueError("connection_timeout must be at least election_timeout_max")
        if not self.leader_fallback_timeout >= self.election_timeout_max:
            raise ValueError("leader_fallback_timeout must be at least election_timeout_max")
        for name, low in (("snapshot_min_entries", 2), ("commands_queue_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, not {value!r}")
        return self

    def syncobj_conf_kwargs(
        self,
        serializer: Callable[[str, Any], None],
        deserializer: Callable[[str], Any],
        on_ready: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``pysyncobj.SyncObjConf`` (kept as a dict so this
        module does not import PySyncObj and the choices can be read in a test).

        The snapshot hooks must be given: PySyncObj's own format pickles and
        gzip-9s the whole state on the Raft thread (DESIGN.md measured a 1.5 s
        stall at 200k keys, enough to start an election).
        """
        return {
            "password": derive_password(self.secret),
            "bindAddress": self.self_addr,  # never None: None binds every interface
            "useFork": False,  # a forked gRPC process breaks; the hooks run in-thread
            "autoTick": False,  # RaftNode runs the ticks on its own thread
            "journalFile": self.journal_path,
            "fullDumpFile": self.snapshot_path,  # without it a snapshot cannot rebuild a node
            "serializer": serializer,
            "deserializer": deserializer,
            "dynamicMembershipChange": True,
            "commandsWaitLeader": True,  # during an election, wait (each caller has a deadline)
            "appendEntriesUseBatch": True,
            "appendEntriesPeriod": self.append_entries_period,
            "autoTickPeriod": self.tick_period,
            "raftMinTimeout": self.election_timeout_min,
            "raftMaxTimeout": self.election_timeout_max,
            "connectionRetryTime": self.connection_retry,
            "connectionTimeout": self.connection_timeout,
            "leaderFallbackTimeout": self.leader_fallback_timeout,
            "logCompactionMinEntries": self.snapshot_min_entries,
            "logCompactionMinTime": self.snapshot_min_interval,
            "commandsQueueSize": self.commands_queue_size,
            "maxBindRetries": 1,  # a taken port fails start-up at once, with a clear error
            "onReady": on_ready,
        }
