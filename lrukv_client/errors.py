"""Exceptions raised by the lrukv client SDK (both transports raise the same ones).

They mirror the server's error table: one gRPC status code or HTTP status maps to
one class, so code written against :class:`~lrukv_client.Client` works unchanged
against :class:`~lrukv_client.HttpClient`::

    LrukvClientError
    ├── KeyNotFound        (also KeyError)      NOT_FOUND / 404: absent, deleted, evicted, expired
    ├── InvalidArgument    (also ValueError)    INVALID_ARGUMENT / 400: bad key, TTL, consistency
    │   └── ValueTooLarge                       RESOURCE_EXHAUSTED / 413: value above the limit
    │       └── BatchTooLarge                   RESOURCE_EXHAUSTED / 413: batch above the limits
    ├── NotLeader                               FAILED_PRECONDITION / 307: carries the leader
    ├── Unavailable                             UNAVAILABLE / 503, reset connections
    │   ├── Unreachable                         no connection: refused, name not resolved
    │   └── TooManyRedirects                    leader redirects went round in circles
    ├── DeadlineExceeded   (also TimeoutError)  the call's deadline passed before an answer
    ├── PermissionDenied                        PERMISSION_DENIED / 403
    ├── Unauthenticated                         UNAUTHENTICATED / 401
    └── ServerError                             anything else: INTERNAL, a 500, a garbled answer

Retries: :class:`Unavailable`, :class:`NotLeader` and an attempt's own
:class:`DeadlineExceeded` are *retryable*; the client retries them by itself (see
``lrukv_client.retry``) and raises them only once its budget is spent.
:class:`Unreachable` before any node of the client ever answered is not
retried (a wrong address or a server that is not running fails at once). Then
``attempts`` says how many attempts were made.
"""

from __future__ import annotations

__all__ = [
    "BatchTooLarge",
    "DeadlineExceeded",
    "InvalidArgument",
    "KeyNotFound",
    "LrukvClientError",
    "NotLeader",
    "PermissionDenied",
    "ServerError",
    "TooManyRedirects",
    "Unauthenticated",
    "Unavailable",
    "Unreachable",
    "ValueTooLarge",
]


class LrukvClientError(Exception):
    """Base class of every error the client SDK raises on purpose.

    ``message`` is the server's (or the transport's) explanation; ``attempts`` is
    how many attempts the call made before it gave up (1 when it did not retry);
    ``error_code`` is the server's precise reason when it sent one
    (``"invalid_ttl"``, ``"log_unavailable"``…), else None.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = 1
        self.error_code: str | None = None

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (gave up after {self.attempts} attempts)"
        return self.message


class KeyNotFound(LrukvClientError, KeyError):
    """The key is absent: never written, deleted, evicted by the LRU, or expired."""

    def __init__(self, key: str, message: str | None = None) -> None:
        super().__init__(message or f"key not found: {key!r}")
        self.key = key

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the args tuple; keep ours.
        return LrukvClientError.__str__(self)


class InvalidArgument(LrukvClientError, ValueError):
    """The server (or the client, before sending) refused an argument; nothing changed."""


class ValueTooLarge(InvalidArgument):
    """The value (or the whole message) is larger than the server accepts."""


class BatchTooLarge(ValueTooLarge):
    """A batch has more entries (or bytes) than the server takes in one request
    (its ``--max-batch-entries``). ``put_many``/``get_many``/``delete_many`` split
    their input in smaller requests by themselves; an atomic batch is never split
    and fails with this instead."""


class NotLeader(LrukvClientError):
    """The node cannot take this request because it is not the leader.

    ``leader_rpc`` / ``leader_http`` are ``host:port`` of the leader's gRPC and HTTP
    APIs, or None while the cluster has no known leader. The clients follow a known
    leader by themselves; this reaches callers only when redirects are exhausted
    or disabled.
    """

    def __init__(
        self,
        message: str = "not the leader",
        *,
        leader_rpc: str | None = None,
        leader_http: str | None = None,
    ) -> None:
        super().__init__(message)
        self.leader_rpc = leader_rpc
        self.leader_http = leader_http


class Unavailable(LrukvClientError):
    """The server cannot be reached or cannot serve now (no leader, shutting down,
    transaction log down). Retrying later, or against another node, may work."""


class Unreachable(Unavailable):
    """No connection could be made to the node: refused, name not resolved, no
    route. Retried only once the client has reached a node before (a restart,
    a leader change); a client that never reached any fails at once."""


class TooManyRedirects(Unavailable):
    """The call was sent from node to node more times than ``max_redirects`` allows,
    usually while a leader election is in progress."""


class DeadlineExceeded(LrukvClientError, TimeoutError):
    """No answer arrived before the call's deadline. A write may or may not have
    been applied."""


class PermissionDenied(LrukvClientError):
    """The server knows who the caller is and refuses the request."""


class Unauthenticated(LrukvClientError):
    """The server did not accept the caller's credentials (client certificate…)."""


class ServerError(LrukvClientError):
    """An answer the client does not expect: an internal server error, an unknown
    status, a malformed body. ``code`` is the gRPC code name or the HTTP status."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
