"""Client certificates with chosen CNs, signed by the throw-away CA of
tests/client/certs.py (made with ``lrukv certs``, as a user makes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.client.certs import SERVER_NAME, Pki, make_pki
from tests.tls_pki import lrukv_certs

__all__ = ["SERVER_NAME", "ClientCert", "Pki", "make_client_cert", "make_pki"]


@dataclass(frozen=True)
class ClientCert:
    cn: str
    cert: Path
    key: Path


def make_client_cert(pki: Pki, cn: str) -> ClientCert:
    """A clientAuth certificate for *cn*, signed by ``pki.ca``, beside the CA's files."""
    directory = pki.ca.parent
    stem = f"client-{cn}"
    lrukv_certs("issue", "client", cn, "--out", str(directory), "--name", stem)
    return ClientCert(cn=cn, cert=directory / f"{stem}.pem", key=directory / f"{stem}-key.pem")
