"""Run every benchmark in its smoke mode, so none goes stale.

    python benchmarks/run_smoke.py

Each ``benchmarks/bench_*.py`` must accept ``--smoke``: a run of a few seconds
that exercises the whole script (every contender, every output) on tiny inputs
and writes its results to a temporary directory, not to ``benchmarks/results/``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script), "--smoke"], check=False)
        took = time.perf_counter() - started
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"smoke {script.name}: {status} in {took:.1f}s", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"benchmark smoke runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
