"""``lrukv mget``, ``mput``, ``export`` and ``import``: many keys per command.

``mget``/``mput`` are one batch (split in requests under the server's limit by
the SDK). ``export FILE`` streams every item into an NDJSON file
(``lrukv_client.cli.dump``); ``import FILE`` reads one back with ``put_many``,
a few batches in flight, and reports every line it could not store with its
line number: a store moves whole, byte for byte, or the command says what did
not (exit 2).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from lrukv_client import AnyClient, BatchResult, LrukvClientError, ServerError
from lrukv_client.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    ConsistencyChoice,
    Settings,
    errors_to_exit_codes,
    fail,
    printable,
    value_json,
)
from lrukv_client.cli.dump import BadLine, DumpItem, encode_item, parse_line

__all__ = ["ImportReport", "export", "export_items", "import_", "import_lines", "mget", "mput"]

_SHOWN_REFUSALS = 100  # lines reported one by one; the count covers every one
_WRITE_EVERY = 1000  # lines per write() of an export

ConsistencyOption = Annotated[
    ConsistencyChoice,
    typer.Option("--consistency", "-c", help="stale (any node), default (leader), linearizable."),
]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Progress bar on stderr (default: on a terminal)."
    ),
]


def _echo_json(data: object) -> None:
    import json  # noqa: PLC0415 - only --json needs it here

    typer.echo(json.dumps(data, ensure_ascii=False))


# -- mget / mput -------------------------------------------------------------------------


def mget(
    ctx: typer.Context,
    *,
    keys: Annotated[list[str], typer.Argument(help="The keys.", show_default=False)],
    consistency: ConsistencyOption = ConsistencyChoice.default,
) -> None:
    """Print the values of many keys, one "KEY<TAB>VALUE" line each (the value as
    text when printable UTF-8, else "base64:..."), in the order given. Absent keys
    are named on stderr and make the exit status 1. --json: one object per key
    with "found" (and "value", "encoding")."""
    settings: Settings = ctx.obj
    with errors_to_exit_codes(), settings.open() as kv:
        results = kv.get_many_results(keys, consistency=consistency.value)
    missing = [r.key for r in results if r.ok and not r.found]
    refused = [r for r in results if not r.ok]
    with errors_to_exit_codes():
        for result in results:
            if settings.json:
                entry: dict[str, Any] = {"key": result.key, "found": result.found}
                if result.value is not None:
                    entry.update(value_json(result.value))
                if result.error is not None:
                    entry["error"] = str(result.error)
                _echo_json(entry)
            elif result.found and result.value is not None:
                typer.echo(f"{result.key}\t{printable(result.value)}")
    if refused:
        fail(EXIT_USAGE, "; ".join(f"{r.key!r}: {r.error}" for r in refused))
    if missing:
        if not settings.json:
            typer.echo(f"lrukv: not found: {', '.join(missing)}", err=True)
        raise typer.Exit(EXIT_NOT_FOUND)


def _pairs_from(args: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise typer.BadParameter(f"{arg!r} is not KEY=VALUE", param_hint="PAIRS")
        # argv was decoded with surrogateescape: get the user's exact bytes back.
        yield key, os.fsencode(value)


def mput(
    ctx: typer.Context,
    *,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE pairs (split at the first '='); none or '-': read "
            "KEY=VALUE lines from stdin.",
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        float | None, typer.Option("--ttl", help="Seconds until the keys expire.")
    ] = None,
    atomic: Annotated[
        bool, typer.Option("--atomic", help="All or nothing: one request, refused whole.")
    ] = False,
) -> None:
    """Store many KEY=VALUE pairs in batches. A refused pair (bad key, value too
    large) is named on stderr, the others are stored, and the exit status is 2."""
    settings: Settings = ctx.obj
    if not pairs or pairs == ["-"]:
        lines = sys.stdin.buffer.read().splitlines()
        items = list(_pairs_from(os.fsdecode(line) for line in lines if line.strip()))
    else:
        items = list(_pairs_from(pairs))
    with errors_to_exit_codes(), settings.open() as kv:
        results = kv.put_many(items, ttl=ttl, atomic=atomic)
    refused = [r for r in results if not r.ok]
    if settings.json:
        _echo_json(
            {
                "stored": len(results) - len(refused),
                "refused": [{"key": r.key, "error": str(r.error)} for r in refused],
            }
        )
    else:
        typer.echo(f"OK {len(results) - len(refused)} stored")
    if refused:
        fail(EXIT_USAGE, "; ".join(f"{r.key!r}: {r.error}" for r in refused))


# -- export / import ---------------------------------------------------------------------


def export_items(
    kv: AnyClient,
    out: IO[str],
    *,
    consistency: str = "default",
    batched: bool = False,
    on_item: Callable[[int], None] | None = None,
) -> int:
    """Write every live item of ``kv`` to ``out`` as NDJSON; return how many.
    ``on_item(count)`` is called every few thousand items (a progress bar).

    By default the items come from the item stream, which reads without using
    the keys. ``batched``: list the keys, then read them with ``get_many``,
    four batches in flight — many times faster over gRPC (whose stream costs
    the client one message per item), but each read is a use: every key becomes
    recently used and counts as a hit. A key deleted between the listing and
    its batch is left out."""
    count = 0
    lines: list[str] = []
    for key, value in _batched_items(kv, consistency) if batched else _streamed(kv, consistency):
        lines.append(encode_item(key, value))
        if len(lines) >= _WRITE_EVERY:
            out.writelines(lines)
            count += len(lines)
            lines.clear()
            if on_item is not None:
                on_item(count)
    out.writelines(lines)
    count += len(lines)
    if on_item is not None:
        on_item(count)
    return count


def _streamed(kv: AnyClient, consistency: str) -> Iterator[tuple[str, bytes]]:
    with kv.items(consistency=consistency) as stream:
        yield from stream


def _batched_items(kv: AnyClient, consistency: str) -> Iterator[tuple[str, bytes]]:
    keys = kv.keys(consistency=consistency)
    size = kv.batch_size
    parts = [keys[start : start + size] for start in range(0, len(keys), size)]
    with concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="lrukv-export") as pool:
        for found in pool.map(lambda part: kv.get_many(part, consistency=consistency), parts):
            yield from found.items()


@dataclass
class ImportReport:
    """What an import did: items stored, and every line refused with why."""

    lines: int = 0
    imported: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _Chunk:
    lines: list[int]
    keys: set[str]
    future: concurrent.futures.Future[list[BatchResult]]


def import_lines(
    kv: AnyClient,
    lines: Iterable[bytes],
    *,
    chunk: int = 1000,
    parallel: int = 4,
    ttl: float | None = None,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Store the items of NDJSON ``lines`` with ``put_many``, ``chunk`` items a
    request and up to ``parallel`` requests in flight; ``ttl`` for the items
    without their own. Every line that is not an item, or that the server
    refuses, is in the report with its line number.

    Order: a chunk that holds a key of a chunk still in flight waits for it, so
    a key given twice ends with its last value, as with one request."""
    report = ImportReport()
    in_flight: deque[_Chunk] = deque()

    def settle(done: _Chunk) -> None:
        results = done.future.result()
        for line, result in zip(done.lines, results, strict=True):
            if result.ok:
                report.imported += 1
            else:
                report.refused.append((line, f"{result.key!r}: {result.error}"))
        if on_chunk is not None:
            on_chunk(report)

    with concurrent.futures.ThreadPoolExecutor(parallel, thread_name_prefix="lrukv-import") as pool:

        def submit(batch: list[tuple[int, DumpItem]]) -> None:
            keys = {item.key for _, item in batch}
            while in_flight and (
                len(in_flight) >= parallel or any(keys & other.keys for other in in_flight)
            ):
                settle(in_flight.popleft())
            entries = [
                (item.key, item.value, item.ttl if item.ttl is not None else ttl)
                for _, item in batch
            ]
            future = pool.submit(kv.put_many, entries)
            in_flight.append(_Chunk([line for line, _ in batch], keys, future))

        try:
            batch: list[tuple[int, DumpItem]] = []
            for number, raw in enumerate(lines, start=1):
                report.lines = number
                if not raw.strip():
                    continue
                try:
                    batch.append((number, parse_line(raw)))
                except BadLine as exc:
                    report.refused.append((number, str(exc)))
                    continue
                if len(batch) >= chunk:
                    submit(batch)
                    batch = []
            if batch:
                submit(batch)
            while in_flight:
                settle(in_flight.popleft())
        except BaseException:
            for pending in in_flight:
                pending.future.cancel()
            raise
    report.refused.sort()
    return report


