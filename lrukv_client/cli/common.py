"""What every ``lrukv`` command shares: the global settings, the exit codes, and
the one place that turns an SDK error into one stderr line and an exit code."""

from __future__ import annotations

import base64
import contextlib
import enum
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import typer

from lrukv_client import (
    AnyClient,
    DeadlineExceeded,
    InvalidArgument,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    PermissionDenied,
    TLSConfig,
    Unauthenticated,
    Unavailable,
    connect,
)

__all__ = [
    "EXIT_BENCH_ERRORS",
    "EXIT_BENCH_WRONG_VALUES",
    "EXIT_BROKEN_PIPE",
    "EXIT_CODES",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_SERVER_ERROR",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "ConsistencyChoice",
    "Settings",
    "TransportChoice",
    "errors_to_exit_codes",
    "exit_code_of",
    "fail",
    "printable",
    "value_json",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_SERVER_ERROR = 4
EXIT_BENCH_WRONG_VALUES = 5
EXIT_BENCH_ERRORS = 6
EXIT_BROKEN_PIPE = 141

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_NOT_FOUND: "key not found",
    EXIT_USAGE: "usage error (option, argument, server address, bench --output), "
    "or the server refused an argument",
    EXIT_UNAVAILABLE: "unavailable or denied",
    EXIT_SERVER_ERROR: "unexpected answer from the server",
    EXIT_BENCH_WRONG_VALUES: "bench: the correctness check found wrong values",
    EXIT_BENCH_ERRORS: "bench: operations failed",
    127: "the CLI's dependencies are not installed (pip install 'lrukv[cli]')",
    130: "interrupted",
    EXIT_BROKEN_PIPE: "stdout closed early",
}


class TransportChoice(enum.StrEnum):
    grpc = "grpc"
    http = "http"


class ConsistencyChoice(enum.StrEnum):
    stale = "stale"
    default = "default"
    linearizable = "linearizable"


@dataclass(frozen=True)
class Settings:
    """The global options, handed to every command through the Click context."""

    server: str | None
    transport: str | None
    json: bool
    timeout: float
    tls: TLSConfig | None
    token: str | None = None

    def open(self) -> AnyClient:
        return connect(
            self.server,
            transport=self.transport,
            timeout=self.timeout,
            tls=self.tls,
            token=self.token,
        )


# -- running a command: one client, one error line, one exit code ----------------------


def fail(code: int, message: str) -> NoReturn:
    """Print ``lrukv: error: MESSAGE`` as one line on stderr and exit with ``code``."""
    typer.echo(f"lrukv: error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def exit_code_of(err: LrukvClientError) -> int:
    """The exit code of an SDK error (the table in ``lrukv_client.cli``)."""
    if isinstance(err, KeyNotFound):
        return EXIT_NOT_FOUND
    if isinstance(err, InvalidArgument):
        return EXIT_USAGE
    unavailable = Unavailable | DeadlineExceeded | PermissionDenied | Unauthenticated | NotLeader
    if isinstance(err, unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_SERVER_ERROR  # ServerError, and any error this table does not know yet


def _describe(err: LrukvClientError) -> str:
    if isinstance(err, KeyNotFound):
        return f"key not found: {err.key}"
    kind = {
        Unavailable: "unavailable",
        DeadlineExceeded: "deadline exceeded",
        PermissionDenied: "permission denied",
        Unauthenticated: "unauthenticated",
        NotLeader: "not the leader",
    }
    for cls, word in kind.items():
        if isinstance(err, cls):
            return f"{word}: {err}"
    return str(err)


@contextlib.contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """Turn every failure into one stderr line and an exit code (see the module doc)."""
    try:
        yield
    except LrukvClientError as err:
        if os.environ.get("LRUKV_DEBUG"):
            raise
        fail(exit_code_of(err), _describe(err))
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python from
        # complaining when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(EXIT_BROKEN_PIPE) from None


# -- values on a terminal and in JSON --------------------------------------------------


def value_json(value: bytes) -> dict[str, str]:
    """A value in JSON: as text when it is UTF-8, else base64 (``encoding`` says which)."""
    try:
        return {"value": value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


def printable(value: bytes) -> str:
    """A value on one text line: itself when it is printable UTF-8, else ``base64:...``."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (text.isprintable() or text == "") and not text.startswith("base64:"):
        return text
    return "base64:" + base64.b64encode(value).decode("ascii")
