"""``lrukv``: the command line of lrukv (Typer), over the public SDK only.

    lrukv put KEY VALUE          (VALUE "-" reads stdin; or --file PATH)
    lrukv get KEY                (the raw value on stdout, binary-safe)
    lrukv delete KEY
    lrukv keys | getkeys
    lrukv items | getkeysvalues
    lrukv servers
    lrukv bench ...              (the load generator; see docs/cli.md)

Exit codes, for scripts:

====  ==========================================================================
0     success
1     the key was not found (``get``; ``delete --must-exist``)
2     usage: a bad option or argument, or the server refused the key, value or TTL
3     unavailable or denied: unreachable, no leader, deadline exceeded,
      permission denied, unauthenticated, too many redirects
4     an unexpected answer from the server (an internal error, a garbled reply)
5     ``bench`` only: the correctness check found wrong values
6     ``bench`` only: operations failed (and ``--allow-errors`` was not given)
130   interrupted (Ctrl-C)
141   stdout was closed early (``lrukv keys | head``)
====  ==========================================================================

Every error is one line on stderr, never a traceback (``LRUKV_DEBUG=1`` shows it).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, BinaryIO, TypeVar

import typer

from lrukv_client import AnyClient, TLSConfig, __version__
from lrukv_client.cli.bench import bench
from lrukv_client.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    ConsistencyChoice,
    Settings,
    TransportChoice,
    errors_to_exit_codes,
    fail,
)

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="lrukv",
    help="Talk to an lrukv server: put, get, delete, list, and load-test it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrukv {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    *,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            "-s",
            envvar="LRUKV_SERVER",
            help="host:port of a node, or a comma-separated list of seeds; an http:// or "
            "https:// URL selects HTTP. Default: 127.0.0.1:50051 (gRPC), 127.0.0.1:8080 (HTTP).",
        ),
    ] = None,
    transport: Annotated[
        TransportChoice | None,
        typer.Option(
            "--transport",
            "-t",
            envvar="LRUKV_TRANSPORT",
            help="grpc or http (default: from the address, else grpc).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON output.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="LRUKV_TIMEOUT",
            min=0.001,
            help="Seconds for each command's call, retries included.",
        ),
    ] = 5.0,
    tls: Annotated[bool, typer.Option("--tls", help="Use TLS, trusting the system's CAs.")] = False,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", envvar="LRUKV_TLS_CA", help="PEM CA bundle (implies --tls)."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", envvar="LRUKV_TLS_CERT", help="Client certificate (mTLS)."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", envvar="LRUKV_TLS_KEY", help="Client private key (mTLS)."),
    ] = None,
    tls_server_name: Annotated[
        str | None,
        typer.Option(
            "--tls-server-name",
            envvar="LRUKV_TLS_SERVER_NAME",
            help="Name expected in the server's certificate, if not the host.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    tls_config = None
    if tls or tls_ca or tls_cert or tls_key or tls_server_name:
        if (tls_cert is None) != (tls_key is None):
            raise typer.BadParameter("--tls-cert and --tls-key go together")
        tls_config = TLSConfig(
            ca_file=tls_ca, cert_file=tls_cert, key_file=tls_key, server_name=tls_server_name
        )
    ctx.obj = Settings(
        server=server,
        transport=transport.value if transport is not None else None,
        json=json_output,
        timeout=timeout,
        tls=tls_config,
    )


def _run(ctx: typer.Context, action: Callable[[AnyClient], T]) -> T:
    settings: Settings = ctx.obj
    with errors_to_exit_codes(), settings.open() as client:
        return action(client)


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


def _value_json(value: bytes) -> dict[str, str]:
    """A value in JSON: as text when it is UTF-8, else base64 (``encoding`` says which)."""
    try:
        return {"value": value.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


# -- the commands ------------------------------------------------------------------------

ConsistencyOption = Annotated[
    ConsistencyChoice,
    typer.Option("--consistency", "-c", help="stale (any node), default (leader), linearizable."),
]


@app.command()
def put(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="The key.")],
    value: Annotated[
        str | None,
        typer.Argument(help="The value; '-' reads it from stdin.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Read the value from this file.", exists=True, dir_okay=False
        ),
    ] = None,
    ttl: Annotated[
        float | None, typer.Option("--ttl", help="Seconds until the key expires.")
    ] = None,
) -> None:
    """Store VALUE under KEY (the original's `put`)."""
    if (value is None) == (file is None):
        raise typer.BadParameter("give a VALUE or --file (not both)", param_hint="VALUE")
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None
    elif value == "-":
        data = sys.stdin.buffer.read()
    else:
        # argv was decoded with surrogateescape: get the user's exact bytes back.
        data = os.fsencode(value or "")
    _run(ctx, lambda kv: kv.put(key, data, ttl=ttl))
    if ctx.obj.json:
        _echo_json({"key": key, "stored": True, "bytes": len(data)})
    else:
        typer.echo("OK")


@app.command()
def get(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="The key.")],
    consistency: ConsistencyOption = ConsistencyChoice.default,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the value to this file.")
    ] = None,
) -> None:
    """Print the value of KEY: its raw bytes, exactly (exit 1 if absent)."""
    value = _run(ctx, lambda kv: kv.get(key, consistency=consistency.value))
    if ctx.obj.json:
        _echo_json({"key": key, **_value_json(value)})
        return
    if output is not None:
        try:
            output.write_bytes(value)
        except OSError as exc:
            fail(EXIT_USAGE, f"cannot write {output}: {exc.strerror}")
        return
    out = _stdout()
    with errors_to_exit_codes():
        out.write(value)
        # A newline for a person at a terminal; pipes and files get the bytes alone.
        if sys.stdout.isatty() and not value.endswith(b"\n"):
            out.write(b"\n")
        out.flush()


