"""Metrics test helpers: scrape a server's ``/metrics`` into samples, and find
the Prometheus tools (Debian package ``prometheus``: ``promtool``, ``prometheus``).

A missing tool skips the test that needs it, with the reason; with
``LRUKV_TEST_REQUIRE_PROMETHEUS=1`` (set by ``.ci/run``) it fails instead, so CI
cannot pass without having run them. ``make test`` installs the package when it
can (tests/tools/ensure_prometheus.sh).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["REQUIRE_ENV", "Samples", "fetch_metrics", "require_tool", "scrape"]

REQUIRE_ENV = "LRUKV_TEST_REQUIRE_PROMETHEUS"


def require_tool(name: str) -> str:
    """The path of *name* on PATH; skip (or fail when required) if it is absent."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} not found (Debian package 'prometheus': apt-get install -y prometheus)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{name} is required ({REQUIRE_ENV}=1): {reason}")
    pytest.skip(reason)


def fetch_metrics(url: str) -> tuple[str, str]:
    """GET *url*; return (body, Content-Type). Raises on a non-200 answer."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode(), response.headers["Content-Type"]


@dataclass(frozen=True)
class Samples:
    """Every sample of one scrape: ``{(name, frozenset(labels)): value}``, plus
    each family's type (``{family name: type}``)."""

    values: Mapping[tuple[str, frozenset[tuple[str, str]]], float]
    types: Mapping[str, str]
    text: str

    def get(self, name: str, **labels: str) -> float | None:
        """The sample *name* with exactly *labels*, or None if it is absent."""
        return self.values.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        """The sample *name* with exactly *labels*; AssertionError if absent."""
        found = self.get(name, **labels)
        assert found is not None, f"no sample {name}{labels}; have:\n{self.text}"
        return found

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples *name* whose labels include *labels*."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.values.items() if n == name and want <= ls)

    def names(self) -> set[str]:
        """Every sample name (histograms give ``_bucket``, ``_sum``, ``_count``)."""
        return {name for name, _ in self.values}


def parse(text: str) -> Samples:
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Samples(values, types, text)


def scrape(base_url: str, path: str = "/metrics") -> Samples:
    """Scrape ``base_url + path`` and parse it."""
    text, _ = fetch_metrics(base_url + path)
    return parse(text)
