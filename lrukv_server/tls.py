"""TLS for the node's two APIs, from its :class:`~lrukv_server.config.TlsConfig`.

* :func:`server_tls`: the :class:`~lrukv_server.transport.ServerTls` the Agent
  hands to both servers (gRPC's ``ssl_server_credentials`` come from it).
* :func:`gunicorn_ssl_settings`: gunicorn's ``certfile``, ``keyfile``,
  ``ca_certs`` and ``cert_reqs``; the HTTP worker builds its one SSL context
  from them (http_worker does the handshakes without blocking a thread).
* :func:`peer_common_name`: the subject CN of a verified client certificate,
  which the worker puts in the WSGI environ as :data:`PEER_CN_ENVIRON` (the
  contract authorization relies on: present only when a certificate was
  presented and verified against ``--tls-ca``).
* :func:`plaintext_warning`: the start-up line for a node that listens in plain
  text on an address other hosts can reach.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

from lrukv_server.config import ClientAuth, ServerConfig, TlsConfig
from lrukv_server.transport import ServerTls

__all__ = [
    "PEER_CN_ENVIRON",
    "gunicorn_ssl_settings",
    "is_loopback",
    "peer_common_name",
    "plaintext_warning",
    "server_tls",
]

PEER_CN_ENVIRON = "lrukv.tls.peer_cn"
"""WSGI environ key: the verified client certificate's subject CN (str); absent
when the client presented no certificate (or TLS is off)."""

_CERT_REQS = {
    ClientAuth.NONE: ssl.CERT_NONE,
    ClientAuth.OPTIONAL: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRE: ssl.CERT_REQUIRED,
}


def server_tls(tls: TlsConfig) -> ServerTls | None:
    """The transport's TLS settings, or None when TLS is off."""
    if not tls.enabled:
        return None
    return ServerTls(
        cert_file=tls.cert,
        key_file=tls.key,
        client_ca_file=tls.ca or None,
        require_client_auth=tls.effective_client_auth is ClientAuth.REQUIRE,
    )


def gunicorn_ssl_settings(tls: TlsConfig) -> dict[str, Any]:
    """gunicorn settings for HTTPS (empty when TLS is off). The handshake is not
    done on accept: the worker drives it without blocking (http_worker)."""
    if not tls.enabled:
        return {}
    return {
        "certfile": tls.cert,
        "keyfile": tls.key,
        "ca_certs": tls.ca or None,
        "cert_reqs": _CERT_REQS[tls.effective_client_auth],
        "do_handshake_on_connect": False,
    }


def peer_common_name(sock: ssl.SSLSocket) -> str | None:
    """The subject CN of the client certificate *sock*'s handshake verified, or
    None. (``getpeercert()`` is empty when none was presented, and with
    ``CERT_NONE`` the server never asks, so an unverified one never counts.)"""
    try:
        cert = sock.getpeercert()
    except (ValueError, OSError):  # not connected, or no handshake done
        return None
    if not cert:
        return None
    subject: Any = cert.get("subject", ())
    for rdn in subject:  # ((("commonName", "admin"),), ...)
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def is_loopback(host: str) -> bool:
    """Whether *host* is reachable from this machine only.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3")]
    [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def plaintext_warning(config: ServerConfig) -> str | None:
    """The warning line for a node serving plain text on a non-loopback address."""
    if config.tls.enabled or is_loopback(config.host):
        return None
    return (
        f"lrukv-server: warning: HTTP and gRPC listen in plain text on {config.host}, "
        "which other hosts can reach: anyone on the network can read and change the data; "
        "give --tls-cert and --tls-key (see docs/security.md)"
    )
