"""TLS and mutual TLS on the real ``lrukv-server``, with certificates made by
``lrukv certs`` in a temp directory and real handshakes over loopback.

What a user relies on: the SDK (both transports), the CLI, ``lrukv bench`` and
curl work over TLS with a client certificate; and each of these is refused
cleanly, over HTTP and gRPC, with the data unchanged and the server serving:
a certificate from a foreign CA, an expired certificate, no client certificate
when one is required, plain HTTP and plain gRPC sent to the TLS ports.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrukv_client import (
    Client,
    ConstantBackoff,
    HttpClient,
    LrukvClientError,
    Retry,
    TLSConfig,
    Unavailable,
)
from lrukv_client.cli import app
from tests.harness import ServerProcess, start_server
from tests.tls_pki import CLIENT_CN, Pki, make_pki

AnyClient = Client | HttpClient
REFUSED_CERTS = ["foreign", "expired", "none"]
GUARDED = "guarded"  # written by a good client; every refusal must leave it as it is
GUARDED_VALUE = b"before the refusals"


@pytest.fixture(params=["grpc", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def mtls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that requires a client certificate signed by the CA."""
    process = start_server(tmp_path_factory.mktemp("mtls"), *pki.server_args("require"))
    try:
        assert process.scheme == "https"
        with open_client("grpc", process, pki.client_tls()) as kv:
            kv.put(GUARDED, GUARDED_VALUE)
        yield process
    finally:
        assert process.stop() == 0, process.output()
    assert "Traceback" not in process.stderr(), process.output()


def open_client(
    transport: str, server: ServerProcess, tls: TLSConfig | None, *, timeout: float = 5.0
) -> AnyClient:
    """A client of *server*; a refused one gives up after *timeout* (retries included)."""
    retry = Retry(ConstantBackoff(0.05), deadline=timeout)
    if transport == "grpc":
        return Client(server.rpc_addr, tls=tls, retry=retry, timeout=timeout)
    return HttpClient(server.http_addr, tls=tls, retry=retry, timeout=timeout)


def assert_unchanged(server: ServerProcess, pki: Pki) -> None:
    with open_client("http", server, pki.client_tls()) as kv:
        assert kv.get(GUARDED) == GUARDED_VALUE
    with open_client("grpc", server, pki.client_tls()) as kv:
        assert kv.get(GUARDED) == GUARDED_VALUE
        assert "refused" not in list(kv.keys())


# ------------------------------------------------------------------ the SDK


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_sdk_speaks_mutual_tls_to_the_real_server(
    mtls: ServerProcess, pki: Pki, transport: str, host: str
) -> None:
    # The certificate names localhost and 127.0.0.1: both verify without server_name.
    port = mtls.rpc_port if transport == "grpc" else mtls.http_port
    client_class = Client if transport == "grpc" else HttpClient
    with client_class(f"{host}:{port}", tls=pki.client_tls(), timeout=5.0) as kv:
        kv.put(f"sdk-{transport}-{host}", b"over mutual TLS")
        assert kv.get(f"sdk-{transport}-{host}") == b"over mutual TLS"
        with kv.items() as stream:
            assert (GUARDED, GUARDED_VALUE) in list(stream)


@pytest.mark.parametrize("cert", REFUSED_CERTS)
def test_the_sdk_is_refused_without_a_valid_client_certificate(
    mtls: ServerProcess, pki: Pki, transport: str, cert: str
) -> None:
    with open_client(transport, mtls, pki.client_tls(cert=cert), timeout=0.5) as kv:
        with pytest.raises(Unavailable):
            kv.put("refused", b"must not be stored")
        with pytest.raises(Unavailable):
            kv.get(GUARDED)
    assert_unchanged(mtls, pki)


def test_a_client_that_does_not_trust_the_servers_ca_refuses_it(
    mtls: ServerProcess, pki: Pki, transport: str
) -> None:
    tls = TLSConfig(ca_file=pki.foreign_ca, cert_file=pki.client_cert, key_file=pki.client_key)
    with open_client(transport, mtls, tls, timeout=0.5) as kv, pytest.raises(Unavailable):
        kv.put("refused", b"must not be stored")
    assert_unchanged(mtls, pki)


def test_plain_text_to_the_tls_ports_is_refused(
    mtls: ServerProcess, pki: Pki, transport: str
) -> None:
    with open_client(transport, mtls, None, timeout=0.5) as kv, pytest.raises(LrukvClientError):
        kv.put("refused", b"must not be stored")
    assert_unchanged(mtls, pki)
    assert mtls.alive() and mtls.worker_alive()


