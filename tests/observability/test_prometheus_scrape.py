"""A real Prometheus (Debian package ``prometheus``) scrapes a running
``lrukv-server -m`` on loopback, and the series come back through its HTTP API:
the exposition, content type and names work with the real consumer."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartServer
from tests.observability.promtools import require_tool
from tests.replication.cluster import free_port, http

pytestmark = pytest.mark.slow

_DEADLINE_S = 60.0


@contextlib.contextmanager
def _prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """Run prometheus scraping *target* every second; yield its base URL.
    Stopped by its PID (SIGTERM, then SIGKILL) at the end."""
    binary = require_tool("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: lrukv\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _wait_for_series(base: str, promql: str, tmp_path: Path) -> list[dict[str, Any]]:
    deadline = time.monotonic() + _DEADLINE_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = _query(base, promql)
            if result:
                return result
        except OSError as exc:  # prometheus still starting
            last = exc
        time.sleep(0.5)
    log = (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"no {promql} within {_DEADLINE_S}s (last error {last})\n{log}")


def test_prometheus_scrapes_the_server_and_reads_series_back(
    lrukv_server_factory: StartServer, tmp_path: Path
) -> None:
    server = lrukv_server_factory("-m")
    for key in ("a", "b"):
        assert http("PUT", f"{server.http_url}/v1/{key}", b"v")[0] == 201
    with _prometheus(tmp_path, server.http_addr) as prometheus:
        up = _wait_for_series(prometheus, 'up{job="lrukv"} == 1', tmp_path)
        assert up[0]["metric"]["instance"] == server.http_addr
        puts = _wait_for_series(
            prometheus,
            'lrukv_requests_total{transport="http",method="PUT",route="key",code="201"}',
            tmp_path,
        )
        assert float(puts[0]["value"][1]) == 2
        items = _wait_for_series(prometheus, "lrukv_store_items", tmp_path)
        assert float(items[0]["value"][1]) == 2
        # a histogram works as one: a quantile over its buckets is a number
        p99 = _wait_for_series(
            prometheus,
            "histogram_quantile(0.99, sum by (le) (lrukv_request_duration_seconds_bucket))",
            tmp_path,
        )
        assert float(p99[0]["value"][1]) > 0
