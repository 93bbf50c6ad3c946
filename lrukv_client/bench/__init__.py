"""``lrukv bench``: the load generator, also usable from Python.

>>> from lrukv_client.bench import BenchConfig, run_load, summarize
>>> result = summarize(run_load(BenchConfig(duration=2.0)))  # doctest: +SKIP
>>> result["throughput_ops_s"], result["latency_ms"]["p99"]  # doctest: +SKIP
"""

from lrukv_client.bench.checker import ERROR_KINDS, PrivateKeys
from lrukv_client.bench.config import OPERATIONS, BenchConfig, parse_mix
from lrukv_client.bench.keys import KeyChooser
from lrukv_client.bench.report import RESULT_FORMAT, merged_latencies, render_text, summarize
from lrukv_client.bench.runner import RunOutput, WouldEvict, run_load
from lrukv_client.bench.worker import WorkerStats

__all__ = [
    "ERROR_KINDS",
    "OPERATIONS",
    "RESULT_FORMAT",
    "BenchConfig",
    "KeyChooser",
    "PrivateKeys",
    "RunOutput",
    "WorkerStats",
    "WouldEvict",
    "merged_latencies",
    "parse_mix",
    "render_text",
    "run_load",
    "summarize",
]