def test_plain_http_to_the_tls_port_gets_a_400_saying_to_use_https(mtls: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", mtls.http_port), timeout=10) as sock:
        sock.sendall(b"PUT /v1/refused HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    assert response.status == 400
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request"
    assert "https://" in error["message"]


# -------------------------------------------------------------------- curl


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_curl_with_the_client_certificate(mtls: ServerProcess, pki: Pki) -> None:
    url = f"https://localhost:{mtls.http_port}/v1/from-curl"
    put = _curl(*pki.curl_args(), "-X", "PUT", "-d", "hello", "-w", "%{http_code}", url)
    assert put.returncode == 0 and put.stdout == "201", put
    got = _curl(*pki.curl_args(), url)
    assert got.returncode == 0 and got.stdout == "hello", got


@pytest.mark.parametrize("cert", REFUSED_CERTS)
def test_curl_without_a_valid_client_certificate_is_refused(
    mtls: ServerProcess, pki: Pki, cert: str
) -> None:
    url = f"https://127.0.0.1:{mtls.http_port}/v1/refused"
    result = _curl(*pki.curl_args(cert=cert), "-X", "PUT", "-d", "no", url)
    assert result.returncode != 0, result
    assert result.stdout == ""
    assert_unchanged(mtls, pki)


def test_curl_refuses_a_server_it_does_not_trust(mtls: ServerProcess, pki: Pki) -> None:
    url = f"https://127.0.0.1:{mtls.http_port}/v1/{GUARDED}"
    result = _curl("--cacert", str(pki.foreign_ca), url)
    assert result.returncode == 60, result  # curl: peer certificate cannot be authenticated


def test_curl_plain_http_to_the_tls_port(mtls: ServerProcess, pki: Pki) -> None:
    result = _curl("-X", "PUT", "-d", "no", f"http://127.0.0.1:{mtls.http_port}/v1/refused")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["error"]["code"] == "bad_request"
    assert_unchanged(mtls, pki)


# --------------------------------------------------------- the CLI and bench


def _cli_tls(pki: Pki) -> list[str]:
    return [
        "--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert),
        "--tls-key", str(pki.client_key),
    ]  # fmt: skip


def test_the_cli_over_mutual_tls(mtls: ServerProcess, pki: Pki) -> None:
    runner = CliRunner()
    for server in (mtls.rpc_addr, f"https://{mtls.http_addr}"):
        put = runner.invoke(app, ["--server", server, *_cli_tls(pki), "put", "cli", server])
        assert put.exit_code == 0, put.output
        got = runner.invoke(app, ["--server", server, *_cli_tls(pki), "get", "cli"])
        assert got.exit_code == 0, got.output
        assert got.stdout_bytes == server.encode()
    # No client certificate: refused, "unavailable or denied".
    refused = runner.invoke(
        app, ["--server", mtls.rpc_addr, "--timeout", "1", "--tls-ca", str(pki.ca), "get", "cli"]
    )
    assert refused.exit_code == 3, refused.output


def test_lrukv_bench_over_mutual_tls(mtls: ServerProcess, pki: Pki, transport: str) -> None:
    server = mtls.rpc_addr if transport == "grpc" else f"https://{mtls.http_addr}"
    # A subprocess, as a user runs it (bench's threads and its summary on stdout).
    result = subprocess.run(
        [
            sys.executable, "-m", "lrukv_client.cli", "--server", server, *_cli_tls(pki),
            "bench", "--ops", "300", "--clients", "2", "--keyspace", "20", "--prefix", "tlsb:",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert_unchanged(mtls, pki)


# ----------------------------------------------------- optional client auth


@pytest.fixture(scope="module")
def optional(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``--tls-client-auth optional``, with a route that shows what the app sees."""
    process = start_server(
        tmp_path_factory.mktemp("optional"),
        *pki.server_args("optional"),
        command=[sys.executable, "-m", "tests.server.peer_cn_server"],
    )
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


def _peer_cn_seen(server: ServerProcess, context: ssl.SSLContext) -> dict[str, object]:
    conn = http.client.HTTPSConnection("127.0.0.1", server.http_port, context=context, timeout=10)
    try:
        conn.request("GET", "/test/peer-cn")
        response = conn.getresponse()
        assert response.status == 200
        document: dict[str, object] = json.loads(response.read())
        return document
    finally:
        conn.close()


def test_the_app_sees_the_verified_client_cn_and_nothing_without_one(
    optional: ServerProcess, pki: Pki
) -> None:
    assert _peer_cn_seen(optional, pki.ssl_context()) == {"present": True, "peer_cn": CLIENT_CN}
    assert _peer_cn_seen(optional, pki.ssl_context(cert="none")) == {
        "present": False,
        "peer_cn": None,
    }


@pytest.mark.parametrize("cert", ["foreign", "expired"])
def test_optional_client_auth_still_refuses_a_bad_certificate(
    optional: ServerProcess, pki: Pki, cert: str
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _peer_cn_seen(optional, pki.ssl_context(cert=cert))


def test_optional_client_auth_serves_clients_without_a_certificate(
    optional: ServerProcess, pki: Pki, transport: str
) -> None:
    with open_client(transport, optional, pki.client_tls(cert="none")) as kv:
        kv.put("anonymous", b"served")
        assert kv.get("anonymous") == b"served"


# ----------------------------------------------------------------- start-up


def _start_fails(tmp_path: Path, *args: str) -> str:
    from tests.harness import ServerStartError

    with pytest.raises(ServerStartError) as failure:
        start_server(tmp_path, *args, ready_timeout=30)
    return str(failure.value)


def test_a_key_that_is_not_the_certificates_is_one_start_up_error(pki: Pki, tmp_path: Path) -> None:
    output = _start_fails(
        tmp_path, "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.client_key)
    )
    assert "exited with status 2" in output
    stderr = output.split("--- stderr ---\n", 1)[1].strip()
    assert stderr.count("\n") == 0, stderr  # one line
    assert "is not the key of the certificate" in stderr
