"""What a load run does: ``BenchConfig`` (validated, picklable for worker processes)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lrukv_client.connect import resolve_servers
from lrukv_client.models import TLSConfig

__all__ = ["OPERATIONS", "BenchConfig", "parse_mix"]

OPERATIONS = ("get", "put", "delete", "keys")


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``"get=80,put=15,delete=5"`` into normalised weights.

    >>> parse_mix("get=3,put=1")
    {'get': 0.75, 'put': 0.25}
    """
    weights: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, number = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in OPERATIONS:
            raise ValueError(
                f"bad mix entry {part.strip()!r}; use OP=WEIGHT with OP in {', '.join(OPERATIONS)}"
            )
        try:
            weight = float(number)
        except ValueError:
            raise ValueError(f"bad weight in {part.strip()!r}") from None
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"weights must be finite and >= 0: {part.strip()!r}")
        weights[name] = weights.get(name, 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix needs at least one operation with a weight > 0")
    return {name: weight / total for name, weight in weights.items() if weight > 0}


@dataclass(frozen=True)
class BenchConfig:
    """One load run.

    Clients: ``processes`` worker processes, each running ``threads`` client threads;
    every thread is one SDK client with its own connection.
    Stop: after ``duration`` seconds, or after ``ops`` operations in total when given
    (whichever comes first; at least one of them is required).
    Requests: one call per operation; with ``batch`` > 1 each operation is a
    batch of that many keys (``get_many``/``put_many``/``delete_many``; counts
    are per key, latencies per batch); with ``pipeline`` > 0 every operation
    goes on a pipeline with that many requests in flight.
    Keys: shared keys ``{prefix}{i}`` for i < ``keyspace``, picked ``uniform`` or
    ``zipf`` (exponent ``zipf_s``); with probability ``private_ratio`` an operation
    instead targets one of the client's own ``private_keys``, whose reads are checked.
    The server's own keys: the run refuses to start when the keys it may write
    would not fit beside the ones already there (the LRU would evict them),
    unless ``allow_evictions``; it deletes the shared keys it used at the end
    unless ``keep``.
    """

    server: str | None = None
    transport: str | None = None
    timeout: float = 5.0
    tls: TLSConfig | None = None
    consistency: str = "default"
    threads: int = 4
    processes: int = 1
    mix: dict[str, float] = field(default_factory=lambda: {"get": 0.8, "put": 0.2})
    distribution: str = "uniform"
    zipf_s: float = 0.99
    keyspace: int = 1000
    value_size: int = 100
    duration: float | None = 10.0
    ops: int | None = None
    private_keys: int = 16
    private_ratio: float = 0.1
    preload: bool = True
    key_prefix: str = "bench:"
    keep: bool = False
    allow_evictions: bool = False
    seed: int = 1
    interval: float = 0.1  # seconds per point of the throughput timeline
    batch: int = 1  # keys per client operation (> 1: get_many / put_many / delete_many)
    pipeline: int = 0  # > 0: every request on a pipeline, this many in flight

    def validate(self) -> BenchConfig:
        """Return self, or raise ValueError naming the bad setting."""
        if self.threads < 1 or self.processes < 1:
            raise ValueError("threads and processes must be >= 1")
        if self.duration is None and self.ops is None:
            raise ValueError("give a duration or an op count: an unbounded run never ends")
        if self.duration is not None and not (0 < self.duration < math.inf):
            raise ValueError("duration must be > 0 seconds")
        if self.ops is not None and self.ops < 1:
            raise ValueError("ops must be >= 1")
        if self.distribution not in ("uniform", "zipf"):
            raise ValueError("distribution must be uniform or zipf")
        if self.zipf_s <= 0:
            raise ValueError("zipf_s must be > 0")
        if self.keyspace < 1:
            raise ValueError("keyspace must be >= 1")
        if self.value_size < 0:
            raise ValueError("value_size must be >= 0")
        if not 0.0 <= self.private_ratio <= 1.0:
            raise ValueError("private_ratio must be within [0, 1]")
        if self.private_ratio > 0 and self.private_keys < 1:
            raise ValueError("private_ratio > 0 needs private_keys >= 1")
        if not self.mix or any(op not in OPERATIONS for op in self.mix):
            raise ValueError(f"the mix may only contain {', '.join(OPERATIONS)}")
        if self.consistency not in ("stale", "default", "linearizable"):
            raise ValueError("consistency must be stale, default or linearizable")
        if self.interval <= 0:
            raise ValueError("interval must be > 0")
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        if self.pipeline < 0:
            raise ValueError("pipeline must be >= 0")
        if self.batch > 1 and self.pipeline:
            raise ValueError("use --batch or --pipeline, not both")
        if not self.key_prefix:
            raise ValueError("the key prefix must not be empty: the run would touch any key")
        return self

    def resolved(self) -> BenchConfig:
        """A copy naming the transport and the addresses the run dials (so the
        result says where it ran); raises ``InvalidArgument`` for a bad address."""
        transport, seeds = resolve_servers(self.server, self.transport)
        return replace(self, server=",".join(seeds), transport=transport.value)

    @property
    def new_keys(self) -> int:
        """At most how many keys the run creates: the shared keys and every
        client's private keys."""
        private = self.clients * self.private_keys if self.private_ratio > 0 else 0
        return self.keyspace + private

    @property
    def clients(self) -> int:
        return self.threads * self.processes

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tls"] = self.tls is not None
        data["clients"] = self.clients
        return data
