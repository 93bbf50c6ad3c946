"""How busy the machine was around a benchmark run, for its report.

On a shared machine wall times grow with everyone else's work; a report states
the load so a reader can judge its numbers. ``sample()`` takes the load average
and, where Linux offers it, CPU pressure (/proc/pressure/cpu "some avg60": the
share of the last minute in which some runnable task waited for a CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["caveat", "describe", "sample"]


def sample() -> dict[str, float | None]:
    one, five, fifteen = os.getloadavg()
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen, "cpu_pressure_pct": _pressure()}


def _pressure() -> float | None:
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=", 1) for item in first.split()[1:])
    return float(fields["avg60"]) if "avg60" in fields else None


def describe(before: dict[str, float | None], after: dict[str, float | None]) -> str:
    """One sentence: load averages and CPU pressure before and after, CPU count."""

    def one(snap: dict[str, float | None]) -> str:
        text = f"load {snap['load_1m']:.1f}/{snap['load_5m']:.1f}/{snap['load_15m']:.1f}"
        if snap.get("cpu_pressure_pct") is not None:
            text += f", CPU pressure {snap['cpu_pressure_pct']:.0f}%"
        return text

    return (
        f"{os.cpu_count()} CPUs; before the run {one(before)}, after it {one(after)} "
        "(load = 1/5/15-minute load average; CPU pressure = share of the last minute "
        "in which some task waited for a CPU)"
    )


def caveat(before: dict[str, float | None], after: dict[str, float | None]) -> str | None:
    """A warning for the report when the machine was saturated during the run."""
    pressures = [snap.get("cpu_pressure_pct") for snap in (before, after)]
    loads = [snap["load_1m"] or 0.0 for snap in (before, after)]
    saturated = any(p is not None and p >= 50 for p in pressures) or max(loads) > 2 * (
        os.cpu_count() or 1
    )
    if not saturated:
        return None
    return (
        "**This run shared a saturated machine**: absolute times and rates (and the "
        "targets judged on them) are several times worse than on a quiet one. Ratios "
        "measured in the same run, and CPU times, are the figures to compare."
    )
