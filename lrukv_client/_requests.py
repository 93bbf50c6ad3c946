"""The one client request layer: what every lrukv client shares, without any I/O.

``Client`` (gRPC), ``AsyncClient`` (grpc.aio) and ``HttpClient`` (httpx) keep only
their I/O: opening channels or connections, sending one attempt, reading the
answer. Everything else is decided here, once:

* :class:`ClientCore` — the state every client has: its seeds and the node it
  talks to (:class:`~lrukv_client._targets.Targets`), the default deadline, the
  :class:`~lrukv_client.retry.Retry` policy, the default consistency, how to
  follow a leader, and **the per-call metadata** (:meth:`ClientCore.call_metadata`,
  sent as gRPC metadata and as HTTP headers: the one place where a bearer token
  or a W3C ``traceparent`` goes).
* :class:`Call` — one request, built by a transport's *wire* (``_grpc_wire``,
  ``_http_wire``): the message to send, the key it names, whether it writes,
  and how to read its answer.
* **The error table** — :data:`ERROR_CODES`: the server's wire ``code`` (the
  ``lrukv-error-code`` trailing metadata, ``error.code`` in HTTP bodies and in
  batch results) to the exception the client raises. The transports' own
  status tables (:data:`GRPC_STATUS`, :data:`HTTP_STATUS`) are the fallback when
  an answer carries no code (a proxy, an older server, a transport failure).
  :func:`error_for` is the only function that makes an exception from an answer.
* Batches — splitting ``put_many``/``get_many``/``delete_many`` input into
  chunks under the server's limits, and the per-key :class:`BatchResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lrukv_client._auth import AUTHORIZATION, bearer, check_token
from lrukv_client._targets import Targets
from lrukv_client._tracing import trace_headers
from lrukv_client.errors import (
    BatchTooLarge,
    DeadlineExceeded,
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    PermissionDenied,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unreachable,
    ValueTooLarge,
)
from lrukv_client.models import BatchResult, Consistency, check_key, check_ttl, to_bytes
from lrukv_client.retry import Retry

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_SIZE",
    "ERROR_CODES",
    "GRPC_STATUS",
    "HTTP_STATUS",
    "Call",
    "ClientCore",
    "Plan",
    "PutEntry",
    "batch_plan",
    "chunks",
    "drive",
    "entry_size",
    "error_for",
    "exists_plan",
    "local_key_error",
    "put_entries",
    "single",
]

R = TypeVar("R")
T = TypeVar("T")

# -- the error table ---------------------------------------------------------------------

ErrorClass = type[LrukvClientError]

ERROR_CODES: dict[str, ErrorClass] = {
    "key_not_found": KeyNotFound,
    "invalid_key": InvalidArgument,
    "invalid_value": InvalidArgument,
    "invalid_ttl": InvalidArgument,
    "invalid_request": InvalidArgument,
    "invalid_argument": InvalidArgument,
    "value_too_large": ValueTooLarge,
    "batch_too_large": BatchTooLarge,
    "not_leader": NotLeader,
    "log_unavailable": Unavailable,
    "too_many_streams": Unavailable,  # every stream slot is busy: retry later
    "unavailable": Unavailable,
    "permission_denied": PermissionDenied,
    "unauthenticated": Unauthenticated,
    "internal": ServerError,
}
"""The server's wire code -> the exception (lrukv_server.api.status is the other side)."""

GRPC_STATUS: dict[str, ErrorClass] = {
    "NOT_FOUND": KeyNotFound,
    "INVALID_ARGUMENT": InvalidArgument,
    "RESOURCE_EXHAUSTED": ValueTooLarge,
    "FAILED_PRECONDITION": NotLeader,
    # CANCELLED here was not our doing (we never surface our own cancels): the
    # server cancels calls when it shuts down, which is the same as unavailable.
    "UNAVAILABLE": Unavailable,
    "CANCELLED": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAUTHENTICATED": Unauthenticated,
}
"""gRPC status name -> exception, for an answer without a wire code."""

