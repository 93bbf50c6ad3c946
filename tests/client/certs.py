"""A throw-away CA with a server and a client certificate, made with ``lrukv certs``
(the real CLI) as a user makes them; the server certificate names only
``lrukv.test``, so clients dialling 127.0.0.1 need ``server_name``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.tls_pki import lrukv_certs

SERVER_NAME = "lrukv.test"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must fail


def make_pki(directory: Path) -> Pki:
    """Create the files under ``directory``."""
    ours, other = directory / "ca", directory / "other-ca"
    lrukv_certs("init", "--out", str(ours), "--dns", SERVER_NAME)
    lrukv_certs("issue", "client", "client", "--out", str(ours))
    lrukv_certs("init", "--out", str(other))
    return Pki(
        ca=ours / "ca.pem",
        server_cert=ours / "server.pem",
        server_key=ours / "server-key.pem",
        client_cert=ours / "client.pem",
        client_key=ours / "client-key.pem",
        other_ca=other / "ca.pem",
    )