def export(
    ctx: typer.Context,
    *,
    file: Annotated[str, typer.Argument(help="The NDJSON file to write; '-': stdout.")],
    consistency: ConsistencyOption = ConsistencyChoice.default,
    batched: Annotated[
        bool,
        typer.Option(
            "--batched",
            help="Read with GetKeys + GetMany batches instead of the item stream: much "
            "faster over gRPC, but every key becomes recently used and counts as a hit.",
        ),
    ] = False,
    progress: ProgressOption = None,
) -> None:
    """Write every key and value to FILE, one {"key": ..., "value": <base64>} line
    each (exact bytes; TTLs are not exported). The count goes to stderr."""
    settings: Settings = ctx.obj
    started = time.perf_counter()
    with errors_to_exit_codes(), settings.open() as kv, _output(file) as out:
        total = _store_size(kv)
        with _bar(progress, "export", total, "items") as advance:
            count = export_items(
                kv, out, consistency=consistency.value, batched=batched, on_item=advance
            )
    seconds = time.perf_counter() - started
    if settings.json:
        _echo_json({"exported": count, "file": file, "seconds": round(seconds, 3)})
    else:
        typer.echo(f"exported {count:,} items to {file} in {seconds:.1f} s", err=True)


def import_(
    ctx: typer.Context,
    *,
    file: Annotated[str, typer.Argument(help="The NDJSON file to read; '-': stdin.")],
    ttl: Annotated[
        float | None,
        typer.Option("--ttl", help="Seconds until the imported keys expire (lines' own ttl win)."),
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, max=64, help="Batches in flight at a time.")
    ] = 4,
    progress: ProgressOption = None,
) -> None:
    """Store every item of an NDJSON FILE (as `lrukv export` writes it). Lines that
    are not items, or that the server refuses, are reported with their line
    number on stderr and make the exit status 2; the others are stored."""
    settings: Settings = ctx.obj
    started = time.perf_counter()
    with (
        errors_to_exit_codes(),
        settings.open() as kv,
        _input(file) as (lines, size),
        _bar(progress, "import", size, "bytes") as advance,
    ):
        counted = _counting(lines, advance)
        report = import_lines(kv, counted, chunk=kv.batch_size, parallel=parallel, ttl=ttl)
    seconds = time.perf_counter() - started
    if settings.json:
        _echo_json(
            {
                "imported": report.imported,
                "lines": report.lines,
                "refused": [{"line": line, "error": why} for line, why in report.refused],
                "seconds": round(seconds, 3),
            }
        )
    else:
        for line, why in report.refused[:_SHOWN_REFUSALS]:
            typer.echo(f"lrukv: line {line}: {why}", err=True)
        if len(report.refused) > _SHOWN_REFUSALS:
            more = len(report.refused) - _SHOWN_REFUSALS
            typer.echo(f"lrukv: ... and {more:,} more refused lines", err=True)
        typer.echo(f"imported {report.imported:,} items from {file} in {seconds:.1f} s", err=True)
    if report.refused:
        fail(EXIT_USAGE, f"{len(report.refused):,} lines of {file} were not imported")