HTTP_STATUS: dict[int, ErrorClass] = {
    404: KeyNotFound,
    400: InvalidArgument,
    413: ValueTooLarge,
    401: Unauthenticated,
    403: PermissionDenied,
    408: DeadlineExceeded,
    504: DeadlineExceeded,
    429: Unavailable,
    502: Unavailable,
    503: Unavailable,
}
"""HTTP status -> exception, for an answer without a wire code (3xx: see _http_wire)."""


def error_for(
    code: str | None,
    fallback: ErrorClass | None,
    *,
    message: str,
    status: str | int,
    key: str | None = None,
    leader_rpc: str | None = None,
    leader_http: str | None = None,
) -> LrukvClientError:
    """The exception for a failed answer: by the wire ``code`` when the table
    knows it, else by the transport's ``fallback`` class, else ``ServerError``.

    ``message`` is already prefixed with the node; ``status`` names the
    transport's status (``"INTERNAL"``, ``500``) for a ``ServerError``. A
    ``KeyNotFound`` needs the ``key`` the call named (a call that names none
    gets a ``ServerError``: the server said something the call cannot mean).

    >>> error_for("invalid_ttl", None, message="n1: bad ttl", status=400)
    InvalidArgument('n1: bad ttl')
    >>> error_for(None, None, message="n1: boom", status="INTERNAL").code
    'INTERNAL'
    """
    cls = ERROR_CODES.get(code.strip().lower(), fallback) if code else fallback
    error: LrukvClientError
    if cls is KeyNotFound and key is not None:
        error = KeyNotFound(key)
    elif cls is NotLeader:
        error = NotLeader(message, leader_rpc=leader_rpc, leader_http=leader_http)
    elif cls is None or cls is KeyNotFound or issubclass(cls, ServerError):
        label = f"HTTP {status}" if isinstance(status, int) else status
        error = ServerError(f"{message} ({label})", code=status)
    else:
        error = cls(message)
    error.error_code = code
    return error


# -- one request, built ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One request as a wire built it: ``request`` to send (a proto message, or an
    ``HttpRequest``), the gRPC ``method`` name (the HTTP wire names the same
    method), the ``key`` it names (for ``KeyNotFound``), whether it ``write``s
    (retried only under ``retry_writes``), and ``decode(answer, target)`` that
    turns the transport's answer into the result."""

    method: str
    request: Any
    decode: Callable[[Any, str], R]
    key: str | None = None
    write: bool = False


# -- what every client holds -------------------------------------------------------------


