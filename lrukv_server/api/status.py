"""THE error table: every core and service error, as a gRPC code and an HTTP status.

Both transports call :func:`status_of` and nothing else to decide what a failure
looks like on the wire, so a given error means the same thing over gRPC and
HTTP. Lookup walks the exception's MRO, so the most specific row wins and a new
subclass inherits its parent's row until it gets one of its own.

=====================  ===================  ====  ===================
error                  gRPC                 HTTP  code (JSON / meta)
=====================  ===================  ====  ===================
KeyNotFound            NOT_FOUND            404   key_not_found
ValueTooLarge          RESOURCE_EXHAUSTED   413   value_too_large
InvalidKey             INVALID_ARGUMENT     400   invalid_key
InvalidValue           INVALID_ARGUMENT     400   invalid_value
InvalidTTL             INVALID_ARGUMENT     400   invalid_ttl
InvalidRequest         INVALID_ARGUMENT     400   invalid_request
InvalidArgument        INVALID_ARGUMENT     400   invalid_argument
NotLeader              FAILED_PRECONDITION  307   not_leader
                                            /503  (307 when the leader's HTTP address is known)
LogUnavailable         UNAVAILABLE          503   log_unavailable
TooManyStreams         RESOURCE_EXHAUSTED   503   too_many_streams
BatchTooLarge          RESOURCE_EXHAUSTED   413   batch_too_large
Unavailable            UNAVAILABLE          503   unavailable
anything else          INTERNAL             500   internal
=====================  ===================  ====  ===================

The ``code`` is sent as ``error.code`` in HTTP error bodies and as the
``lrukv-error-code`` trailing metadata over gRPC, so a client can raise the
precise exception (InvalidKey rather than just "invalid argument").

Messages: for every row but ``internal`` the exception's own text is sent (it
names the limit or the valid choices and never contains server internals); an
unexpected exception is logged with its traceback and answered with a fixed
text, so a bug never leaks paths or values to a client.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from lrukv.errors import (
    InvalidArgument,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    KeyNotFound,
    ValueTooLarge,
)
from lrukv_server.errors import (
    BatchTooLarge,
    InvalidRequest,
    LogUnavailable,
    NotLeader,
    TooManyStreams,
    Unavailable,
)

__all__ = ["INTERNAL", "TABLE", "ErrorStatus", "message_of", "status_of"]


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """How one kind of error is reported.

    ``http`` is the status of the common case; NotLeader's HTTP answer is 307
    only when the leader's HTTP address is known (see :meth:`http_status`).
    """

    error: type[BaseException]
    grpc_code: grpc.StatusCode
    http: int
    code: str

    def http_status(self, exc: BaseException) -> int:
        """The HTTP status for this particular exception."""
        if isinstance(exc, NotLeader):
            return 307 if exc.leader_http else 503
        return self.http


TABLE: tuple[ErrorStatus, ...] = (
    ErrorStatus(KeyNotFound, grpc.StatusCode.NOT_FOUND, 404, "key_not_found"),
    ErrorStatus(ValueTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "value_too_large"),
    ErrorStatus(InvalidKey, grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_key"),
    ErrorStatus(InvalidValue, grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_value"),
    ErrorStatus(InvalidTTL, grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_ttl"),
    ErrorStatus(InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_request"),
    ErrorStatus(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_argument"),
    ErrorStatus(NotLeader, grpc.StatusCode.FAILED_PRECONDITION, 503, "not_leader"),
    ErrorStatus(LogUnavailable, grpc.StatusCode.UNAVAILABLE, 503, "log_unavailable"),
    ErrorStatus(TooManyStreams, grpc.StatusCode.RESOURCE_EXHAUSTED, 503, "too_many_streams"),
    ErrorStatus(Unavailable, grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
    ErrorStatus(BatchTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "batch_too_large"),
)
"""Every row; most specific classes first (lookup is by MRO, so order is only for reading)."""

INTERNAL = ErrorStatus(Exception, grpc.StatusCode.INTERNAL, 500, "internal")
"""The answer to an exception no row names: a bug, never a client's fault."""

INTERNAL_MESSAGE = "internal server error; the server log has the details"

_BY_TYPE: dict[type[BaseException], ErrorStatus] = {row.error: row for row in TABLE}


def status_of(exc: BaseException) -> ErrorStatus:
    """Return the row for *exc*: its own class's, else its nearest ancestor's, else INTERNAL.

    >>> status_of(KeyNotFound("k")).http
    404
    >>> status_of(ZeroDivisionError()).code
    'internal'
    """
    for cls in type(exc).__mro__:
        row = _BY_TYPE.get(cls)
        if row is not None:
            return row
    return INTERNAL


def message_of(exc: BaseException, row: ErrorStatus) -> str:
    """The text a client sees: the exception's own message, except for INTERNAL."""
    if row is INTERNAL:
        return INTERNAL_MESSAGE
    text = str(exc)
    return text or row.code.replace("_", " ")
