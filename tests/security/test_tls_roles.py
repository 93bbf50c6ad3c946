"""Roles by client certificate on the real server: ``lrukv-server`` with mutual TLS
and ``--auth-policy``, certificates made by ``lrukv certs`` whose CN names the
subject, over HTTPS (SDK and curl) and gRPC (SDK).

This is the end-to-end path of issue 10: the TLS worker puts the verified CN in
the WSGI environ, gRPC reads it from the auth context, and the same policy gives
both transports the same answer. Each refusal is read back unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lrukv_client import Client, HttpClient, PermissionDenied, TLSConfig
from tests.harness import ServerProcess, start_server
from tests.security.policies import CN_ADMIN, CN_NO_ROLE, CN_READER, CN_WRITER, Tokens, write_policy
from tests.tls_pki import Pki, lrukv_certs, make_pki

GUARDED = "guarded"
GUARDED_VALUE = b"written by the admin"


@dataclass(frozen=True)
class Secured:
    server: ServerProcess
    pki: Pki

    def tls(self, cn: str) -> TLSConfig:
        directory = self.pki.directory
        return TLSConfig(
            ca_file=self.pki.ca,
            cert_file=directory / f"{cn}.pem",
            key_file=directory / f"{cn}-key.pem",
        )

    def client(self, transport: str, cn: str) -> Client | HttpClient:
        if transport == "grpc":
            return Client(self.server.rpc_addr, tls=self.tls(cn), timeout=10)
        return HttpClient(self.server.http_addr, tls=self.tls(cn), timeout=10)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("tls-roles")
    pki = make_pki(directory)
    for cn in (CN_READER, CN_WRITER, CN_ADMIN, CN_NO_ROLE):
        lrukv_certs("issue", "client", cn, "--out", str(pki.directory))
    policy = write_policy(directory / "policy.toml", Tokens.fresh())
    server = start_server(directory, *pki.server_args("require"), "--auth-policy", str(policy))
    secured = Secured(server, pki)
    try:
        with secured.client("grpc", CN_ADMIN) as admin:
            admin.put(GUARDED, GUARDED_VALUE)
        yield secured
    finally:
        assert server.stop() == 0, server.output()
    assert "Traceback" not in server.stderr(), server.output()


def assert_unchanged(secured: Secured) -> None:
    with secured.client("http", CN_ADMIN) as admin:
        assert admin.get(GUARDED) == GUARDED_VALUE
        assert admin.exists("refused") is False


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_reader_certificate_reads_but_cannot_write(secured: Secured, transport: str) -> None:
    with secured.client(transport, CN_READER) as reader:
        assert reader.get(GUARDED) == GUARDED_VALUE
        with pytest.raises(PermissionDenied) as denied:
            reader.put(GUARDED, b"overwritten")
        with pytest.raises(PermissionDenied):
            reader.put("refused", b"must not be stored")
    assert CN_READER in str(denied.value) and "writer" in str(denied.value)
    assert_unchanged(secured)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_writer_certificate_writes(secured: Secured, transport: str) -> None:
    with secured.client(transport, CN_WRITER) as writer:
        writer.put(f"by-writer-{transport}", b"ok")
        assert writer.get(f"by-writer-{transport}") == b"ok"


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_certificate_whose_cn_has_no_role_is_refused(secured: Secured, transport: str) -> None:
    with secured.client(transport, CN_NO_ROLE) as stranger:
        with pytest.raises(PermissionDenied):
            stranger.get(GUARDED)
        with pytest.raises(PermissionDenied):
            stranger.put("refused", b"must not be stored")
    assert_unchanged(secured)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_a_reader_certificate_gets_403_on_put(secured: Secured) -> None:
    tls = secured.tls(CN_READER)
    url = f"https://{secured.server.http_addr}/v1/{GUARDED}"
    args = ["curl", "-sS", "--cacert", str(tls.ca_file), "--cert", str(tls.cert_file)]
    args += ["--key", str(tls.key_file), "-o", "-", "-w", "\n%{http_code}"]
    got = subprocess.run([*args, url], capture_output=True, timeout=30, check=True)
    assert got.stdout.decode().rsplit("\n", 1) == [GUARDED_VALUE.decode(), "200"]
    put = subprocess.run(
        [*args, "-X", "PUT", "--data-binary", "x", url], capture_output=True, timeout=30, check=True
    )
    body, status = put.stdout.decode().rsplit("\n", 1)
    assert status == "403" and '"permission_denied"' in body
    assert_unchanged(secured)
