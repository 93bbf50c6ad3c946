"""Certificates for TLS tests, made the way a user makes them: with ``lrukv certs``
(the real CLI, through Typer's runner) in a temporary directory.

    pki = make_pki(tmp_path)     # ca, server (localhost + 127.0.0.1), client "admin",
                                 # a foreign CA's client, an expired client
    start_server(tmp_path, *pki.server_args("require"))

The expired certificate is the one thing the CLI cannot make (its ``--days``
starts now): it is signed by the same CA through the SDK's explicit validity.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from lrukv_client import TLSConfig
from lrukv_client.certs import Validity, issue_client
from lrukv_client.cli import app

__all__ = ["CLIENT_CN", "Pki", "lrukv_certs", "make_pki", "tls_server_args"]

CLIENT_CN = "admin"


def lrukv_certs(*args: str) -> str:
    """Run ``lrukv certs ARGS``; return its output; fail the test if it failed."""
    result = CliRunner().invoke(app, ["certs", *args])
    assert result.exit_code == 0, result.output
    return result.output


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path  # CN "admin", signed by the CA
    client_key: Path
    foreign_cert: Path  # CN "admin", signed by another CA
    foreign_key: Path
    foreign_ca: Path
    expired_cert: Path  # CN "admin", signed by the CA, expired yesterday
    expired_key: Path

    def server_args(self, client_auth: str = "require") -> list[str]:
        """``lrukv-server`` flags for TLS with this server certificate."""
        args = ["--tls-cert", str(self.server_cert), "--tls-key", str(self.server_key)]
        if client_auth != "none":
            args += ["--tls-ca", str(self.ca)]
        return [*args, "--tls-client-auth", client_auth]

    def client_tls(self, *, cert: str = "client") -> TLSConfig:
        """The SDK's TLS settings trusting the CA, presenting *cert*: ``client``,
        ``foreign``, ``expired`` or ``none``."""
        if cert == "none":
            return TLSConfig(ca_file=self.ca)
        pair = {
            "client": (self.client_cert, self.client_key),
            "foreign": (self.foreign_cert, self.foreign_key),
            "expired": (self.expired_cert, self.expired_key),
        }[cert]
        return TLSConfig(ca_file=self.ca, cert_file=pair[0], key_file=pair[1])

    def ssl_context(self, *, cert: str = "client") -> ssl.SSLContext:
        """A stdlib client context like :meth:`client_tls` (for raw sockets)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert != "none":
            tls = self.client_tls(cert=cert)
            assert tls.cert_file is not None and tls.key_file is not None
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        return context

    def curl_args(self, *, cert: str = "client") -> list[str]:
        """curl's options for the same."""
        args = ["--cacert", str(self.ca)]
        if cert != "none":
            tls = self.client_tls(cert=cert)
            args += ["--cert", str(tls.cert_file), "--key", str(tls.key_file)]
        return args


def make_pki(directory: Path) -> Pki:
    """Make every file under *directory* (``lrukv certs init`` and ``issue``)."""
    ours = directory / "pki"
    foreign = directory / "foreign-pki"
    lrukv_certs("init", "--out", str(ours))
    lrukv_certs("issue", "client", CLIENT_CN, "--out", str(ours))
    lrukv_certs("init", "--out", str(foreign))
    lrukv_certs("issue", "client", CLIENT_CN, "--out", str(foreign))
    now = datetime.datetime.now(datetime.UTC)
    files = issue_client(
        ours,
        CLIENT_CN,
        name="expired",
        validity=Validity(now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)),
    )
    return Pki(
        directory=ours,
        ca=ours / "ca.pem",
        server_cert=ours / "server.pem",
        server_key=ours / "server-key.pem",
        client_cert=ours / f"{CLIENT_CN}.pem",
        client_key=ours / f"{CLIENT_CN}-key.pem",
        foreign_cert=foreign / f"{CLIENT_CN}.pem",
        foreign_key=foreign / f"{CLIENT_CN}-key.pem",
        foreign_ca=foreign / "ca.pem",
        expired_cert=files.cert,
        expired_key=files.key,
    )


def tls_server_args(directory: Path) -> list[str]:
    """Flags for a server with TLS and no client certificates (``lrukv certs init``
    in *directory*): what the hostile suites run against as their https variant."""
    pki = directory / "server-pki"
    lrukv_certs("init", "--out", str(pki))
    return [
        "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server-key.pem"),
        "--tls-client-auth", "none",
    ]  # fmt: skip
