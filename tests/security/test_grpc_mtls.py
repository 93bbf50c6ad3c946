"""Roles by client certificate CN over gRPC with mutual TLS: a real handshake
against the real GrpcServer (built directly with TransportOptions, the seam the
Agent uses), the interceptor from the policy, and the SDK client.

To run these against a TLS-serving ``lrukv-server`` once it has TLS flags, only
the ``mtls_server`` fixture changes (start the process with the certificate
flags and ``--auth-policy``); the tests use nothing but its address.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lrukv_client import Client, ConstantBackoff, PermissionDenied, Retry, TLSConfig
from lrukv_server.api.grpc_server import GrpcServer
from lrukv_server.security import load_policy, transport_guards
from lrukv_server.transport import ServerTls, TransportOptions
from tests.security.certs import SERVER_NAME, ClientCert, Pki, make_client_cert, make_pki
from tests.security.policies import CN_ADMIN, CN_NO_ROLE, CN_READER, CN_WRITER, Tokens, write_policy
from tests.server.faults import FakeService


@dataclass(frozen=True)
class MtlsServer:
    address: str
    pki: Pki
    certs: dict[str, ClientCert]
    tokens: Tokens
    service: FakeService


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsServer]:
    directory = tmp_path_factory.mktemp("mtls")
    pki = make_pki(directory)
    certs = {cn: make_client_cert(pki, cn) for cn in (CN_READER, CN_WRITER, CN_ADMIN, CN_NO_ROLE)}
    tokens = Tokens.fresh()
    interceptor, _ = transport_guards(load_policy(write_policy(directory / "p.toml", tokens)))
    transport = TransportOptions(
        tls=ServerTls(
            str(pki.server_cert),
            str(pki.server_key),
            client_ca_file=str(pki.ca),
            require_client_auth=True,
        ),
        grpc_interceptors=(interceptor,),
    )
    server = GrpcServer(
        host="127.0.0.1",
        port=0,
        workers=4,
        max_value_bytes=64 * 1024,
        max_key_bytes=1024,
        transport=transport,
    )
    server.bind()
    service = FakeService()
    server.start(service)
    try:
        yield MtlsServer(server.address, pki, certs, tokens, service)
    finally:
        server.begin_stop(0)
        server.wait_stopped(10)


def client_as(server: MtlsServer, cn: str, token: str | None = None) -> Client:
    cert = server.certs[cn]
    tls = TLSConfig(
        ca_file=server.pki.ca, cert_file=cert.cert, key_file=cert.key, server_name=SERVER_NAME
    )
    retry = Retry(ConstantBackoff(0.05), deadline=10)
    return Client(server.address, tls=tls, retry=retry, token=token)


def test_a_reader_cn_reads_but_cannot_write_and_nothing_changes(mtls_server: MtlsServer) -> None:
    with client_as(mtls_server, CN_ADMIN) as admin:
        admin.put("mtls-a", b"original")
    with client_as(mtls_server, CN_READER) as reader:
        assert reader.get("mtls-a") == b"original"
        listed = reader.keys()
        assert "mtls-a" in listed
        with pytest.raises(PermissionDenied) as denied:
            reader.put("mtls-a", b"changed")
        assert denied.value.error_code == "permission_denied"
        assert f"subject '{CN_READER}' has role reader; Put needs writer" in str(denied.value)
        with pytest.raises(PermissionDenied):
            reader.delete("mtls-a")
    with client_as(mtls_server, CN_ADMIN) as admin:
        assert admin.get("mtls-a") == b"original"


def test_a_writer_cn_writes_but_cannot_change_membership(mtls_server: MtlsServer) -> None:
    with client_as(mtls_server, CN_WRITER) as writer:
        writer.put("mtls-b", b"written")
        assert writer.get("mtls-b") == b"written"
        calls_before = len(mtls_server.service.calls)
        with pytest.raises(PermissionDenied, match="AddMember needs admin"):
            writer.add_member("127.0.0.1:7001")
        with pytest.raises(PermissionDenied, match="RemoveMember needs admin"):
            writer.remove_member("127.0.0.1:7001")
        assert len(mtls_server.service.calls) == calls_before  # never reached the service


def test_a_cn_with_no_role_is_refused_reads_streams_and_writes(mtls_server: MtlsServer) -> None:
    with client_as(mtls_server, CN_NO_ROLE) as stranger:
        for call in (
            lambda: stranger.get("mtls-a"),
            lambda: stranger.put("mtls-c", b"x"),
            lambda: list(stranger.items()),
            stranger.stats,
        ):
            with pytest.raises(PermissionDenied, match=f"subject '{CN_NO_ROLE}' has no role"):
                call()
    with client_as(mtls_server, CN_ADMIN) as admin:
        assert not admin.exists("mtls-c")


def test_the_certificate_wins_over_a_token(mtls_server: MtlsServer) -> None:
    # An admin token sent by a reader certificate does not make it an admin.
    reader = client_as(mtls_server, CN_READER, token=mtls_server.tokens.admin)
    with reader, pytest.raises(PermissionDenied, match="has role reader"):
        reader.put("mtls-d", b"x")


def test_health_stays_open_to_a_certificate_without_a_role(mtls_server: MtlsServer) -> None:
    cert = mtls_server.certs[CN_NO_ROLE]
    credentials = grpc.ssl_channel_credentials(
        root_certificates=mtls_server.pki.ca.read_bytes(),
        private_key=cert.key.read_bytes(),
        certificate_chain=cert.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", SERVER_NAME)]
    with grpc.secure_channel(mtls_server.address, credentials, options) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
