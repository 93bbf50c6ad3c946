"""Batches: the operations and per-key results of ``KVService.get_many`` and
``KVService.write_many``, and the steps both services share.

Semantics (docs/api.md, "Batches"), the same on a single node and in a cluster:

* **Per key.** A key's own problem (an invalid key, a value over the limit, a
  bad TTL) is that key's result; the other keys still apply. With
  ``atomic=True`` a write batch is all or nothing instead: every operation is
  validated first, and the first refusal is raised with nothing applied.
* **In order.** The operations of a write batch are applied in the order given,
  as ONE command (one Raft entry in a cluster; one write-lock hold and one
  durability wait on a single node): a key given twice ends as its last
  operation left it, and ``existed`` of a delete reflects the operations before it.
* **Recency as single calls.** A read batch moves each found key to the front
  of its shard in request order, exactly as that sequence of gets would (in a
  cluster: recorded for the replicated TOUCH, as single gets are).
* **Node errors are the batch's.** NotLeader, Unavailable, LogUnavailable and
  Timeout are raised for the whole call, as for a single call; a write batch
  that raised may or may not have been applied (all of it or none of it).
* **Limits are the caller's.** The transports refuse a batch over the batch
  limits (entries, request bytes) before calling the service. The service
  bounds only the answer of a read batch (``max_bytes``): a found key whose
  value would take the answer past it is answered with BatchTooLarge and left
  unchanged (not moved, read it alone).

"Atomic" means all-or-nothing, not isolation: a concurrent reader may see some
operations of a batch applied and not yet others while the command is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from lrukv.errors import InvalidArgument
from lrukv_server.errors import BatchTooLarge
from lrukv_server.fsm import Batch, Command

__all__ = [
    "DeleteOp",
    "GetResult",
    "PutOp",
    "WriteOp",
    "WriteResult",
    "answer_too_large",
    "bounded_answer",
    "per_key_errors",
    "prepare_writes",
    "write_results",
]

per_key_errors: tuple[type[Exception], ...] = (InvalidArgument, BatchTooLarge)
"""Errors that belong to one key of a batch (InvalidKey, InvalidValue,
ValueTooLarge, InvalidTTL…); anything else is the whole batch's."""


class PutOp(NamedTuple):
    """Store *value* under *key*, expiring after *ttl* seconds (None: never)."""

    key: str
    value: bytes
    ttl: float | None = None


class DeleteOp(NamedTuple):
    """Remove *key* (an absent key is no error)."""

    key: str


WriteOp = PutOp | DeleteOp

# Results and operations are NamedTuples, not dataclasses: a batch makes one per
# key, and a tuple is made in half the time of a frozen dataclass.


class GetResult(NamedTuple):
    """One key of a read batch: ``value`` is None when the key is absent;
    ``error`` is set (and ``value`` None) when the key itself was refused."""

    key: str
    value: bytes | None
    error: Exception | None = None


class WriteResult(NamedTuple):
    """One operation of a write batch: ``existed`` tells a delete whether the key
    was there (always False for a put); ``error`` is set when the operation was
    refused (then nothing was done for it)."""

    key: str
    existed: bool = False
    error: Exception | None = None


def answer_too_large(key: str, limit: int) -> BatchTooLarge:
    """The per-key error of a found key whose value does not fit in the answer."""
    return BatchTooLarge(
        f"the value of {key!r} does not fit in this batch's answer "
        f"(at most {limit} bytes of values); read it alone or in a smaller batch"
    )


def bounded_answer(
    keys: Sequence[str],
    peek: Callable[[str], bytes | None],
    max_bytes: int | None,
    *,
    get: Callable[[str], bytes | None] | None = None,
    value_bound: int = 0,
) -> tuple[list[GetResult], list[str]]:
    """Read each of *keys* (the readers raise a key's own error); return the
    results in order, and the keys found with *peek*, in order: the ones whose
    recency the caller still has to move (or record).

    A found key whose value would take the answer's value bytes past
    *max_bytes* gets BatchTooLarge instead (the keys need no budget: they came
    in the request, which the transport bounds). With *get* (a read that moves
    the key itself), keys are read with it while the budget left is at least
    *value_bound*, the largest value there can be, so no value read that way
    can overflow the answer; the rest are peeked.
    """
    results: list[GetResult] = []
    append = results.append
    peeked: list[str] = []
    budget = max_bytes
    for key in keys:
        moving = get is not None and (budget is None or budget >= value_bound)
        try:
            value = get(key) if moving and get is not None else peek(key)
        except per_key_errors as exc:
            append(GetResult(key, None, exc))
            continue
        if value is not None:
            if budget is not None:
                if len(value) > budget:
                    append(GetResult(key, None, answer_too_large(key, max_bytes or 0)))
                    continue
                budget -= len(value)
            if not moving:
                peeked.append(key)
        append(GetResult(key, value))
    return results, peeked


def prepare_writes(
    ops: Sequence[WriteOp],
    validate: Callable[[WriteOp], Command],
    *,
    atomic: bool,
) -> tuple[Batch | None, list[int], list[WriteResult | None]]:
    """Validate *ops* into one Batch command.

    *validate* turns an operation into its command or raises its per-key error.
    Returns the batch (None when no operation is valid), the position in *ops*
    of each command of the batch, and the results so far: the refused
    operations' results, None where the command's outcome is still to come.
    With *atomic*, the first refusal is raised instead (nothing is made), its
    message prefixed with the operation's position and key.
    """
    commands: list[Command] = []
    positions: list[int] = []
    results: list[WriteResult | None] = []
    for position, op in enumerate(ops):
        try:
            command = validate(op)
        except per_key_errors as exc:
            if atomic:
                # Say which operation: the error's own text may not name it.
                exc.args = (f"operation {position} (key {_key_of(op)!r}): {exc}", *exc.args[1:])
                raise
            results.append(WriteResult(_key_of(op), error=exc))
            continue
        commands.append(command)
        positions.append(position)
        results.append(None)
    return (Batch(tuple(commands)) if commands else None), positions, results


def write_results(
    results: list[WriteResult | None],
    positions: list[int],
    ops: Sequence[WriteOp],
    outcome: object,
) -> list[WriteResult]:
    """Fill *results* from the applied batch's *outcome* (the FSM's tuple of
    per-command results: a delete's removed value, or None)."""
    applied: Sequence[object] = outcome if isinstance(outcome, tuple) else ()
    if len(applied) != len(positions):
        raise RuntimeError(
            f"the batch answered {len(applied)} results for {len(positions)} commands"
        )
    for position, result in zip(positions, applied, strict=True):
        op = ops[position]
        existed = isinstance(op, DeleteOp) and result is not None
        results[position] = WriteResult(op.key, existed=existed)
    return [result for result in results if result is not None]


def _key_of(op: object) -> str:
    key = getattr(op, "key", "")
    return key if isinstance(key, str) else repr(key)
