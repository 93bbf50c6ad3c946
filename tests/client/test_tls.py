"""TLS options of both clients and the CLI, against the fake node serving mutual
TLS with a throw-away CA made by ``lrukv certs`` (what only a fake can do: a
certificate naming another host. The real server's TLS: tests/server/test_tls_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrukv_client import (
    Client,
    ConstantBackoff,
    HttpClient,
    InvalidArgument,
    Retry,
    TLSConfig,
    Unavailable,
)
from lrukv_client.cli import app
from tests.client.certs import SERVER_NAME, Pki, make_pki
from tests.client.conftest import AnyClient
from tests.client.fakes import FakeNode


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_node(pki: Pki) -> Iterator[FakeNode]:
    with FakeNode("tls-node", tls=pki) as node:
        yield node


def client_for(transport: str, node: FakeNode, tls: TLSConfig) -> AnyClient:
    retry = Retry(ConstantBackoff(0.05), deadline=0.5)
    if transport == "grpc":
        return Client(node.rpc_addr, tls=tls, retry=retry)
    return HttpClient(node.http_addr, tls=tls, retry=retry)


def mutual(pki: Pki, **changes: object) -> TLSConfig:
    settings: dict[str, object] = {
        "ca_file": pki.ca,
        "cert_file": pki.client_cert,
        "key_file": pki.client_key,
        "server_name": SERVER_NAME,
    }
    settings.update(changes)
    return TLSConfig(**settings)  # type: ignore[arg-type]


def test_mutual_tls_with_a_server_name_override(
    tls_node: FakeNode, pki: Pki, transport: str
) -> None:
    # Connecting by IP: the certificate names lrukv.test, so server_name is needed.
    with client_for(transport, tls_node, mutual(pki)) as kv:
        kv.put("k", b"over TLS")
        assert kv.get("k") == b"over TLS"


@pytest.mark.parametrize(
    "changes",
    [
        {"cert_file": None, "key_file": None},  # the server requires a client certificate
        {"ca_file": "other"},  # the server's certificate is not signed by a trusted CA
        {"server_name": "someone-else.test"},  # the certificate names another host
    ],
    ids=["no-client-cert", "untrusted-ca", "wrong-name"],
)
def test_a_failed_handshake_is_unavailable(
    tls_node: FakeNode, pki: Pki, transport: str, changes: dict[str, object]
) -> None:
    if changes.get("ca_file") == "other":
        changes = {"ca_file": pki.other_ca}
    with client_for(transport, tls_node, mutual(pki, **changes)) as kv, pytest.raises(Unavailable):
        kv.get("k")
    assert tls_node.calls == []


def test_plaintext_to_a_tls_node_fails_cleanly(tls_node: FakeNode, transport: str) -> None:
    retry = Retry(ConstantBackoff(0.05), deadline=0.5)
    kv: AnyClient
    if transport == "grpc":
        kv = Client(tls_node.rpc_addr, retry=retry)
    else:
        kv = HttpClient(tls_node.http_addr, retry=retry)
    with kv, pytest.raises(Unavailable):
        kv.get("k")


def test_tls_settings_are_checked_when_the_client_is_made(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        TLSConfig(cert_file=pki.client_cert)  # a certificate without its key
    with pytest.raises(InvalidArgument, match="cannot read"):
        Client("127.0.0.1:1", tls=TLSConfig(ca_file=tmp_path / "missing.pem"))
    with pytest.raises(InvalidArgument, match="TLS"):
        HttpClient("127.0.0.1:1", tls=TLSConfig(ca_file=tmp_path / "missing.pem"))


def test_the_cli_speaks_mutual_tls(tls_node: FakeNode, pki: Pki) -> None:
    tls_node.put("k", b"secret", None)
    options = [
        "--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert),
        "--tls-key", str(pki.client_key), "--tls-server-name", SERVER_NAME,
    ]  # fmt: skip
    runner = CliRunner()
    for server in (tls_node.rpc_addr, f"https://{tls_node.http_addr}"):
        result = runner.invoke(app, ["--server", server, *options, "get", "k"])
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes == b"secret"
    result = runner.invoke(
        app, ["--server", tls_node.rpc_addr, "--tls-cert", str(pki.ca), "get", "k"]
    )
    assert result.exit_code == 2  # a certificate without its key
