"""``lrukv bench``: the command line of the load generator (``lrukv_client.bench``)."""

from __future__ import annotations

import enum
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lrukv_client.bench import (
    BenchConfig,
    RunOutput,
    WouldEvict,
    merged_latencies,
    parse_mix,
    render_text,
    run_load,
    summarize,
)
from lrukv_client.cli.common import (
    EXIT_BENCH_ERRORS,
    EXIT_BENCH_WRONG_VALUES,
    EXIT_USAGE,
    ConsistencyChoice,
    Settings,
    errors_to_exit_codes,
    fail,
)

__all__ = ["bench"]


class Distribution(enum.StrEnum):
    uniform = "uniform"
    zipf = "zipf"


def bench(
    ctx: typer.Context,
    *,
    clients: Annotated[
        int, typer.Option("--clients", "-c", min=1, help="Concurrent clients in all.")
    ] = 4,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            "-p",
            min=1,
            help="Worker processes the clients are spread over (CLIENTS must be a multiple). "
            "More than one escapes the GIL of a single load process.",
        ),
    ] = 1,
    mix: Annotated[
        str,
        typer.Option("--mix", help="Operation mix as OP=WEIGHT,...; OP: get, put, delete, keys."),
    ] = "get=80,put=20",
    distribution: Annotated[
        Distribution, typer.Option("--distribution", "-d", help="How shared keys are picked.")
    ] = Distribution.uniform,
    zipf_s: Annotated[
        float, typer.Option("--zipf-s", min=0.01, help="Zipf exponent (skew).")
    ] = 0.99,
    keyspace: Annotated[
        int, typer.Option("--keyspace", "-k", min=1, help="Number of shared keys.")
    ] = 1000,
    value_size: Annotated[
        int, typer.Option("--value-size", "-v", min=0, help="Bytes per written value.")
    ] = 100,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", min=0.001, help="Seconds to run (default 10, or unlimited with --ops)."
        ),
    ] = None,
    ops: Annotated[
        int | None, typer.Option("--ops", "-n", min=1, help="Stop after this many operations.")
    ] = None,
    private_keys: Annotated[
        int, typer.Option("--private-keys", min=1, help="Private keys per client (checked).")
    ] = 16,
    private_ratio: Annotated[
        float,
        typer.Option(
            "--private-ratio", min=0.0, max=1.0, help="Share of operations on private keys."
        ),
    ] = 0.1,
    preload: Annotated[
        bool, typer.Option("--preload/--no-preload", help="Write every shared key first.")
    ] = True,
    consistency: Annotated[
        ConsistencyChoice, typer.Option("--consistency", help="Read consistency.")
    ] = ConsistencyChoice.default,
    key_prefix: Annotated[
        str,
        typer.Option(
            "--prefix", "--key-prefix", help="Prefix of every key the bench writes and deletes."
        ),
    ] = "bench:",
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the run's keys on the server (default: delete).")
    ] = False,
    allow_evictions: Annotated[
        bool,
        typer.Option(
            "--allow-evictions",
            help="Run even if the run's keys do not fit beside the server's existing keys "
            "(the LRU would evict some of them).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random choices.")] = 1,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            min=1,
            help="Keys per client operation: each get, put or delete is one batch of N keys "
            "(counts are per key, latencies per batch).",
        ),
    ] = 1,
    pipeline: Annotated[
        int,
        typer.Option(
            "--pipeline",
            min=0,
            help="Send every operation on a pipeline with N requests in flight (0: off).",
        ),
    ] = 0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the JSON result ('-': nowhere)."),
    ] = Path("lrukv-bench.json"),
    plot: Annotated[
        bool, typer.Option("--plot", help="Also draw PNGs: throughput and latency.")
    ] = False,
    plot_prefix: Annotated[
        Path | None,
        typer.Option("--plot-prefix", help="Path prefix of the PNGs (default: beside --output)."),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    ] = None,
    allow_errors: Annotated[
        bool,
        typer.Option("--allow-errors", help="Exit 0 even if operations failed (e.g. failover)."),
    ] = False,
) -> None:
    """Generate load, measure throughput and latency, and check correctness.

    Every client also writes private keys no one else touches, and every read of
    one must return that client's last acknowledged write; a miss there is an
    eviction (counted, not an error). The run refuses to start if its keys would
    evict the server's own (see --allow-evictions) and deletes its keys at the
    end (see --keep). Exit 5 if a wrong value was read, 6 if operations failed
    (unless --allow-errors), 3 if the server is unreachable.
    """
    settings: Settings = ctx.obj
    if clients % processes:
        raise typer.BadParameter("must be a multiple of --processes", param_hint="--clients")
    if output is not None and str(output) == "-":
        output = None
    # Before the load, not after it: a path that cannot be written must not cost a run.
    for path, option in ((output, "--output"), (plot_prefix if plot else None, "--plot-prefix")):
        problem = _unwritable(path, probe=option == "--output") if path is not None else None
        if problem:
            fail(EXIT_USAGE, f"{option} {path}: {problem}")
    try:
        config = BenchConfig(
            server=settings.server,
            transport=settings.transport,
            timeout=settings.timeout,
            tls=settings.tls,
            consistency=consistency.value,
            threads=clients // processes,
            processes=processes,
            mix=parse_mix(mix),
            distribution=distribution.value,
            zipf_s=zipf_s,
            keyspace=keyspace,
            value_size=value_size,
            duration=duration if duration is not None or ops is not None else 10.0,
            ops=ops,
            private_keys=private_keys,
            private_ratio=private_ratio,
            preload=preload,
            key_prefix=key_prefix,
            keep=keep,
            allow_evictions=allow_evictions,
            seed=seed,
            batch=batch,
            pipeline=pipeline,
        ).validate()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    show_progress = sys.stderr.isatty() if progress is None else progress
    limit = f"{config.ops:,} ops" if config.ops is not None else ""
    if config.duration is not None:
        limit = f"{limit} or {config.duration:g} s" if limit else f"{config.duration:g} s"

    def announce() -> None:
        if not show_progress:
            typer.echo(
                f"lrukv bench: load started: {config.clients} clients for {limit} "
                "(Ctrl-C stops early)",
                err=True,
            )

    try:
        with errors_to_exit_codes():
            run = (
                _run_with_progress(config) if show_progress else run_load(config, on_start=announce)
            )
    except WouldEvict as exc:
        fail(EXIT_USAGE, str(exc))
    result = summarize(run)

    # A file that cannot be written now (disk full, folder removed) still leaves
    # the summary on the terminal: the run is not thrown away.
    write_errors: list[str] = []
    if plot:
        # Lazily: matplotlib costs a second to import and only --plot needs it.
        from lrukv_client.bench.plot import plot_result  # noqa: PLC0415

        prefix = plot_prefix or (output.with_suffix("") if output else Path("lrukv-bench"))
        try:
            result["plots"] = [
                str(p) for p in plot_result(result, merged_latencies(run.workers), prefix)
            ]
        except OSError as exc:
            write_errors.append(f"cannot write the plots {prefix}-*.png: {exc.strerror or exc}")
    if output is not None:
        try:
            output.write_text(json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            write_errors.append(f"cannot write --output {output}: {exc.strerror or exc}")
    if settings.json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(render_text(result))
        for path in result.get("plots", []):
            typer.echo(f"plot: {path}")
        if output is not None and not write_errors:
            typer.echo(f"result: {output}")
    if write_errors:
        fail(EXIT_USAGE, "; ".join(write_errors))
    raise typer.Exit(_exit_code(result, allow_errors))


def _unwritable(path: Path, *, probe: bool) -> str | None:
    """Why ``path`` cannot be written, or None. Folders are never created: a
    typo in a folder name should be an error, not a new folder. ``probe`` opens
    the file for appending (removing it again if it did not exist), which
    catches what permission bits cannot (a read-only mount)."""
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if path.is_dir():
        return "is a folder"
    if not probe:
        return None if os.access(folder, os.W_OK) else f"the folder {folder} is not writable"
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    if not existed:
        path.unlink(missing_ok=True)
    return None


def _exit_code(result: dict[str, Any], allow_errors: bool) -> int:
    if result["correctness"]["errors"]:
        return EXIT_BENCH_WRONG_VALUES
    if result["crashes"] or (result["ops"]["errors"] and not allow_errors):
        return EXIT_BENCH_ERRORS
    if result["interrupted"]:
        return 130
    return 0


def errors_markup(errors: int) -> str:
    """The progress bar's error count: red only when there are errors."""
    text = f"{errors:,} errors"
    return f"[red]{text}[/]" if errors else text


def _run_with_progress(config: BenchConfig) -> RunOutput:
    from rich.console import Console  # noqa: PLC0415 - only a terminal run needs rich
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    total = float(config.ops) if config.ops is not None else float(config.duration or 0)
    unit = "ops" if config.ops is not None else "s"
    columns = (
        TextColumn("[bold]lrukv bench[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[ops]:>10,} ops  {task.fields[rate]:>8,.0f} ops/s"),
        TextColumn("{task.fields[errors]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(
            "load", total=total, ops=0, rate=0.0, errors=errors_markup(0), unit=unit
        )

        def update(done: int, errors: int, seconds: float) -> None:
            completed = float(done) if config.ops is not None else min(seconds, total)
            rate = done / seconds if seconds > 0 else 0.0
            bar.update(task, completed=completed, ops=done, rate=rate, errors=errors_markup(errors))

        return run_load(config, on_progress=update)
