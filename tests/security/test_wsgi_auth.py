"""The HTTP middleware, in process: the certificate CN path (``lrukv.tls.peer_cn``,
which the TLS-serving HTTP worker sets) and what a refusal looks like.

The bearer-token path is tested against the real server in test_real_server.py.
These use a Flask test client, whose environ can carry the CN the way the TLS
worker's does; once the TLS worker is merged, test_real_server's certificate
tests cover the same over a real handshake.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from lrukv_server.api.http_app import create_app
from lrukv_server.security import load_policy, transport_guards
from lrukv_server.security.wsgi import PEER_CN_ENVIRON
from lrukv_server.transport import TransportOptions
from tests.security.policies import CN_ADMIN, CN_NO_ROLE, CN_READER, CN_WRITER, Tokens, write_policy
from tests.server.faults import FakeService

LIMIT = 64 * 1024


@pytest.fixture
def tokens() -> Tokens:
    return Tokens.fresh()


@pytest.fixture
def service() -> FakeService:
    return FakeService(data={"key-a": b"original"})


@pytest.fixture
def client(tmp_path: Path, tokens: Tokens, service: FakeService) -> FlaskClient:
    _, middleware = transport_guards(load_policy(write_policy(tmp_path / "p.toml", tokens)))
    transport = TransportOptions(wsgi_middleware=(middleware,))
    return create_app(service, max_value_bytes=LIMIT, transport=transport).test_client()


def as_cn(cn: str) -> dict[str, str]:
    return {PEER_CN_ENVIRON: cn}


def test_a_reader_certificate_can_read_but_not_write(
    client: FlaskClient, service: FakeService
) -> None:
    assert client.get("/v1/key-a", environ_overrides=as_cn(CN_READER)).data == b"original"
    response = client.put("/v1/key-a", data=b"changed", environ_overrides=as_cn(CN_READER))
    assert response.status_code == 403
    assert response.json == {
        "error": {
            "code": "permission_denied",
            "message": f"subject '{CN_READER}' has role reader; PUT /v1/key-a needs writer",
        }
    }
    assert "WWW-Authenticate" not in response.headers
    delete = client.delete("/v1/key-a", environ_overrides=as_cn(CN_READER))
    assert delete.status_code == 403
    assert service.data == {"key-a": b"original"}
    assert [name for name, _ in service.calls] == ["get"]  # the refusals never reached it


def test_a_writer_certificate_writes(client: FlaskClient, service: FakeService) -> None:
    response = client.put("/v1/key-b", data=b"new", environ_overrides=as_cn(CN_WRITER))
    assert response.status_code == 201
    assert service.data["key-b"] == b"new"
    assert client.delete("/v1/key-b", environ_overrides=as_cn(CN_ADMIN)).status_code == 204


def test_a_certificate_without_a_role_is_refused_everything_but_health(
    client: FlaskClient, service: FakeService
) -> None:
    for method, path in [("GET", "/v1/key-a"), ("GET", "/v1/util/keys"), ("PUT", "/v1/key-a")]:
        response = client.open(path, method=method, data=b"x", environ_overrides=as_cn(CN_NO_ROLE))
        assert response.status_code == 403, (method, path)
        assert response.json is not None
        assert response.json["error"]["message"].startswith(
            f"subject '{CN_NO_ROLE}' has no role on this server"
        )
    assert client.get("/healthz", environ_overrides=as_cn(CN_NO_ROLE)).status_code == 200
    assert service.data == {"key-a": b"original"}


def test_the_certificate_wins_over_a_bearer_token(
    client: FlaskClient, tokens: Tokens, service: FakeService
) -> None:
    response = client.put(
        "/v1/key-a",
        data=b"changed",
        headers={"Authorization": f"Bearer {tokens.admin}"},
        environ_overrides=as_cn(CN_READER),
    )
    assert response.status_code == 403
    assert service.data == {"key-a": b"original"}


def test_no_credentials_is_401_with_a_bearer_challenge(client: FlaskClient) -> None:
    response = client.get("/v1/key-a")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="lrukv"'
    assert response.json is not None and response.json["error"]["code"] == "unauthenticated"


def test_a_header_that_is_not_bearer_is_401(client: FlaskClient) -> None:
    response = client.get("/v1/key-a", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json is not None
    assert "must be 'Bearer <token>'" in response.json["error"]["message"]


def test_an_unlisted_route_is_refused_even_to_an_admin(client: FlaskClient) -> None:
    response = client.get("/v1/util/snapshot", environ_overrides=as_cn(CN_ADMIN))
    assert response.status_code == 403
    assert response.json is not None
    assert "no authorization rule allows GET /v1/util/snapshot" in response.json["error"]["message"]


def test_open_routes_need_nothing(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.options("/v1/key-a").status_code == 204
