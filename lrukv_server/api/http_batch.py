"""``POST /v1/util/batch``: many gets, puts and deletes in one HTTP request.

Request and answer (docs/api.md, "Batches"; the OpenAPI document has the schemas)::

    {"ops": [{"op": "get", "key": "a"},
             {"op": "put", "key": "b", "value": "<base64>", "ttl": 30.5},
             {"op": "delete", "key": "c"}],
     "atomic": false}
    200 {"results": [{"op": "get", "key": "a", "found": true, "value": "<base64>"},
                     {"op": "put", "key": "b"},
                     {"op": "delete", "key": "c", "existed": false}]}

Values are standard base64 (RFC 4648 section 4, with padding): a JSON string
holds Unicode text, not bytes, and base64 carries any bytes exactly in plain
ASCII, at 4/3 of their size (``/v1/util/items`` uses it too).

Operations run in order, a run at a time: consecutive gets are one
``get_many`` (one read barrier at the request's ``?consistency=``),
consecutive puts and deletes one ``write_many`` (one command: one Raft entry in
a cluster), so a get after a put of the same key sees it. A refused operation
(invalid key, value over the limit, bad ttl) is that operation's ``error``, with
the code a single request would answer; the others still apply.

``"atomic": true`` takes puts and deletes only (a get is 400): all of them are
validated first, and a refusal fails the whole request with that error's status
and body, the operation's position in its message; nothing changes.

Refused whole, before anything changes: a body that is not a batch (400, the
message names the operation), more than ``--max-batch-entries`` operations or
a body over ``--max-batch-bytes`` (413 ``batch_too_large``). A node error
(not the leader, unavailable…) fails the request with its status; runs before
it may have been applied, as with a single write that failed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrukv_server.api.batch_limits import BatchLimits
from lrukv_server.api.status import message_of, status_of
from lrukv_server.errors import InvalidRequest
from lrukv_server.service.base import Consistency, KVService
from lrukv_server.service.batch import DeleteOp, PutOp, WriteOp

__all__ = ["BASE64_PATTERN", "BatchOp", "encode_answer", "parse_batch", "run_batch"]

BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""A value: standard base64 with padding (the OpenAPI document has the same pattern)."""
_BASE64 = re.compile(BASE64_PATTERN)
_OPS = ("get", "put", "delete")


@dataclass(frozen=True, slots=True)
class BatchOp:
    """One parsed operation: ``op`` is get, put or delete; ``write`` the
    service's operation for a put or delete."""

    op: str
    key: str
    write: WriteOp | None = None


def _refuse_constant(name: str) -> float:
    raise InvalidRequest(f"the batch is not valid JSON: {name} is not a JSON number")


def parse_batch(body: bytes, limits: BatchLimits) -> tuple[list[BatchOp], bool]:
    """The operations of a batch body and its ``atomic`` flag. InvalidRequest
    (400) names what is wrong and where; BatchTooLarge (413) for too many ops."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except InvalidRequest:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidRequest(f"the batch is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest('the batch must be a JSON object: {"ops": [...]}')
    ops = document.get("ops")
    if not isinstance(ops, list):
        raise InvalidRequest('the batch needs "ops": an array of operations')
    atomic = document.get("atomic", False)
    if not isinstance(atomic, bool):
        raise InvalidRequest(f'"atomic" must be true or false, not {atomic!r}')
    limits.check_entries(len(ops))
    parsed = [_parse_op(position, op) for position, op in enumerate(ops)]
    if atomic:
        for position, op in enumerate(parsed):
            if op.write is None:
                raise InvalidRequest(
                    f"operation {position} is a get: an atomic batch takes only puts and deletes"
                )
    return parsed, atomic


def _parse_op(position: int, op: object) -> BatchOp:
    where = f"operation {position}"
    if not isinstance(op, dict):
        raise InvalidRequest(f'{where} must be an object like {{"op": "get", "key": "a"}}')
    kind = op.get("op")
    if not isinstance(kind, str) or kind not in _OPS:
        raise InvalidRequest(f'{where}: "op" must be "get", "put" or "delete", not {kind!r}')
    key = op.get("key")
    if not isinstance(key, str):
        raise InvalidRequest(f'{where}: "key" must be a string, not {_json_type(key)}')
    if kind == "get":
        return BatchOp(kind, key)
    if kind == "delete":
        return BatchOp(kind, key, DeleteOp(key))
    value = op.get("value")
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        raise InvalidRequest(
            f'{where}: a put needs "value", the bytes as standard base64 with padding '
            f"(RFC 4648), not {_json_type(value)}"
        )
    return BatchOp(kind, key, PutOp(key, base64.b64decode(value), _ttl(where, op.get("ttl"))))


def _ttl(where: str, ttl: object) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidRequest(f'{where}: "ttl" must be a number of seconds, not {_json_type(ttl)}')
    try:
        return float(ttl)
    except OverflowError:  # an integer past float's range: the service says it is too long
        return float("inf")


def _json_type(value: object) -> str:
    """What a client sent, for a message: its JSON type (and a short excerpt)."""
    if value is None:
        return "missing or null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"a string ({value!r:.40})"
    if isinstance(value, int | float):
        return f"a number ({value!r:.40})"
    return "an array" if isinstance(value, list) else "an object"


def run_batch(
    service: KVService,
    ops: Sequence[BatchOp],
    *,
    atomic: bool,
    consistency: Consistency,
    limits: BatchLimits,
) -> list[dict[str, Any]]:
    """Run *ops* in order, a run of gets or of writes at a time; one result each."""
    results: list[dict[str, Any]] = []
    budget = limits.max_bytes  # the value bytes the answer may still carry
    b64 = base64.b64encode
    start = 0
    while start < len(ops):
        stop = start + 1
        if ops[start].write is None:
            while stop < len(ops) and ops[stop].write is None:
                stop += 1
            keys = [op.key for op in ops[start:stop]]
            for got in service.get_many(keys, consistency=consistency, max_bytes=budget):
                if got.value is not None:
                    budget -= len(got.value)
                    value = b64(got.value).decode("ascii")
                    results.append({"op": "get", "key": got.key, "found": True, "value": value})
                elif got.error is None:
                    results.append({"op": "get", "key": got.key, "found": False})
                else:
                    results.append(
                        {"op": "get", "key": got.key, "found": False, "error": _error(got.error)}
                    )
        else:
            while stop < len(ops) and ops[stop].write is not None:
                stop += 1
            run = ops[start:stop]
            writes = [op.write for op in run if op.write is not None]
            for op, done in zip(run, service.write_many(writes, atomic=atomic), strict=True):
                result: dict[str, Any] = {"op": op.op, "key": done.key}
                if op.op == "delete":
                    result["existed"] = done.existed
                if done.error is not None:
                    result["error"] = _error(done.error)
                results.append(result)
        start = stop
    return results


def _error(exc: Exception) -> dict[str, str]:
    row = status_of(exc)
    return {"code": row.code, "message": message_of(exc, row)}


def encode_answer(results: list[dict[str, Any]]) -> bytes:
    """The 200 body. ASCII-escaped: a key may hold a lone surrogate (refused, but
    echoed back), which has no UTF-8 encoding."""
    return (json.dumps({"results": results}, ensure_ascii=True) + "\n").encode("ascii")