@app.command()
def delete(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="The key.")],
    must_exist: Annotated[
        bool, typer.Option("--must-exist", help="Exit 1 if the key did not exist.")
    ] = False,
) -> None:
    """Remove KEY. Removing an absent key succeeds (see --must-exist)."""
    existed = _run(ctx, lambda kv: kv.delete(key))
    if ctx.obj.json:
        _echo_json({"key": key, "existed": existed})
    else:
        typer.echo("deleted" if existed else "absent")
    if must_exist and not existed:
        raise typer.Exit(EXIT_NOT_FOUND)


def keys(ctx: typer.Context, *, consistency: ConsistencyOption = ConsistencyChoice.default) -> None:
    """List every key, one per line."""
    names = _run(ctx, lambda kv: kv.keys(consistency=consistency.value))
    with errors_to_exit_codes():
        if ctx.obj.json:
            _echo_json(names)
        else:
            for name in names:
                typer.echo(name)


def items(
    ctx: typer.Context,
    *,
    consistency: ConsistencyOption = ConsistencyChoice.default,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=0, help="Stop after this many items.")
    ] = None,
) -> None:
    """Stream every key and value (the original's getkeysvalues).

    Text: one "KEY<TAB>VALUE" line per item, the value as text when it is
    printable UTF-8, else as "base64:...". --json: one JSON object per line
    (NDJSON) with "key", "value" and "encoding" (utf-8 or base64).
    """
    settings: Settings = ctx.obj
    with (
        errors_to_exit_codes(),
        settings.open() as kv,
        kv.items(consistency=consistency.value) as stream,
    ):
        for count, (key, value) in enumerate(stream):
            if limit is not None and count >= limit:
                break
            if settings.json:
                _echo_json({"key": key, **_value_json(value)})
            else:
                typer.echo(f"{key}\t{_printable(value)}")


def _printable(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (text.isprintable() or text == "") and not text.startswith("base64:"):
        return text
    return "base64:" + base64.b64encode(value).decode("ascii")


@app.command()
def servers(ctx: typer.Context) -> None:
    """Show the cluster's nodes and which one leads."""
    nodes = _run(ctx, lambda kv: kv.servers())
    if ctx.obj.json:
        _echo_json(
            [
                {
                    "id": n.id,
                    "rpc_addr": n.rpc_addr,
                    "http_addr": n.http_addr,
                    "is_leader": n.is_leader,
                }
                for n in nodes
            ]
        )
        return
    rows = [("ID", "GRPC", "HTTP", "ROLE")] + [
        (n.id, n.rpc_addr, n.http_addr, "leader" if n.is_leader else "follower") for n in nodes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


# The readable names and the original's, both listed in --help.
app.command("keys")(keys)
app.command("getkeys", help="Alias of `keys` (the original's name).")(keys)
app.command("items")(items)
app.command("getkeysvalues", help="Alias of `items` (the original's name).")(items)


app.command("bench")(bench)


def main() -> None:
    """The ``lrukv`` console script."""
    app(prog_name="lrukv")


if __name__ == "__main__":
    main()
