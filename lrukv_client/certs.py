"""Certificates for lrukv's TLS: a CA, a server certificate per node, and client
certificates whose subject CN names a role. What ``lrukv certs`` runs.

    from lrukv_client import certs

    certs.init("tls")                     # ca.pem, ca-key.pem, server.pem, server-key.pem
    certs.issue_server("tls", "node-2", dns=["node-2.internal"], ips=["10.0.0.2"])
    certs.issue_client("tls", "admin")    # tls/admin.pem, tls/admin-key.pem

Files: ``<name>.pem`` (the certificate, mode 0644) and ``<name>-key.pem`` (its
unencrypted PKCS#8 key, mode 0600) in a directory of mode 0700; the CA is
``ca.pem`` / ``ca-key.pem``. Nothing is overwritten unless ``force=True``. Keys
are ECDSA P-256 (small, and fast to sign a handshake with). A server
certificate names its node in the CN and lists its DNS names and IP addresses
as subject alternative names (``localhost`` and ``127.0.0.1`` by default), with
the serverAuth purpose; a client certificate has the role as CN and the
clientAuth purpose, which the server checks (a server certificate is not
accepted as a client's).

Keep ``ca-key.pem`` off the nodes if you can: it is needed only to issue.
Needs the ``cryptography`` package (the ``cli`` extra).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lrukv_client.errors import InvalidArgument

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_DAYS",
    "DEFAULT_DNS",
    "DEFAULT_IPS",
    "CertificateAuthority",
    "Issued",
    "IssuedFiles",
    "InitFiles",
    "Validity",
    "init",
    "issue_client",
    "issue_server",
]

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
DEFAULT_DAYS = 825  # leaf certificates; the CA gets ten years
CA_DAYS = 3650
DEFAULT_DNS = ("localhost",)
DEFAULT_IPS = ("127.0.0.1",)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Validity:
    """When a certificate is valid. ``Validity.days(n)`` starts five minutes ago
    (for clocks a little behind); explicit bounds can lie in the past, which
    makes an expired certificate (for tests of refusals)."""

    not_before: datetime.datetime
    not_after: datetime.datetime

    def __post_init__(self) -> None:
        if self.not_after <= self.not_before:
            raise InvalidArgument("a certificate's not_after must be later than its not_before")

    @classmethod
    def days(cls, days: int) -> Validity:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidArgument(f"days must be a whole number of at least 1, not {days!r}")
        now = datetime.datetime.now(datetime.UTC)
        return cls(now - _CLOCK_SKEW, now + datetime.timedelta(days=days))


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM bytes."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class IssuedFiles:
    """Where a certificate and its key were written."""

    cert: Path
    key: Path


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lrukv"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _parse_ips(ips: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for text in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text.strip())))
        except ValueError:
            raise InvalidArgument(f"{text!r} is not an IP address") from None
    return names


def _parse_dns(dns: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for text in dns:
        name = text.strip()
        if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", name):
            raise InvalidArgument(f"{text!r} is not a DNS name")
        names.append(x509.DNSName(name))
    return names


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only (ECDSA keys encipher nothing); a CA also signs certificates."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


class CertificateAuthority:
    """A CA certificate and its key: what signs the server and client certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(
        cls, common_name: str = "lrukv CA", validity: Validity | None = None
    ) -> CertificateAuthority:
        """A new self-signed CA (ten years by default) that may sign leaf certificates only."""
        validity = validity or Validity.days(CA_DAYS)
        key = _new_key()
        name = _subject(common_name)
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, directory: str | Path) -> CertificateAuthority:
        """The CA in *directory* (``ca.pem`` and ``ca-key.pem``); InvalidArgument
        naming the file if it is missing or not a CA."""
        folder = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), None)
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read the CA in {folder} ({exc.filename}: {exc.strerror}); "
                "make one with `lrukv certs init`"
            ) from None
        except ValueError as exc:
            raise InvalidArgument(f"the CA in {folder} is not PEM: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidArgument(f"{folder / CA_KEY} is not an ECDSA key made by lrukv")
        return cls(cert, key)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def _leaf(
        self,
        common_name: str,
        purpose: x509.ObjectIdentifier,
        validity: Validity,
        alt_names: Sequence[x509.GeneralName] = (),
    ) -> Issued:
        key = _new_key()
        public = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_subject(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if alt_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(alt_names)), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_server(
        self,
        name: str,
        *,
        dns: Iterable[str] = DEFAULT_DNS,
        ips: Iterable[str] = DEFAULT_IPS,
        validity: Validity | None = None,
    ) -> Issued:
        """A server certificate for node *name* (the CN), valid for the DNS names
        and IP addresses given (a client checks the one it dialled)."""
        _check_name("server name", name)
        alt_names = [*_parse_dns(dns), *_parse_ips(ips)]
        if not alt_names:
            raise InvalidArgument("a server certificate needs at least one DNS name or IP address")
        return self._leaf(
            name,
            ExtendedKeyUsageOID.SERVER_AUTH,
            validity or Validity.days(DEFAULT_DAYS),
            alt_names,
        )

    def issue_client(self, common_name: str, *, validity: Validity | None = None) -> Issued:
        """A client certificate whose CN is *common_name*: the role (or subject)
        the server's authorization sees."""
        _check_name("client name", common_name)
        return self._leaf(
            common_name, ExtendedKeyUsageOID.CLIENT_AUTH, validity or Validity.days(DEFAULT_DAYS)
        )


# ------------------------------------------------------------------- files


def _private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a directory the user gave may not be ours
        directory.chmod(0o700)


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write *data* to *path* created with *mode* (never briefly readable by others)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if force:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; never added any
        os.write(fd, data)
    finally:
        os.close(fd)


def _refuse_existing(paths: Iterable[Path], force: bool) -> None:
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise InvalidArgument(
            f"{', '.join(existing)} already exists; nothing was written (--force replaces)"
        )


def _save(directory: Path, stem: str, issued: Issued, force: bool) -> IssuedFiles:
    files = IssuedFiles(directory / f"{stem}.pem", directory / f"{stem}-key.pem")
    _refuse_existing((files.cert, files.key), force)
    _write(files.key, issued.key_pem, 0o600, force)
    _write(files.cert, issued.cert_pem, 0o644, force)
    return files


@dataclass(frozen=True)
class InitFiles:
    """What :func:`init` wrote."""

    ca: IssuedFiles
    server: IssuedFiles


def init(
    directory: str | Path,
    *,
    server_name: str = "server",
    dns: Iterable[str] = DEFAULT_DNS,
    ips: Iterable[str] = DEFAULT_IPS,
    days: int = DEFAULT_DAYS,
    force: bool = False,
) -> InitFiles:
    """Make a new CA in *directory* and a server certificate signed by it
    (``<server_name>.pem``); refuse if any of these files exist, unless *force*."""
    folder = Path(directory)
    _check_name("server name", server_name)
    stems = (CA_CERT, CA_KEY, f"{server_name}.pem", f"{server_name}-key.pem")
    _refuse_existing((folder / name for name in stems), force)
    authority = CertificateAuthority.create()
    server = authority.issue_server(server_name, dns=dns, ips=ips, validity=Validity.days(days))
    _private_dir(folder)
    _write(folder / CA_KEY, authority.key_pem(), 0o600, force)
    _write(folder / CA_CERT, authority.cert_pem(), 0o644, force)
    return InitFiles(
        IssuedFiles(folder / CA_CERT, folder / CA_KEY), _save(folder, server_name, server, force)
    )


def issue_server(
    directory: str | Path,
    name: str,
    *,
    dns: Iterable[str] = DEFAULT_DNS,
    ips: Iterable[str] = DEFAULT_IPS,
    days: int = DEFAULT_DAYS,
    validity: Validity | None = None,
    force: bool = False,
) -> IssuedFiles:
    """Sign a server certificate for node *name* with the CA in *directory* and
    write ``<name>.pem`` / ``<name>-key.pem`` there. *validity*, if given, wins over *days*."""
    folder = Path(directory)
    authority = CertificateAuthority.load(folder)
    issued = authority.issue_server(
        name, dns=dns, ips=ips, validity=validity or Validity.days(days)
    )
    _private_dir(folder)
    return _save(folder, name, issued, force)


def issue_client(
    directory: str | Path,
    common_name: str,
    *,
    name: str | None = None,
    days: int = DEFAULT_DAYS,
    validity: Validity | None = None,
    force: bool = False,
) -> IssuedFiles:
    """Sign a client certificate with CN *common_name* (a role) with the CA in
    *directory* and write ``<name>.pem`` / ``<name>-key.pem`` there (*name*
    defaults to the CN; give one for a second certificate of the same role)."""
    folder = Path(directory)
    stem = _check_name("file name", name) if name is not None else common_name
    authority = CertificateAuthority.load(folder)
    issued = authority.issue_client(common_name, validity=validity or Validity.days(days))
    _private_dir(folder)
    return _save(folder, stem, issued, force)
