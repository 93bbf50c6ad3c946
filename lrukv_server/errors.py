"""Errors of the service layer, in addition to the core's (``lrukv.errors``).

The API layer maps every one of these, and the core's, to a gRPC status code and
an HTTP status in one table (``lrukv_server.api.status``)::

    ServiceError
    ├── NotLeader          this node cannot take the request; carries the leader's addresses
    ├── Unavailable        cannot serve now: no leader, shutting down, transaction log down
    │   ├── LogUnavailable the transaction log refused or failed; writes are refused
    │   ├── Timeout        no outcome in time: the write may or may not be applied
    │   └── TooManyStreams every item-stream slot is taken; retry later
    ├── InvalidRequest     a request the core never sees: bad consistency level, bad TTL text…
    └── BatchTooLarge      a batch over the batch limits (entries or bytes); nothing was done
"""

from __future__ import annotations

__all__ = [
    "BatchTooLarge",
    "InvalidRequest",
    "LogUnavailable",
    "NotLeader",
    "ServiceError",
    "Timeout",
    "TooManyStreams",
    "Unavailable",
]


class ServiceError(Exception):
    """Base class of errors raised by the service layer."""


class NotLeader(ServiceError):
    """The request needs the leader and this node is not it.

    ``leader_rpc`` / ``leader_http`` are ``host:port`` of the leader's APIs, or
    None while no leader is known (then clients should retry after a pause).
    ``leader_raft`` is the leader's Raft address: all the Raft layer knows; the
    service maps it to the API addresses. The request was not applied.
    """

    def __init__(
        self,
        leader_rpc: str | None = None,
        leader_http: str | None = None,
        *,
        leader_raft: str | None = None,
    ) -> None:
        self.leader_rpc = leader_rpc
        self.leader_http = leader_http
        self.leader_raft = leader_raft
        where = leader_rpc or leader_http or leader_raft
        super().__init__(f"not the leader; leader is {where}" if where else "no leader known")


class Unavailable(ServiceError):
    """The node cannot serve this request now; retrying later or elsewhere may work."""


class LogUnavailable(Unavailable):
    """The transaction log cannot record writes, so writes are refused rather than
    acknowledged and lost."""


class Timeout(Unavailable):
    """No outcome within the request's deadline, or the leader changed before
    confirming it: the write may still be applied (or may never be). Retrying
    a write that is not idempotent can apply it twice."""


class TooManyStreams(Unavailable):
    """Every slot for item streams is taken. Streams are capped so that clients
    that stop reading cannot hold every server thread and starve other calls."""


class InvalidRequest(ServiceError, ValueError):
    """A malformed request, caught before it reaches the store."""


class BatchTooLarge(ServiceError, ValueError):
    """A batch over the server's batch limits (``--max-batch-entries``,
    ``--max-batch-bytes``). Refused whole, before anything is done; as one key's
    error of a read batch, that key's value did not fit in the answer (the key
    is unchanged: read it alone or in a smaller batch)."""
