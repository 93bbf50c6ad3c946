"""``lrukv certs``: make the CA, server and client certificates for TLS.

    lrukv certs init --out DIR [--dns NAME]... [--ip ADDR]... [--name server]
    lrukv certs issue server NAME --out DIR [--dns NAME]... [--ip ADDR]...
    lrukv certs issue client ROLE --out DIR

Keys are written with mode 0600 in a directory of mode 0700; nothing is
overwritten without ``--force``. See lrukv_client.certs and docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from lrukv_client import InvalidArgument
from lrukv_client.certs import (
    DEFAULT_DAYS,
    DEFAULT_DNS,
    DEFAULT_IPS,
    IssuedFiles,
    init,
    issue_client,
    issue_server,
)
from lrukv_client.cli.common import EXIT_USAGE, fail

__all__ = ["certs_app"]

T = TypeVar("T")

certs_app = typer.Typer(
    help="Make the TLS certificates: a CA, a certificate per server, client certificates "
    "whose CN names a role.",
    no_args_is_help=True,
)
issue_app = typer.Typer(help="Sign a server or client certificate with the CA in --out.")
certs_app.add_typer(issue_app, name="issue", no_args_is_help=True)

OutOption = Annotated[
    Path,
    typer.Option("--out", "-o", help="The directory of the CA (and of the files written)."),
]
DaysOption = Annotated[int, typer.Option("--days", min=1, help="Days the certificate is valid.")]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace files that exist (default: refuse).")
]
DnsOption = Annotated[
    list[str] | None,
    typer.Option("--dns", help="A DNS name of the server (repeatable; default: localhost)."),
]
IpOption = Annotated[
    list[str] | None,
    typer.Option("--ip", help="An IP address of the server (repeatable; default: 127.0.0.1)."),
]


@contextmanager
def _usage_errors() -> Iterator[None]:
    try:
        yield
    except InvalidArgument as exc:
        fail(EXIT_USAGE, exc.message)
    except OSError as exc:
        fail(EXIT_USAGE, f"cannot write {exc.filename}: {exc.strerror}")


def _names(dns: list[str] | None, ips: list[str] | None) -> tuple[list[str], list[str]]:
    """The SANs: both defaults when neither option is given, else exactly what was given."""
    if not dns and not ips:
        return list(DEFAULT_DNS), list(DEFAULT_IPS)
    return list(dns or []), list(ips or [])


def _report(*files: IssuedFiles) -> None:
    for pair in files:
        typer.echo(f"wrote {pair.cert}")
        typer.echo(f"wrote {pair.key} (private key, mode 0600)")


def _run(action: Callable[[], T]) -> T:
    with _usage_errors():
        return action()


@certs_app.command("init")
def init_command(
    *,
    out: OutOption,
    dns: DnsOption = None,
    ip: IpOption = None,
    name: Annotated[
        str, typer.Option("--name", help="File name (and CN) of the server certificate.")
    ] = "server",
    days: DaysOption = DEFAULT_DAYS,
    force: ForceOption = False,
) -> None:
    """Make a new CA (ca.pem, ca-key.pem) and a server certificate signed by it."""
    dns_names, addresses = _names(dns, ip)
    made = _run(
        lambda: init(out, server_name=name, dns=dns_names, ips=addresses, days=days, force=force)
    )
    _report(made.ca, made.server)
    typer.echo(f"SANs of {name}: {', '.join([*dns_names, *addresses])}")


@issue_app.command("server")
def issue_server_command(
    *,
    name: Annotated[str, typer.Argument(help="The node's name: the CN and the file name.")],
    out: OutOption,
    dns: DnsOption = None,
    ip: IpOption = None,
    days: DaysOption = DEFAULT_DAYS,
    force: ForceOption = False,
) -> None:
    """A server certificate for one node, with its DNS names and IPs as SANs."""
    dns_names, addresses = _names(dns, ip)
    _report(
        _run(lambda: issue_server(out, name, dns=dns_names, ips=addresses, days=days, force=force))
    )


@issue_app.command("client")
def issue_client_command(
    *,
    common_name: Annotated[
        str, typer.Argument(metavar="CN", help="The role (or subject): the CN and the file name.")
    ],
    out: OutOption,
    name: Annotated[str | None, typer.Option("--name", help="File name, if not the CN.")] = None,
    days: DaysOption = DEFAULT_DAYS,
    force: ForceOption = False,
) -> None:
    """A client certificate whose CN names a role, for mutual TLS."""
    _report(_run(lambda: issue_client(out, common_name, name=name, days=days, force=force)))
