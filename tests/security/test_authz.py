"""The authorization tables and the one decision: who may call what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from lrukv_proto.v1 import kv_pb2
from lrukv_server.api.status import status_of
from lrukv_server.errors import PermissionDenied, Unauthenticated
from lrukv_server.security.authz import (
    GRPC_METHOD_ROLES,
    HTTP_UTIL_ROLES,
    OPEN,
    Authorizer,
    Credentials,
    Requirement,
    grpc_requirement,
    http_requirement,
)
from lrukv_server.security.policy import Policy, Role, Subject, hash_token

SERVICE = kv_pb2.DESCRIPTOR.services_by_name["KV"]


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_every_kv_method_of_the_proto_has_a_rule(method: str) -> None:
    # Deny by default would refuse a new method to everyone: give it a row.
    assert grpc_requirement(f"/lrukv.v1.KV/{method}") is not None, (
        f"add /lrukv.v1.KV/{method} to GRPC_METHOD_ROLES"
    )


@pytest.mark.parametrize(
    ("method", "needs"),
    [
        ("Get", Role.READER),
        ("GetKeys", Role.READER),
        ("GetKeysValues", Role.READER),
        ("GetServers", Role.READER),
        ("Stats", Role.READER),
        ("Ttl", Role.READER),
        ("GetMany", Role.READER),
        ("Put", Role.WRITER),
        ("Delete", Role.WRITER),
        ("PutMany", Role.WRITER),
        ("DeleteMany", Role.WRITER),
        ("Pipeline", Role.WRITER),
        ("AddMember", Role.ADMIN),
        ("RemoveMember", Role.ADMIN),
    ],
)
def test_grpc_methods_need_their_role(method: str, needs: Role) -> None:
    assert GRPC_METHOD_ROLES[f"/lrukv.v1.KV/{method}"] is needs


def test_health_and_reflection_are_open_and_unknown_methods_have_no_rule() -> None:
    assert grpc_requirement("/grpc.health.v1.Health/Check") is OPEN
    assert grpc_requirement("/grpc.health.v1.Health/Watch") is OPEN
    assert (
        grpc_requirement("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is OPEN
    )
    assert grpc_requirement("/lrukv.v1.KV/Snapshot") is None
    assert grpc_requirement("/other.Service/Get") is None


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("GET", "/v1/key-a", Role.READER),
        ("HEAD", "/v1/key-a", Role.READER),
        ("PUT", "/v1/key-a", Role.WRITER),
        ("DELETE", "/v1/a/b", Role.WRITER),
        ("PUT", "/v1/util%2Fkeys", Role.WRITER),  # the key "util/keys", not the listing
        ("OPTIONS", "/v1/key-a", OPEN),
        ("GET", "/v1/util/keys", Role.READER),
        ("HEAD", "/v1/util/keys", Role.READER),
        ("GET", "/v1/util/items", Role.READER),
        ("GET", "/v1/util/servers", Role.READER),
        ("GET", "/v1/util/cluster", Role.READER),
        ("GET", "/v1/util/stats", Role.READER),
        ("GET", "/v1/util/ttl/key-a", Role.READER),
        ("POST", "/v1/util/batch", Role.WRITER),
        ("OPTIONS", "/v1/util/keys", OPEN),
        ("GET", "/healthz", OPEN),
        ("GET", "/readyz", OPEN),
        ("GET", "/openapi.json", OPEN),
        # deny by default: no rule
        ("POST", "/v1/key-a", None),
        ("PUT", "/v1/util/keys", None),
        ("DELETE", "/v1/util/stats", None),
        ("GET", "/v1/util/snapshot", None),
        ("GET", "/metrics", None),
        ("GET", "/", None),
    ],
)
def test_http_routes_need_their_role(method: str, path: str, needs: Requirement | None) -> None:
    assert http_requirement(method, path, {}) is needs


def test_an_http_rule_may_decide_from_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hook for a body-aware batch rule: a function of the environ.
    def batch_rule(environ: Mapping[str, Any]) -> Requirement:
        return Role.READER if environ.get("X_READS_ONLY") else Role.WRITER

    monkeypatch.setitem(HTTP_UTIL_ROLES, ("POST", "batch"), batch_rule)
    assert http_requirement("POST", "/v1/util/batch", {"X_READS_ONLY": "1"}) is Role.READER
    assert http_requirement("POST", "/v1/util/batch", {}) is Role.WRITER


POLICY = Policy(
    subjects={
        "r": Subject("r", Role.READER, (bytes.fromhex(hash_token("tok-r")),)),
        "w": Subject("w", Role.WRITER, (bytes.fromhex(hash_token("tok-w")),)),
        "cn-admin": Subject("cn-admin", Role.ADMIN),
    }
)
AUTHORIZER = Authorizer(POLICY)


def test_a_role_allows_its_calls_and_every_weaker_one() -> None:
    assert AUTHORIZER.check(Credentials(token="tok-w"), Role.READER, "Get") == "w"
    assert AUTHORIZER.check(Credentials(token="tok-w"), Role.WRITER, "Put") == "w"
    assert AUTHORIZER.check(Credentials(cert_cn="cn-admin"), Role.ADMIN, "AddMember") == "cn-admin"


def test_too_weak_a_role_is_403_naming_the_subject_and_the_role_needed() -> None:
    with pytest.raises(PermissionDenied) as caught:
        AUTHORIZER.check(Credentials(token="tok-r"), Role.WRITER, "Put")
    assert str(caught.value) == "subject 'r' has role reader; Put needs writer"
    assert "tok-r" not in str(caught.value)
    assert status_of(caught.value).http == 403
    assert status_of(caught.value).code == "permission_denied"


def test_a_certificate_subject_without_a_role_is_403() -> None:
    with pytest.raises(PermissionDenied, match="subject 'stranger' has no role on this server"):
        AUTHORIZER.check(Credentials(cert_cn="stranger"), Role.READER, "Get")


def test_no_credentials_a_bad_header_or_an_unknown_token_is_401() -> None:
    for credentials, text in [
        (Credentials(), "Get needs credentials"),
        (Credentials(problem="the Authorization header must be 'Bearer <token>'"), "Bearer"),
        (Credentials(token="guess"), "the bearer token is not known"),
    ]:
        with pytest.raises(Unauthenticated, match=text) as caught:
            AUTHORIZER.check(credentials, Role.READER, "Get")
        assert "guess" not in str(caught.value)
        assert status_of(caught.value).grpc_code.name == "UNAUTHENTICATED"


def test_a_certificate_wins_over_a_token() -> None:
    # The reader token would be refused a Put; the admin certificate decides.
    assert AUTHORIZER.check(Credentials(cert_cn="cn-admin", token="tok-r"), Role.ADMIN, "X") == (
        "cn-admin"
    )
    with pytest.raises(PermissionDenied, match="'stranger' has no role"):
        AUTHORIZER.check(Credentials(cert_cn="stranger", token="tok-w"), Role.WRITER, "Put")


def test_open_calls_need_nothing_and_unmapped_calls_are_refused_to_everyone() -> None:
    assert AUTHORIZER.check(Credentials(), OPEN, "Check") is None
    with pytest.raises(PermissionDenied, match="no authorization rule allows Snapshot"):
        AUTHORIZER.check(Credentials(cert_cn="cn-admin"), None, "Snapshot")
    with pytest.raises(Unauthenticated):
        AUTHORIZER.check(Credentials(), None, "Snapshot")
