"""``lrukv``: the command line of lrukv (Typer), over the public SDK only.

    lrukv put KEY VALUE          (VALUE "-" reads stdin; or --file PATH)
    lrukv get KEY                (the raw value on stdout, binary-safe)
    lrukv delete KEY
    lrukv exists KEY             (exit 1 if absent)
    lrukv ttl KEY                (seconds left, or "none")
    lrukv keys | getkeys
    lrukv items | getkeysvalues
    lrukv stats                  (size, capacity, limits, hits, misses, evictions)
    lrukv servers
    lrukv mget K1 K2...          (KEY<TAB>VALUE lines; exit 1 if any is absent)
    lrukv mput K1=V1 K2=V2...    (or KEY=VALUE lines on stdin)
    lrukv export FILE            (every item as NDJSON, exact bytes; '-' is stdout)
    lrukv import FILE            (an export back; refused lines named, exit 2)
    lrukv bench ...              (the load generator; see docs/cli.md)

Exit codes, for scripts:

====  ==========================================================================
0     success
1     the key was not found (``get``, ``ttl``, ``exists``, any key of ``mget``;
      ``delete --must-exist``)
2     usage: a bad option, argument or server address, or the server refused the
      key, value or TTL (``mput``, ``import``: any item); ``bench``: --output
      cannot be written, or the run would evict the server's keys
3     unavailable or denied: unreachable, no leader, deadline exceeded,
      permission denied, unauthenticated, too many redirects
4     an unexpected answer from the server (an internal error, a garbled reply)
5     ``bench`` only: the correctness check found wrong values
6     ``bench`` only: operations failed (and ``--allow-errors`` was not given)
127   the CLI's dependencies are not installed (``pip install 'lrukv[cli]'``)
130   interrupted (Ctrl-C)
141   stdout was closed early (``lrukv keys | head``)
====  ==========================================================================

Every error is one line on stderr, never a traceback (``LRUKV_DEBUG=1`` shows it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import typer
from typer.core import TyperCommand, TyperOption

from lrukv_client import (
    AnyClient,
    InvalidArgument,
    StoreStats,
    TLSConfig,
    __version__,
    resolve_servers,
)
from lrukv_client.cli.bench import bench
from lrukv_client.cli.bulk import export, import_, mget, mput
from lrukv_client.cli.certs import certs_app
from lrukv_client.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    ConsistencyChoice,
    Settings,
    TransportChoice,
    errors_to_exit_codes,
    fail,
)
from lrukv_client.cli.common import printable as _printable
from lrukv_client.cli.common import value_json as _value_json

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="lrukv",
    help="Talk to an lrukv server: put, get, delete, list, and load-test it.",
    no_args_is_help=False,  # bare `lrukv` prints the help and succeeds (see _global_options)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrukv {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _global_options(
    ctx: typer.Context,
    *,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            "-s",
            envvar="LRUKV_SERVER",
            help="host[:port] of a node, or a comma-separated list of seeds; an http:// or "
            "https:// URL selects HTTP. Without a port: 50051 (gRPC), 8080 (HTTP). "
            "Default: 127.0.0.1:50051 (gRPC), 127.0.0.1:8080 (HTTP).",
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
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="LRUKV_TOKEN",
            help="Bearer token for a server with --auth-policy (prefer LRUKV_TOKEN: a flag "
            "shows in the process list). Ignored by the server with a client certificate.",
        ),
    ] = None,
) -> None:
    if ctx.invoked_subcommand is None:
        # Bare `lrukv`: asking what the command does is not an error.
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    try:
        # Checked here, before any command dials: a bad address is a usage error.
        chosen, seeds = resolve_servers(server, transport.value if transport else None)
    except InvalidArgument as exc:
        fail(EXIT_USAGE, exc.message)
    tls_config = None
    if tls or tls_ca or tls_cert or tls_key or tls_server_name:
        if (tls_cert is None) != (tls_key is None):
            raise typer.BadParameter("--tls-cert and --tls-key go together")
        tls_config = TLSConfig(
            ca_file=tls_ca, cert_file=tls_cert, key_file=tls_key, server_name=tls_server_name
        )
    ctx.obj = Settings(
        server=",".join(seeds),
        transport=chosen.value,
        json=json_output,
        timeout=timeout,
        tls=tls_config,
        token=token or None,
    )


def _run(ctx: typer.Context, action: Callable[[AnyClient], T]) -> T:
    settings: Settings = ctx.obj
    with errors_to_exit_codes(), settings.open() as client:
        return action(client)


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


# -- the commands ------------------------------------------------------------------------

ConsistencyOption = Annotated[
    ConsistencyChoice,
    typer.Option("--consistency", "-c", help="stale (any node), default (leader), linearizable."),
]


_NEGATIVE_NUMBER = re.compile(r"-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _numbers_as_arguments(command: TyperCommand, args: Sequence[str]) -> list[str]:
    """Move the options first and the arguments after ``--`` when an argument is
    a negative number, so Click reads ``-5`` as a value, not an unknown option.

    >>> put_command = typer.main.get_command(app).commands["put"]  # type: ignore[attr-defined]
    >>> _numbers_as_arguments(put_command, ["counter", "-5", "--ttl", "9"])
    ['--ttl', '9', '--', 'counter', '-5']
    """
    takes_value = {
        name
        for param in command.params
        if isinstance(param, TyperOption) and not param.is_flag and not param.count
        for name in param.opts
    }
    options: list[str] = []
    arguments: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            arguments.extend(args[index + 1 :])
            break
        if arg.startswith("-") and arg != "-" and not _NEGATIVE_NUMBER.fullmatch(arg):
            options.append(arg)
            if arg in takes_value and index + 1 < len(args):
                index += 1
                options.append(args[index])
        else:
            arguments.append(arg)
        index += 1
    if not any(_NEGATIVE_NUMBER.fullmatch(arg) for arg in arguments):
        return list(args)
    return [*options, "--", *arguments]


class _NumbersAreValues(TyperCommand):
    """`lrukv put counter -5` stores "-5" (Click alone says "No such option: -5").
    Other values that start with '-' go after `--`: `lrukv put k -- -x`."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, _numbers_as_arguments(self, args))


