"""Client certificates with chosen CNs, signed by the throw-away CA of
tests/client/certs.py (the openssl command; tests skip without it)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.client.certs import SERVER_NAME, Pki, make_pki

__all__ = ["SERVER_NAME", "ClientCert", "Pki", "make_client_cert", "make_pki"]


@dataclass(frozen=True)
class ClientCert:
    cn: str
    cert: Path
    key: Path


def make_client_cert(pki: Pki, cn: str) -> ClientCert:
    """A clientAuth certificate for *cn*, signed by ``pki.ca``, beside the CA's files."""
    directory = pki.ca.parent
    stem = directory / f"client-{cn}"
    ext = stem.with_suffix(".ext")
    ext.write_text("extendedKeyUsage=clientAuth\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={cn}",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{stem}.csr", "-CA", str(pki.ca),
        "-CAkey", str(directory / "ca.key"), "-CAcreateserial", "-out", f"{stem}.pem",
        "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return ClientCert(cn=cn, cert=Path(f"{stem}.pem"), key=Path(f"{stem}.key"))
