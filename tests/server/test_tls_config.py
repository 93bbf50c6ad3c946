"""The TLS settings: flags, ``LRUKV_TLS_*`` and TOML reach one TlsConfig; what
cannot work is refused at start with one line naming the setting; and a node
that serves plain text where other hosts can reach it says so at start."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

import pytest

from lrukv_server.config import ClientAuth, ConfigError, load_config
from lrukv_server.tls import gunicorn_ssl_settings, plaintext_warning, server_tls
from tests.conftest import StartServer
from tests.tls_pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls-config"))


def test_tls_is_off_by_default() -> None:
    config = load_config([], env={})
    assert not config.tls.enabled
    assert server_tls(config.tls) is None and gunicorn_ssl_settings(config.tls) == {}


def test_flags_environment_and_file_reach_the_tls_config(pki: Pki, tmp_path: Path) -> None:
    flags = load_config(pki.server_args("require"), env={})
    assert flags.tls.cert == str(pki.server_cert)
    assert flags.tls.effective_client_auth is ClientAuth.REQUIRE
    env = {
        "LRUKV_TLS_CERT": str(pki.server_cert),
        "LRUKV_TLS_KEY": str(pki.server_key),
        "LRUKV_TLS_CA": str(pki.ca),
        "LRUKV_TLS_CLIENT_AUTH": "optional",
    }
    assert load_config([], env=env).tls.effective_client_auth is ClientAuth.OPTIONAL
    toml = tmp_path / "lrukv.toml"
    toml.write_text(
        f'[tls]\ncert = "{pki.server_cert}"\nkey = "{pki.server_key}"\nca = "{pki.ca}"\n'
    )
    from_file = load_config(["--config", str(toml)], env={})
    # --tls-ca alone means mutual TLS: a CA for client certificates is there to be used.
    assert from_file.tls.effective_client_auth is ClientAuth.REQUIRE
    tls = server_tls(from_file.tls)
    assert tls is not None and tls.require_client_auth and tls.client_ca_file == str(pki.ca)
    settings = gunicorn_ssl_settings(from_file.tls)
    assert settings["ca_certs"] == str(pki.ca) and settings["cert_reqs"] == 2  # CERT_REQUIRED


def _refused(args: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(args, env={})


def test_what_cannot_work_is_refused_naming_the_setting(pki: Pki, tmp_path: Path) -> None:
    cert, key, ca = str(pki.server_cert), str(pki.server_key), str(pki.ca)
    _refused(["--tls-cert", cert], "--tls-cert and --tls-key go together")
    _refused(["--tls-key", key], "go together")
    _refused(["--tls-ca", ca], "need --tls-cert and --tls-key")
    _refused(
        ["--tls-cert", cert, "--tls-key", key, "--tls-client-auth", "require"], "needs --tls-ca"
    )
    _refused(["--tls-cert", str(tmp_path / "none.pem"), "--tls-key", key], "cannot read it")
    _refused(["--tls-cert", cert, "--tls-key", str(pki.client_key)], "is not the key of")
    _refused(["--tls-cert", str(pki.server_key), "--tls-key", key], "not a PEM certificate")
    _refused(["--tls-cert", cert, "--tls-key", key, "--tls-ca", key], "not a PEM CA")
    with pytest.raises(SystemExit):  # argparse: a bad choice is a usage error (exit 2)
        load_config(["--tls-client-auth", "sometimes"], env={})


def test_plain_text_on_a_reachable_host_gets_a_warning(pki: Pki) -> None:
    assert plaintext_warning(load_config([], env={})) is None  # 127.0.0.1
    assert plaintext_warning(load_config(["--host", "::1"], env={})) is None
    warning = plaintext_warning(load_config(["--host", "0.0.0.0"], env={}))
    assert warning is not None and "plain text on 0.0.0.0" in warning
    with_tls = load_config(["--host", "0.0.0.0", *pki.server_args("none")], env={})
    assert plaintext_warning(with_tls) is None


def _non_loopback_address() -> str:
    """An IPv4 address of one of this machine's interfaces other than loopback
    (Linux: SIOCGIFADDR), else 0.0.0.0 (every interface). The server only binds
    it: the test never sends a byte to it, nor anywhere but loopback."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                request = struct.pack("256s", name.encode()[:15])
                packed = fcntl.ioctl(probe.fileno(), 0x8915, request)[20:24]  # SIOCGIFADDR
            except OSError:
                continue  # no IPv4 address on it
        address = socket.inet_ntoa(packed)
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return "0.0.0.0"


def test_a_real_server_warns_once_at_start_when_plain_text_is_reachable(
    lrukv_server_factory: StartServer, pki: Pki
) -> None:
    host = _non_loopback_address()
    plain = lrukv_server_factory("--host", host)
    assert plain.stderr().count("warning: HTTP and gRPC listen in plain text") == 1
    with_tls = lrukv_server_factory("--host", host, *pki.server_args("none"))
    assert "plain text" not in with_tls.stderr()
    loopback = lrukv_server_factory()
    assert "plain text" not in loopback.stderr()