@app.command(cls=_NumbersAreValues)
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
    """Store VALUE under KEY (the original's `put`).

    A negative number is a value (`lrukv put counter -5`); any other value that
    starts with '-' goes after `--` (`lrukv put k -- -x`).
    """
    if value is None and file is None:
        raise typer.BadParameter(
            "nothing to store: give VALUE, '-' to read it from stdin, or --file PATH",
            param_hint="VALUE",
        )
    if value is not None and file is not None:
        raise typer.BadParameter("give the value as an argument or --file, not both")
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


@app.command()
def exists(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="The key.")],
    consistency: ConsistencyOption = ConsistencyChoice.default,
) -> None:
    """Say whether KEY is present: exit 0 if so, 1 if not. Not a use: the key's
    place in the LRU order and the hit/miss counters stay as they were."""
    found = _run(ctx, lambda kv: kv.exists(key, consistency=consistency.value))
    if ctx.obj.json:
        _echo_json({"key": key, "exists": found})
    else:
        typer.echo("exists" if found else "absent")
    if not found:
        raise typer.Exit(EXIT_NOT_FOUND)


@app.command()
def ttl(
    ctx: typer.Context,
    *,
    key: Annotated[str, typer.Argument(help="The key.")],
    consistency: ConsistencyOption = ConsistencyChoice.default,
) -> None:
    """Print the seconds until KEY expires, or "none" if it never does (exit 1
    if absent). Not a use, like `exists`."""
    seconds = _run(ctx, lambda kv: kv.ttl(key, consistency=consistency.value))
    if ctx.obj.json:
        _echo_json({"key": key, "ttl": seconds})
    else:
        typer.echo("none" if seconds is None else f"{seconds:.3f}")


def _stats_json(stats: StoreStats) -> dict[str, Any]:
    return {
        "size": stats.size,
        "capacity": stats.capacity,
        "shards": stats.shards,
        "items_per_shard": stats.items_per_shard,
        "bytes": stats.bytes,
        "max_bytes": stats.max_bytes,
        "max_key_bytes": stats.max_key_bytes,
        "max_value_bytes": stats.max_value_bytes,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_ratio": round(stats.hit_ratio, 4),
        "evictions": stats.evictions,
    }


