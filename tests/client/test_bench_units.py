"""The load generator's parts on their own: mix parsing, key choice, the
correctness model, and the statistics."""

from __future__ import annotations

import random

import pytest

from lrukv_client.bench import BenchConfig, KeyChooser, PrivateKeys, parse_mix
from lrukv_client.bench.report import histogram, latency_summary, percentile


def test_parse_mix_normalises_and_refuses_nonsense() -> None:
    assert parse_mix("get=80, put=15,delete=5") == {"get": 0.8, "put": 0.15, "delete": 0.05}
    assert parse_mix("put=1,get=0") == {"put": 1.0}
    for bad in ("read=1", "get", "get=x", "get=-1", "get=0", ""):
        with pytest.raises(ValueError):
            parse_mix(bad)


@pytest.mark.parametrize(
    "changes",
    [
        {"duration": None, "ops": None},
        {"threads": 0},
        {"distribution": "gauss"},
        {"private_ratio": 1.5},
        {"mix": {"scan": 1.0}},
        {"consistency": "eventual"},
        {"keyspace": 0},
    ],
)
def test_bench_config_refuses_bad_settings(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BenchConfig(**changes).validate()  # type: ignore[arg-type]


def test_uniform_keys_cover_the_keyspace() -> None:
    chooser = KeyChooser(10, "uniform")
    rng = random.Random(7)
    picks = [chooser.index(rng) for _ in range(2000)]
    assert set(picks) == set(range(10))


def test_zipf_keys_are_skewed_towards_the_first() -> None:
    chooser = KeyChooser(1000, "zipf", s=1.0)
    rng = random.Random(7)
    picks = [chooser.index(rng) for _ in range(20_000)]
    assert all(0 <= pick < 1000 for pick in picks)
    top_ten = sum(1 for pick in picks if pick < 10)
    # With s=1 over 1000 keys the ten hottest take about 39% of the traffic (H_10/H_1000).
    assert 0.33 < top_ten / len(picks) < 0.45


def private_keys(stale_ok: bool = False) -> PrivateKeys:
    return PrivateKeys("run:", worker=3, count=2, value_size=40, stale_ok=stale_ok)


def test_reads_of_the_last_acknowledged_write_are_correct() -> None:
    keys = private_keys()
    assert keys.read(0, None) == "ok"  # never written: absent is right
    first = keys.next_value(0)
    assert len(first) == 40 and first.startswith(b"lrukv-bench w3 k0 s1|")
    keys.put_done(0, first)
    assert keys.read(0, first) == "ok"
    keys.delete_done(0)
    assert keys.read(0, None) == "ok"
    assert keys.counts["checked_reads"] == 3


def test_a_miss_where_a_value_should_be_is_an_eviction_not_an_error() -> None:
    keys = private_keys()
    value = keys.next_value(1)
    keys.put_done(1, value)
    assert keys.read(1, None) == "evicted"
    assert keys.samples == []
    assert keys.read(1, None) == "ok"  # once evicted, the key stays absent


def test_a_failed_write_may_or_may_not_have_happened() -> None:
    keys = private_keys()
    old = keys.next_value(0)
    keys.put_done(0, old)
    new = keys.next_value(0)
    keys.put_failed(0, new)
    assert keys.read(0, new) == "ok"
    keys.delete_failed(0)
    assert keys.read(0, None) == "ok"


def test_wrong_stale_and_resurrected_values_are_errors_with_samples() -> None:
    keys = private_keys()
    old = keys.next_value(0)
    keys.put_done(0, old)
    new = keys.next_value(0)
    keys.put_done(0, new)
    assert keys.read(0, old) == "stale_value"
    keys.put_done(0, new)
    assert keys.read(0, b"garbage") == "wrong_value"
    keys.delete_done(0)
    assert keys.read(0, new) == "resurrected"
    assert keys.counts["wrong_value"] == keys.counts["stale_value"] == 1
    assert len(keys.samples) == 3
    assert "garbage" in keys.samples[1] and "expected one of" in keys.samples[1]


def test_stale_reads_are_allowed_when_the_run_reads_stale() -> None:
    keys = private_keys(stale_ok=True)
    old = keys.next_value(0)
    keys.put_done(0, old)
    keys.put_done(0, keys.next_value(0))
    assert keys.read(0, old) == "stale_read"
    assert keys.read(0, b"garbage") == "wrong_value"


def test_percentiles_use_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) == 0.0
    summary = latency_summary([0.001, 0.002, 0.003, 0.1])
    assert summary["count"] == 4
    assert summary["p50"] == 2.0
    assert summary["max"] == 100.0


def test_histogram_counts_every_value_once_in_its_bucket() -> None:
    values = [0.000001, 0.0005, 0.001, 0.002, 0.5, 3.0, 1000.0]
    hist = histogram(values)
    assert sum(hist["counts"]) == len(values)
    # 1000 s is beyond the last bound (100 s): it lands in the overflow bucket.
    assert len(hist["counts"]) == len(hist["bounds_ms"]) + 1
    assert hist["counts"][-1] == 1
    # A value lands in the first bucket whose upper edge is >= it; trailing empties go.
    one_ms = histogram([0.001])
    assert one_ms["bounds_ms"][-1] == 1.0
    assert one_ms["counts"][-1] == 1
    assert sum(one_ms["counts"]) == 1
