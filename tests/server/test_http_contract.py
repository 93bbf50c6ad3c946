"""The HTTP contract against the real ``lrukv-server``: OPTIONS tells the truth per
route, ``?ttl=`` is a plain decimal, and the OpenAPI document the server serves
says what the server does about keys, TTLs and bodies.

(tests/server/test_schemathesis.py fuzzes the same document; these are the
cases it found, kept as plain, fast tests.)
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest

from lrukv_server.api.http_app import TTL_MAX_LENGTH, TTL_PATTERN
from tests.harness import ServerProcess, start_server

TIMEOUT = 10
KEY_ROUTE = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
READ_ONLY = {"GET", "HEAD", "OPTIONS"}
PROBED = ("GET", "HEAD", "PUT", "DELETE", "POST", "PATCH")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = start_server(tmp_path_factory.mktemp("contract"))
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    status, _, body = _http(server, "GET", "/openapi.json")
    assert status == 200
    return dict(json.loads(body))


def _http(
    server: ServerProcess, method: str, target: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.http_addr, timeout=TIMEOUT)
    try:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------- OPTIONS


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/v1/some-key", KEY_ROUTE),
        ("/v1/a/b", KEY_ROUTE),
        ("/v1/util", KEY_ROUTE),  # the key "util", not a utility
        ("/v1/util%2Fkeys", KEY_ROUTE),  # the key "util/keys"
        ("/v1/util/keys", READ_ONLY),
        ("/v1/util/items", READ_ONLY),
        ("/v1/util/servers", READ_ONLY),
        ("/healthz", READ_ONLY),
        ("/readyz", READ_ONLY),
        ("/openapi.json", READ_ONLY),
    ],
)
def test_options_lists_exactly_the_methods_the_route_serves(
    server: ServerProcess, target: str, allowed: set[str]
) -> None:
    status, headers, body = _http(server, "OPTIONS", target)
    assert (status, body) == (204, b"")
    assert "content-type" not in headers  # no body, so no type (not text/html)
    assert {method.strip() for method in headers["allow"].split(",")} == allowed
    # ... and it is true: every other method is 405, with the same Allow.
    for method in PROBED:
        got, got_headers, _ = _http(server, method, target, b"v" if method == "PUT" else None)
        if method in allowed:
            assert got != 405, (method, target)
        else:
            assert got == 405, (method, target, got)
            assert {m.strip() for m in got_headers["allow"].split(",")} == allowed


def test_options_on_an_unknown_utility_is_404(server: ServerProcess) -> None:
    status, _headers, body = _http(server, "OPTIONS", "/v1/util/nope")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"


# -------------------------------------------------------------------------- ttl


@pytest.mark.parametrize(
    "ttl",
    [
        "1_0",  # the probe's two: Python float syntax
        "%20%201%20",
        *("1e3", "inf", "nan", "-1", "+1", "0", "0.000", ".5", "0x1", "%EF%BC%91", ""),
        "1" + "0" * TTL_MAX_LENGTH,  # one character over the bound
    ],
)
def test_ttl_must_be_a_positive_plain_decimal(server: ServerProcess, ttl: str) -> None:
    key = f"ttl-refused-{quote(ttl, safe='')}"
    status, _, body = _http(server, "PUT", f"/v1/{key}?ttl={ttl}", b"v")
    assert status == 400
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_ttl"
    assert error["message"].startswith("ttl must be"), error  # not the core's "expiry"
    assert "expiry" not in error["message"]
    assert _http(server, "GET", f"/v1/{key}")[0] == 404


@pytest.mark.parametrize("ttl", ["30", "0.5", "007", "3600.25", "9" * TTL_MAX_LENGTH])
def test_plain_decimal_ttls_are_accepted(server: ServerProcess, ttl: str) -> None:
    assert _http(server, "PUT", f"/v1/ttl-ok?ttl={ttl}", b"v")[0] == 201


def test_the_document_has_the_servers_ttl_rule(document: dict[str, Any]) -> None:
    (ttl,) = document["paths"]["/v1/{key}"]["put"]["parameters"]
    assert ttl["name"] == "ttl"
    assert ttl["schema"] == {"type": "string", "pattern": TTL_PATTERN, "maxLength": TTL_MAX_LENGTH}


# ------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "key",
    [
        "key-a",
        "a/b",
        "café",
        "util/keys",
        "%",
        "..a",
        "k" * 1024,  # the longest ASCII key
        "é" * 512,  # 1024 bytes
        "",
        ".",
        "..",
        "a\x00b",
        "a\x1fb",
        "a\nb",
        "a\x7fb",
        "k" * 1025,
    ],
)
def test_the_key_schema_agrees_with_the_server(
    server: ServerProcess, document: dict[str, Any], key: str
) -> None:
    (parameter,) = document["paths"]["/v1/{key}"]["parameters"]
    schema_says = jsonschema_rs.validator_for(parameter["schema"]).is_valid(key)
    status, _, body = _http(server, "PUT", "/v1/" + quote(key, safe=""), b"v")
    assert status in (201, 400), body
    assert (status == 201) == schema_says, (key, status, body)


# ------------------------------------------------------------------------- body


def test_the_document_says_an_empty_body_is_a_value(
    server: ServerProcess, document: dict[str, Any]
) -> None:
    put = document["paths"]["/v1/{key}"]["put"]
    assert put["requestBody"]["required"] is False
    assert {"411", "501"} <= set(put["responses"])
    # http.client sends Content-Length: 0 for a PUT without a body, as every
    # client library does: that stores the empty value.
    assert _http(server, "PUT", "/v1/empty-body")[0] == 201
    assert _http(server, "GET", "/v1/empty-body")[::2] == (200, b"")


@pytest.mark.parametrize("ttl", [0.5, 30, 1e-05, 1e20])
def test_the_sdks_http_client_sends_ttls_the_server_accepts(
    server: ServerProcess, ttl: float
) -> None:
    # repr() gives "1e-05" and "1e+20", which are not plain decimals.
    from lrukv_client import HttpClient

    with HttpClient(server.http_addr, timeout=TIMEOUT) as kv:
        kv.put("sdk-ttl", b"v", ttl=ttl)
