"""Which node a client talks to: its seed list, the current node, and how that
changes on a leader redirect or a failure. Shared by every client; thread-safe.

Addresses are checked before anything is dialled: ``host:port``, ``host``
alone (the transport's default port: 50051 for gRPC, 8080 for HTTP), or
``[v6 address]:port``. A port outside 1-65535 or a host that is no valid name
or address is an ``InvalidArgument`` at once, not a call that retries against
something that can never answer.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Sequence

from lrukv_client.errors import InvalidArgument

__all__ = ["GRPC_TARGET_SCHEMES", "Targets", "normalize_address", "parse_servers"]

# gRPC's own name syntax (unix:/path, dns:///host:port…): passed to gRPC unchanged.
GRPC_TARGET_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:")

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _check_host(host: str, address: str) -> str:
    """Return *host* if it is an IPv4 address or a DNS name; else raise."""
    if not host:
        raise InvalidArgument(f"bad server address {address!r}: no host")
    name = host[:-1] if host.endswith(".") else host
    if len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split(".")):
        return host
    raise InvalidArgument(f"bad server address {address!r}: {host!r} is not a host name or address")


def _check_port(port: str, address: str) -> int:
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidArgument(f"bad server address {address!r}: the port must be 1-65535")
    return int(port)


def normalize_address(address: str, default_port: int) -> str:
    """Check ``host[:port]`` and return it with its port.

    >>> normalize_address("localhost", 50051)
    'localhost:50051'
    >>> normalize_address("[::1]", 8080)
    '[::1]:8080'
    >>> normalize_address("127.0.0.1:99999", 50051)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lrukv_client.errors.InvalidArgument: bad server address ...: the port must be 1-65535
    """
    text = address.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidArgument(f"bad server address {address!r}: no closing ']'")
        try:
            ipaddress.IPv6Address(text[1:end])
        except ValueError:
            raise InvalidArgument(
                f"bad server address {address!r}: {text[1:end]!r} is not an IPv6 address"
            ) from None
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidArgument(f"bad server address {address!r}: expected ':port' after ']'")
        port = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            raise InvalidArgument(
                f"bad server address {address!r}: write an IPv6 address in brackets, "
                "e.g. [::1]:50051"
            )
        host, sep, port_text = text.partition(":")
        host = _check_host(host, address)
        port = port_text if sep else None
    number = default_port if port is None else _check_port(port, address)
    return f"{host}:{number}"


def parse_servers(servers: str | Sequence[str], default_port: int | None = None) -> list[str]:
    """Split ``"a:1,b:2"`` or a sequence into a non-empty list of addresses; with
    ``default_port``, also check each one and give it that port when it has none.

    >>> parse_servers("a:1, b:2")
    ['a:1', 'b:2']
    >>> parse_servers("a, b:2", default_port=50051)
    ['a:50051', 'b:2']
    """
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    seeds = [item.strip() for item in items if item.strip()]
    if not seeds:
        raise InvalidArgument("at least one server address is needed")
    if default_port is not None:
        seeds = [
            seed if seed.startswith(GRPC_TARGET_SCHEMES) else normalize_address(seed, default_port)
            for seed in seeds
        ]
    return seeds


class Targets:
    """The node a client sends to next.

    Starts at the first seed. ``follow(addr)`` moves to a leader a node named
    (it may not be a seed); ``fail_over()`` moves to the seed after the current
    one, or back to the first seed when the current node is a followed leader,
    so a client whose leader died asks the seeds who leads now.

    ``reached`` turns true once any node answered: from then on a refused
    connection is a node restarting or a leader changing, worth waiting for;
    before, it is a wrong address or a server that is not running, and the
    call fails at once (see ``lrukv_client.retry``).
    """

    def __init__(self, seeds: Sequence[str]) -> None:
        self.seeds = list(seeds)
        self._current = self.seeds[0]
        self._lock = threading.Lock()
        self.reached = False

    @property
    def current(self) -> str:
        return self._current

    def has_reached(self) -> bool:
        return self.reached

    def follow(self, address: str) -> None:
        with self._lock:
            self._current = address

    def fail_over(self) -> None:
        with self._lock:
            try:
                index = self.seeds.index(self._current)
            except ValueError:
                self._current = self.seeds[0]
            else:
                self._current = self.seeds[(index + 1) % len(self.seeds)]
