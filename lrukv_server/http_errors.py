"""HTTP error answers written below the WSGI app, in the API's JSON error body.

gunicorn answers some requests itself, before the Flask app sees them: a
malformed request line, too many or too long headers, an over-long request
line (its ``util.write_error``, text/html). lrukv's worker answers a few more
(a request head that never arrives in time). All of them get the body every
other error has, ``{"error": {"code": ..., "message": ...}}`` (docs/api.md),
with the code derived from the status the way Werkzeug's own errors are
(``Bad Request`` -> ``bad_request``), and a 500 as ``internal`` with the error
table's fixed message.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util as gunicorn_util

from lrukv_server.api.status import INTERNAL, INTERNAL_MESSAGE

__all__ = [
    "MAX_MESSAGE_CHARS",
    "error_code",
    "error_response",
    "install_json_errors",
    "write_json_error",
]

MAX_MESSAGE_CHARS = 200
"""gunicorn's messages quote the offending line; a long one is cut, not echoed whole."""


def error_code(reason: str) -> str:
    """The JSON ``code`` for an HTTP reason phrase.

    >>> error_code("Request Header Fields Too Large")
    'request_header_fields_too_large'
    """
    return reason.lower().replace(" ", "_").replace("-", "_")


def error_response(
    status: int, reason: str, code: str, message: str, headers: tuple[str, ...] = ()
) -> bytes:
    """A whole HTTP/1.1 response carrying the JSON error body; the connection closes after it.

    >>> error_response(408, "Request Timeout", "request_timeout", "too slow").split(b"\\r\\n")[0]
    b'HTTP/1.1 408 Request Timeout'
    """
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    body = (
        json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False) + "\n"
    ).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn's ``util.write_error`` (same arguments), in JSON."""
    if status_int >= 500:
        code, message = INTERNAL.code, INTERNAL_MESSAGE
    else:
        code, message = error_code(reason), mesg or reason
    gunicorn_util.write_nonblock(sock, error_response(status_int, reason, code, message))


def install_json_errors() -> None:
    """Make gunicorn write its own error answers with :func:`write_json_error`.

    gunicorn decides the status and logs the refusal itself (Worker.handle_error)
    and then calls ``util.write_error``, its one writer of error pages; replacing
    that function keeps gunicorn's decisions and changes only the body. Called in
    the worker process, which serves nothing but lrukv.
    """
    gunicorn_util.write_error = write_json_error