def _limit(value: int | None, unit: str) -> str:
    return "none" if value is None else f"{value:,} {unit}"


@app.command()
def stats(ctx: typer.Context) -> None:
    """Show the node's size against its capacity, its limits, and its counters."""
    numbers = _run(ctx, lambda kv: kv.stats())
    if ctx.obj.json:
        _echo_json(_stats_json(numbers))
        return
    full = numbers.size / numbers.capacity * 100 if numbers.capacity else 0.0
    evictions = ", ".join(f"{cause} {count:,}" for cause, count in numbers.evictions.items())
    rows = [
        ("size", f"{numbers.size:,} of {numbers.capacity:,} items ({full:.1f}% full)"),
        ("shards", f"{numbers.shards:,} x {numbers.items_per_shard:,} items"),
        ("bytes", f"{numbers.bytes:,} (limit: {_limit(numbers.max_bytes, 'bytes')})"),
        ("max key", _limit(numbers.max_key_bytes, "bytes")),
        ("max value", _limit(numbers.max_value_bytes, "bytes")),
        ("hits", f"{numbers.hits:,}"),
        ("misses", f"{numbers.misses:,} (hit ratio {numbers.hit_ratio:.1%})"),
        ("evictions", evictions or "none"),
    ]
    for name, text in rows:
        typer.echo(f"{name:<10} {text}")


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


cluster_app = typer.Typer(help="A Raft cluster: its status, and membership changes.")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("status")
def cluster_status(
    ctx: typer.Context,
    digest: bool = typer.Option(False, "--digest", help="Also show the store's digest."),
) -> None:
    """Show the node's role, term and indexes, the leader, and every member."""
    status = _run(ctx, lambda kv: kv.cluster_status(digest=digest))
    if ctx.obj.json:
        _echo_json(dataclasses.asdict(status))
        return
    leader = status.leader
    lines = [
        ("node", f"{status.node_id} ({status.role}, term {status.term})"),
        ("indexes", f"commit {status.commit_index:,}, applied {status.applied_index:,}"),
        ("leader", "none known" if leader is None else f"{leader.id or '?'} {leader.raft_addr}"),
    ]
    if status.digest:
        lines.append(("digest", status.digest))
    for name, text in lines:
        typer.echo(f"{name:<8} {text}")
    rows = [("ID", "RAFT", "GRPC", "HTTP", "REACHABLE")] + [
        (m.id or "?", m.raft_addr, m.grpc_addr, m.http_addr, "yes" if m.reachable else "no")
        for m in status.members
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@cluster_app.command("add")
def cluster_add(
    ctx: typer.Context,
    raft_addr: str = typer.Argument(..., help="The new member's Raft address, HOST:PORT."),
) -> None:
    """Add a voting member (then start it with --join, or with the members as --peers)."""
    _run(ctx, lambda kv: kv.add_member(raft_addr))
    typer.echo(f"added {raft_addr}")


@cluster_app.command("remove")
def cluster_remove(
    ctx: typer.Context,
    raft_addr: str = typer.Argument(..., help="The member's Raft address, HOST:PORT."),
) -> None:
    """Remove a voting member (the leader cannot remove itself)."""
    _run(ctx, lambda kv: kv.remove_member(raft_addr))
    typer.echo(f"removed {raft_addr}")


# The readable names and the original's, both listed in --help.
app.command("keys")(keys)
app.command("getkeys", help="Alias of `keys` (the original's name).")(keys)
app.command("items")(items)
app.command("getkeysvalues", help="Alias of `items` (the original's name).")(items)


app.command("bench")(bench)
app.add_typer(certs_app, name="certs")

# Many keys per command (lrukv_client.cli.bulk).
app.command("mget")(mget)
app.command("mput")(mput)
app.command("export")(export)
app.command("import")(import_)


def main() -> None:
    """The ``lrukv`` console script."""
    app(prog_name="lrukv")


if __name__ == "__main__":
    main()
