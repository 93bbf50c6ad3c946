"""``lrukv certs``: the files a user gets, their modes, what the certificates say,
and the refusals (overwriting, bad names) that leave everything as it was."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from lrukv_client.cli import app


def certs(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["certs", *args])
    return result.exit_code, result.output


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_a_ca_and_a_server_certificate_with_the_default_names(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    code, output = certs("init", "--out", str(out))
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [
        "ca-key.pem", "ca.pem", "server-key.pem", "server.pem",
    ]  # fmt: skip
    assert mode(out) == 0o700
    assert mode(out / "ca-key.pem") == mode(out / "server-key.pem") == 0o600
    assert mode(out / "server.pem") == 0o644
    ca, server = load(out / "ca.pem"), load(out / "server.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    purposes = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(purposes) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_issue_server_and_client(tmp_path: Path) -> None:
    out = str(tmp_path)
    assert certs("init", "--out", out)[0] == 0
    code, output = certs(
        "issue", "server", "node-2", "--out", out, "--dns", "node-2.internal",
        "--dns", "node-2", "--ip", "10.0.0.2", "--ip", "::1", "--days", "30",
    )  # fmt: skip
    assert code == 0, output
    node = load(tmp_path / "node-2.pem")
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node-2.internal", "node-2"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.2", "::1"]
    lifetime = node.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29) < lifetime <= datetime.timedelta(days=30)
    code, output = certs("issue", "client", "reader", "--out", out)
    assert code == 0, output
    client = load(tmp_path / "reader.pem")
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "reader"
    purposes = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(purposes) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert mode(tmp_path / "reader-key.pem") == 0o600
    client.verify_directly_issued_by(load(tmp_path / "ca.pem"))


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    out = str(tmp_path)
    assert certs("init", "--out", out)[0] == 0
    assert certs("issue", "client", "admin", "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, output = certs("init", "--out", out)
    assert code == 2 and "already exists" in output and "--force" in output
    code, output = certs("issue", "client", "admin", "--out", out)
    assert code == 2 and "already exists" in output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert certs("issue", "client", "admin", "--out", out, "--force")[0] == 0
    assert (tmp_path / "admin.pem").read_bytes() != before["admin.pem"]
    assert mode(tmp_path / "admin-key.pem") == 0o600


def test_bad_input_is_a_usage_error_that_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    assert certs("init", "--out", str(out), "--ip", "not-an-ip")[0] == 2
    assert not out.exists()
    assert certs("issue", "client", "admin", "--out", str(out))[0] == 2  # no CA there
    assert certs("init", "--out", str(out))[0] == 0
    assert certs("issue", "client", "../escape", "--out", str(out))[0] == 2
    assert certs("issue", "server", "n", "--out", str(out), "--days", "0")[0] == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "ca-key.pem", "ca.pem", "server-key.pem", "server.pem",
    ]  # fmt: skip
