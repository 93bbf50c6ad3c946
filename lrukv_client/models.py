"""Plain values shared by both clients: consistency levels, server info, TLS
settings, and the argument checks done before anything is sent."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from lrukv_client.errors import InvalidArgument, LrukvClientError

__all__ = [
    "BatchResult",
    "ClusterMember",
    "ClusterStatus",
    "Consistency",
    "ServerInfo",
    "StoreStats",
    "TLSConfig",
    "check_key",
    "check_ttl",
    "to_bytes",
]


class Consistency(enum.Enum):
    """How fresh a read must be (the names users of Consul and rqlite know).

    ``STALE``: any node answers from its local state, which may lag the leader.
    ``DEFAULT``: the node that believes it is the leader answers.
    ``LINEARIZABLE``: the answer is confirmed through the replicated log.
    """

    STALE = "stale"
    DEFAULT = "default"
    LINEARIZABLE = "linearizable"

    @classmethod
    def parse(cls, value: Consistency | str) -> Consistency:
        """Accept a level or its name, case-insensitively.

        >>> Consistency.parse("Stale")
        <Consistency.STALE: 'stale'>
        """
        if isinstance(value, Consistency):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(level.value for level in cls)
            raise InvalidArgument(f"unknown consistency {value!r}; use one of: {names}") from None


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """One node of the cluster: its id, ``host:port`` of its gRPC and HTTP APIs,
    and whether it is the leader (a single node reports itself as leader)."""

    id: str
    rpc_addr: str
    http_addr: str
    is_leader: bool


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """A cluster member as the node asked sees it (empty addresses: not learned yet)."""

    id: str
    raft_addr: str
    http_addr: str
    grpc_addr: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The node asked, at the top level: its role (``leader``, ``follower``,
    ``candidate``), Raft term and indexes, the leader (None while unknown) and
    the members. ``digest`` (when asked for) is the SHA-256 of its store's
    snapshot: members at the same ``applied_index`` show the same one."""

    node_id: str
    role: str
    term: int
    commit_index: int
    applied_index: int
    leader: ClusterMember | None
    members: tuple[ClusterMember, ...]
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """One node's store: how full it is, its limits, and its counters.

    ``size`` live items out of ``capacity`` (``shards * items_per_shard``; a
    full shard evicts its least recently used item). ``bytes``: UTF-8 key bytes
    plus value bytes held. ``max_bytes`` / ``max_value_bytes``: None when
    unlimited. ``hits`` / ``misses``: reads since the node started.
    ``evictions``: items that left without a delete, by cause (``capacity``,
    ``bytes``, ``expired``).
    """

    size: int
    capacity: int
    shards: int
    items_per_shard: int
    bytes: int
    max_bytes: int | None
    max_key_bytes: int
    max_value_bytes: int | None
    hits: int
    misses: int
    evictions: dict[str, int]

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses), or 0.0 before any read.

        >>> StoreStats(0, 10, 1, 10, 0, None, 1024, None, 3, 1, {}).hit_ratio
        0.75
        """
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS settings for either client. Passing one turns TLS on.

    ``ca_file``: PEM bundle of the CAs that sign the server's certificate; None
    trusts the system's CAs. ``cert_file`` / ``key_file``: the client's own
    certificate and key for mutual TLS (both or neither). ``server_name``: the
    name to expect in the server's certificate (and send as SNI) instead of the
    host in the address, e.g. when connecting by IP.
    """

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise InvalidArgument("a client certificate needs both cert_file and key_file")

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """Return the PEM bytes of (CA bundle, client key, client certificate).

        Raises ``InvalidArgument`` naming the file that cannot be read.
        """

        def load(path: str | Path | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise InvalidArgument(f"cannot read TLS file {path}: {exc.strerror}") from exc

        return load(self.ca_file), load(self.key_file), load(self.cert_file)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of one key of a batch (``put_many``, ``delete_many``,
    ``get_many_results``) or of one request of a pipeline.

    ``op``: ``"get"``, ``"put"`` or ``"delete"``. ``error``: None if the key's
    operation succeeded, else the exception a single call would have raised
    (``InvalidArgument`` for a refused key, ``ValueTooLarge``…; its
    ``error_code`` is the server's wire code). ``found`` / ``value``: for a get,
    whether the key was present and its value. ``existed``: for a delete.

    >>> BatchResult("put", "k").ok
    True
    """

    op: str
    key: str
    found: bool = False
    value: bytes | None = None
    existed: bool = False
    error: LrukvClientError | None = None

    @property
    def ok(self) -> bool:
        """Whether this key's operation succeeded (a get of an absent key did)."""
        return self.error is None


def check_key(key: object) -> str:
    """Refuse, before sending, keys no lrukv server can accept: not a ``str``, empty,
    or not encodable as UTF-8. Length and control characters are left to the
    server, whose limits are configurable.

    >>> check_key("key-a")
    'key-a'
    """
    if not isinstance(key, str):
        raise InvalidArgument(f"key must be str, not {type(key).__name__}")
    if not key:
        raise InvalidArgument("key must not be empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"key is not valid UTF-8 (lone surrogate at {exc.start})") from None
    return key


def to_bytes(value: object) -> bytes:
    """Values are bytes; a ``str`` is sent as its UTF-8 encoding.

    >>> to_bytes("café")
    b'caf\\xc3\\xa9'
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"value is not valid UTF-8 (at {exc.start})") from None
    raise InvalidArgument(f"value must be bytes or str, not {type(value).__name__}")


def check_ttl(ttl: float | None) -> float | None:
    """A TTL is None (never expires) or a finite number of seconds > 0."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidArgument(f"ttl must be a number of seconds, not {type(ttl).__name__}")
    ttl = float(ttl)
    if not (0 < ttl < float("inf")):
        raise InvalidArgument(f"ttl must be a finite number of seconds > 0, not {ttl}")
    return ttl