# -- plumbing ------------------------------------------------------------------------------


def _store_size(kv: AnyClient) -> int | None:
    try:
        return kv.stats().size
    except (ServerError, LrukvClientError):
        return None  # a server without Stats: a bar without a total


@contextlib.contextmanager
def _output(file: str) -> Iterator[IO[str]]:
    if file == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        handle = Path(file).open("w", encoding="utf-8", newline="\n")  # noqa: SIM115
    except OSError as exc:
        fail(EXIT_USAGE, f"cannot write {file}: {exc.strerror or exc}")
    with handle:
        yield handle


@contextlib.contextmanager
def _input(file: str) -> Iterator[tuple[Iterator[bytes], int | None]]:
    if file == "-":
        yield iter(sys.stdin.buffer), None
        return
    try:
        handle = Path(file).open("rb")  # noqa: SIM115
    except OSError as exc:
        fail(EXIT_USAGE, f"cannot read {file}: {exc.strerror or exc}")
    with handle:
        size = os.fstat(handle.fileno()).st_size
        yield iter(handle), size or None


def _counting(lines: Iterator[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    """The lines, telling ``advance`` the bytes read so far every few thousand lines."""
    read = 0
    for number, line in enumerate(lines):
        read += len(line)
        if number % 4096 == 0:
            advance(read)
        yield line
    advance(read)


@contextlib.contextmanager
def _bar(
    progress: bool | None, name: str, total: int | None, unit: str
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (on a terminal, or when asked); yields a
    function that sets how far it is."""
    if not (sys.stderr.isatty() if progress is None else progress):
        yield lambda done: None
        return
    from rich.console import Console  # noqa: PLC0415 - only a terminal needs rich
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    amount = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = (TextColumn(f"[bold]lrukv {name}[/]"), BarColumn(), amount, TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(name, total=total)
        yield lambda done: bar.update(task, completed=done)