class ClientCore:
    """The settings and the node bookkeeping of one client, whatever its transport.

    ``leader_of(err)`` picks the leader address the transport dials
    (``err.leader_rpc`` for gRPC, ``err.leader_http`` for HTTP).
    ``headers``: extra metadata sent with every call (gRPC metadata names are
    lower-cased). ``token``: a bearer token, sent as ``authorization: Bearer
    <token>`` with every call (for a server with ``--auth-policy``).
    """

    def __init__(
        self,
        seeds: Sequence[str],
        *,
        timeout: float | None,
        retry: Retry | None,
        consistency: Consistency | str,
        leader_of: Callable[[NotLeader], str | None],
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> None:
        self.targets = Targets(seeds)
        self.timeout = timeout
        self.retry = retry if retry is not None else Retry()
        self.consistency = Consistency.parse(consistency)
        self._leader_of = leader_of
        self._headers = tuple((name.lower(), value) for name, value in (headers or {}).items())
        token = check_token(token)
        if token is not None:
            self._headers += ((AUTHORIZATION, bearer(token)),)

    def level(self, consistency: Consistency | str | None) -> Consistency:
        """The read level of a call: its own, else the client's default."""
        return Consistency.parse(self.consistency if consistency is None else consistency)

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of every call and every attempt: gRPC metadata, HTTP headers.

        The one place per-call credentials and trace context go (a bearer
        ``authorization``, a W3C ``traceparent``): computed per attempt, so a
        header that changes per call (a trace span) is fresh on a retry too.
        """
        trace = trace_headers()
        return self._headers + tuple(trace.items()) if trace else self._headers

    def retry_options(self, *, write: bool, timeout: float | None) -> dict[str, Any]:
        """The keyword arguments of ``Retry.call_with_retry`` for one call."""
        return {
            "write": write,
            "timeout": timeout if timeout is not None else self.timeout,
            "redirect": self.redirect,
            "failover": self.failover,
            "reached": self.targets.has_reached,
            "seeds": len(self.targets.seeds),
        }

    def answered(self, error: LrukvClientError | None) -> None:
        """Record one attempt's outcome: any answer, even an error, means a node was
        reached (an ``Unreachable`` one does not count; see lrukv_client.retry)."""
        if error is None or not isinstance(error, Unreachable):
            self.targets.reached = True

    def redirect(self, err: NotLeader) -> bool:
        leader = self._leader_of(err)
        if not leader:
            return False
        self.targets.follow(leader)
        return True

    def failover(self, err: LrukvClientError) -> None:
        self.targets.fail_over()


# -- batches -------------------------------------------------------------------------------

DEFAULT_BATCH_SIZE = 1000
"""Entries per batch request the SDK sends (the server's default limit is 10,000)."""

DEFAULT_BATCH_BYTES = 1 << 20
"""Key and value bytes per batch request the SDK sends, at most (one entry may exceed it)."""


@dataclass(frozen=True, slots=True)
class PutEntry:
    """One checked entry of a ``put_many``."""

    key: str
    value: bytes
    ttl: float | None


def put_entries(
    items: Mapping[str, bytes | str] | Iterable[tuple[Any, ...]], ttl: float | None
) -> Iterator[PutEntry | BatchResult]:
    """Check each item of a ``put_many`` input, in order: a :class:`PutEntry` to
    send, or the :class:`BatchResult` of an item refused before sending (a key
    that is not a non-empty UTF-8 ``str``, a value that is not bytes or str, a
    bad TTL). ``ttl`` is the default of items without their own."""
    default_ttl = check_ttl(ttl)
    pairs: Iterable[tuple[Any, ...]] = items.items() if isinstance(items, Mapping) else items
    for item in pairs:
        key = item[0] if isinstance(item, tuple) and item else item
        code = "invalid_argument"
        try:
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise InvalidArgument(
                    f"a put_many item is (key, value) or (key, value, ttl), not {item!r:.60}"
                )
            code = "invalid_key"
            checked = check_key(key)
            code = "invalid_value"
            value = to_bytes(item[1])
            code = "invalid_ttl"
            own_ttl = check_ttl(item[2]) if len(item) == 3 else default_ttl
            yield PutEntry(checked, value, own_ttl)
        except InvalidArgument as err:
            err.error_code = code  # the server's code for the same refusal
            yield BatchResult("put", key if isinstance(key, str) else repr(key), error=err)


def local_key_error(op: str, key: object) -> BatchResult | None:
    """The result of a key refused before sending, or None if it may be sent."""
    try:
        check_key(key)
    except InvalidArgument as err:
        err.error_code = "invalid_key"
        return BatchResult(op, key if isinstance(key, str) else repr(key), error=err)
    return None


def entry_size(key: str, value: bytes = b"") -> int:
    """Bytes an entry costs a batch request, roughly (key, value, framing)."""
    return len(key.encode()) + len(value) + 16


def chunks(sizes: Sequence[int], *, max_entries: int, max_bytes: int) -> list[range]:
    """Split entries of these sizes into consecutive ranges of at most
    ``max_entries`` entries and ``max_bytes`` bytes (an entry alone over
    ``max_bytes`` is a chunk of its own: the server then judges it).

    >>> chunks([10, 10, 10, 10, 10], max_entries=2, max_bytes=100)
    [range(0, 2), range(2, 4), range(4, 5)]
    >>> chunks([60, 60, 5], max_entries=10, max_bytes=100)
    [range(0, 1), range(1, 3)]
    >>> chunks([], max_entries=10, max_bytes=100)
    []
    """
    out: list[range] = []
    start = 0
    while start < len(sizes):
        end = _chunk_end(sizes, start, max_entries, max_bytes)
        out.append(range(start, end))
        start = end
    return out


def check_batch_limits(max_entries: int, max_bytes: int) -> None:
    if max_entries < 1:
        raise InvalidArgument("batch_size must be >= 1")
    if max_bytes < 1:
        raise InvalidArgument("batch_bytes must be >= 1")


# -- plans: a call sequence without I/O ----------------------------------------------------

Plan = Generator[Call[Any], Any, R]
"""What one API method does, as a generator: it yields each :class:`Call` to make
and receives its decoded result (or has the call's exception thrown in), and
returns the method's result. The blocking clients run plans with :func:`drive`,
the asyncio client with its async twin, so batch splitting and error handling
are written once for every transport."""


def single(call: Call[R]) -> Plan[R]:
    """The plan of a method that is one call."""
    result: R = yield call
    return result


def drive(plan: Plan[R], execute: Callable[[Call[Any]], Any]) -> R:
    """Run ``plan``, making each of its calls with ``execute`` (blocking)."""
    try:
        call = next(plan)
        while True:
            try:
                result = execute(call)
            except LrukvClientError as err:
                call = plan.throw(err)
            else:
                call = plan.send(result)
    except StopIteration as done:
        value: R = done.value
        return value


def exists_plan(ttl: Plan[float | None]) -> Plan[bool]:
    """``exists(key)``: ``ttl(key)`` without the number."""
    try:
        yield from ttl
    except KeyNotFound:
        return False
    return True


def _chunk_end(sizes: Sequence[int], start: int, max_entries: int, max_bytes: int) -> int:
    end, used = start, 0
    while end < len(sizes) and (
        end == start or (end - start < max_entries and used + sizes[end] <= max_bytes)
    ):
        used += sizes[end]
        end += 1
    return end


def batch_plan(
    op: str,
    planned: Sequence[T | BatchResult],
    send: Callable[[list[T]], Call[list[BatchResult]]],
    key_of: Callable[[T], str],
    size_of: Callable[[T], int],
    *,
    atomic: bool,
    max_entries: int,
    max_bytes: int,
) -> Plan[list[BatchResult]]:
    """The plan of ``put_many``/``delete_many``/``get_many_results``.

    ``planned``: the input in order, each item either to be sent or already the
    :class:`BatchResult` of an item refused before sending. Returns one result
    per input item, in input order.

    Not atomic: the items to send go in chunks of at most ``max_entries`` items
    and ``max_bytes`` bytes; when the server still answers ``batch_too_large``
    (its limit is lower), the chunk is halved and the rest of the batch goes in
    the smaller chunks. Atomic: a refused item raises its error before anything
    is sent, and the items go in ONE request, never split (over the server's
    limit it fails with ``BatchTooLarge``). Nothing to send: no request at all.
    """
    check_batch_limits(max_entries, max_bytes)
    out: list[BatchResult | None] = [
        item if isinstance(item, BatchResult) else None for item in planned
    ]
    to_send: list[tuple[int, T]] = [
        (index, item) for index, item in enumerate(planned) if not isinstance(item, BatchResult)
    ]
    if atomic:
        for item in planned:
            if isinstance(item, BatchResult) and item.error is not None:
                raise item.error
    sizes = [size_of(item) for _, item in to_send]
    start, limit = 0, max_entries
    while start < len(to_send):
        end = len(to_send) if atomic else _chunk_end(sizes, start, limit, max_bytes)
        part = to_send[start:end]
        try:
            got: list[BatchResult] = yield send([item for _, item in part])
        except BatchTooLarge as err:
            if atomic:
                raise
            if len(part) > 1:
                limit = max(1, len(part) // 2)
                continue
            got = [BatchResult(op, key_of(part[0][1]), error=err)]
        if len(got) != len(part):
            raise ServerError(
                f"the server answered {len(got)} results for a batch of {len(part)} keys"
            )
        for (index, _), result in zip(part, got, strict=True):
            out[index] = result
        start = end
    return [result for result in out if result is not None]
