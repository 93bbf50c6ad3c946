"""The public methods of every client, written once over a wire and a transport.

:class:`SyncApi` (``Client``, ``HttpClient``) and :class:`AsyncApi`
(``AsyncClient``) define each method as a plan of the request layer
(``lrukv_client._requests``) run by the client's own ``_execute`` — the one
method a transport implements: send one :class:`~lrukv_client._requests.Call`
with retries and redirects, and decode its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from lrukv_client._lifecycle import AsyncClosing, Closing
from lrukv_client._requests import (
    Call,
    ClientCore,
    Plan,
    PutEntry,
    batch_plan,
    drive,
    entry_size,
    exists_plan,
    local_key_error,
    put_entries,
)
from lrukv_client.errors import LrukvClientError
from lrukv_client.models import (
    BatchResult,
    ClusterStatus,
    Consistency,
    ServerInfo,
    StoreStats,
)

__all__ = ["AsyncApi", "PutItems", "SyncApi", "Wire"]

R = TypeVar("R")

PutItems = (
    Mapping[str, bytes | str]
    | Iterable[tuple[str, bytes | str] | tuple[str, bytes | str, float | None]]
)
"""What ``put_many`` takes: a mapping of key to value, or ``(key, value)`` /
``(key, value, ttl)`` tuples (a tuple's ttl overrides the call's ``ttl=``)."""


class Wire(Protocol):
    """What a transport's wire builds (``_grpc_wire.GrpcWire``, ``_http_wire.HttpWire``)."""

    def put(self, key: str, value: bytes | str, ttl: float | None) -> Plan[None]: ...
    def get(self, key: str, level: Consistency) -> Plan[bytes]: ...
    def delete(self, key: str) -> Plan[bool]: ...
    def keys(self, level: Consistency) -> Plan[list[str]]: ...
    def servers(self) -> Plan[list[ServerInfo]]: ...
    def cluster_status(self, digest: bool) -> Plan[ClusterStatus]: ...
    def add_member(self, raft_addr: str) -> Plan[None]: ...
    def remove_member(self, raft_addr: str) -> Plan[None]: ...
    def stats(self) -> Plan[StoreStats]: ...
    def ttl(self, key: str, level: Consistency) -> Plan[float | None]: ...
    def get_many(self, keys: Sequence[str], level: Consistency) -> Call[list[BatchResult]]: ...
    def put_many(self, entries: Sequence[PutEntry], atomic: bool) -> Call[list[BatchResult]]: ...
    def delete_many(self, keys: Sequence[str], atomic: bool) -> Call[list[BatchResult]]: ...


class _Plans:
    """Every method's plan, from the client's wire and settings (shared by both APIs)."""

    _core: ClientCore
    _wire: Wire
    batch_size: int
    batch_bytes: int

    def _keys_plan(
        self,
        op: str,
        keys: Iterable[str],
        send: Callable[[list[str]], Call[list[BatchResult]]],
        atomic: bool,
    ) -> Plan[list[BatchResult]]:
        planned = [local_key_error(op, key) or key for key in keys]
        return batch_plan(
            op,
            planned,
            send,
            str,
            entry_size,
            atomic=atomic,
            max_entries=self.batch_size,
            max_bytes=self.batch_bytes,
        )

    def _get_many_plan(
        self, keys: Iterable[str], consistency: Consistency | str | None
    ) -> Plan[list[BatchResult]]:
        level = self._core.level(consistency)
        return self._keys_plan("get", keys, lambda part: self._wire.get_many(part, level), False)

    def _put_many_plan(
        self, items: PutItems, ttl: float | None, atomic: bool
    ) -> Plan[list[BatchResult]]:
        return batch_plan(
            "put",
            list(put_entries(items, ttl)),
            lambda part: self._wire.put_many(part, atomic),
            lambda entry: entry.key,
            lambda entry: entry_size(entry.key, entry.value),
            atomic=atomic,
            max_entries=self.batch_size,
            max_bytes=self.batch_bytes,
        )

    def _delete_many_plan(self, keys: Iterable[str], atomic: bool) -> Plan[list[BatchResult]]:
        send = lambda part: self._wire.delete_many(part, atomic)  # noqa: E731
        return self._keys_plan("delete", keys, send, atomic)


def found_values(results: Iterable[BatchResult]) -> dict[str, bytes]:
    """``get_many``'s answer: the found keys' values; the first refused key raises."""
    found: dict[str, bytes] = {}
    for result in results:
        if result.error is not None:
            raise result.error
        if result.found and result.value is not None:
            found[result.key] = result.value
    return found


class SyncApi(_Plans, Closing):
    """The blocking API; the client implements ``_execute``."""

    def _execute(self, call: Call[R], timeout: float | None) -> R:
        raise NotImplementedError

    def _drive(self, plan: Plan[R], timeout: float | None) -> R:
        return drive(plan, lambda call: self._execute(call, timeout))

    def put(
        self,
        key: str,
        value: bytes | str,
        *,
        ttl: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Store ``value`` under ``key`` (a ``str`` value is sent as UTF-8), expiring
        after ``ttl`` seconds if given. Returns once the server acknowledged it."""
        self._drive(self._wire.put(key, value, ttl), timeout)

    def get(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Return the value of ``key``; raise ``KeyNotFound`` if it is absent."""
        return self._drive(self._wire.get(key, self._core.level(consistency)), timeout)

    def delete(self, key: str, *, timeout: float | None = None) -> bool:
        """Remove ``key``; return whether it existed. An absent key is no error."""
        return self._drive(self._wire.delete(key), timeout)

    def keys(
        self, *, consistency: Consistency | str | None = None, timeout: float | None = None
    ) -> list[str]:
        """Every live key, in one message."""
        return self._drive(self._wire.keys(self._core.level(consistency)), timeout)

    def servers(self, *, timeout: float | None = None) -> list[ServerInfo]:
        """The nodes of the cluster, as the node asked knows them."""
        return self._drive(self._wire.servers(), timeout)

    def cluster_status(
        self, *, digest: bool = False, timeout: float | None = None
    ) -> ClusterStatus:
        """The node's view of the cluster (role, term, indexes, leader, members);
        with *digest*, its store's digest too. Asks the node it is pointed at."""
        return self._drive(self._wire.cluster_status(digest), timeout)

    def add_member(self, raft_addr: str, *, timeout: float | None = None) -> None:
        """Add a voting member by its Raft address (``host:port``); gRPC only."""
        self._drive(self._wire.add_member(raft_addr), timeout)

    def remove_member(self, raft_addr: str, *, timeout: float | None = None) -> None:
        """Remove a voting member by its Raft address; gRPC only."""
        self._drive(self._wire.remove_member(raft_addr), timeout)

    def stats(self, *, timeout: float | None = None) -> StoreStats:
        """The node's size, capacity, limits and counters."""
        return self._drive(self._wire.stats(), timeout)

    def ttl(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> float | None:
        """Seconds until ``key`` expires, or None if it never does; raise
        ``KeyNotFound`` if it is absent. Not a use: the key's recency and the
        hit/miss counters stay as they were."""
        return self._drive(self._wire.ttl(key, self._core.level(consistency)), timeout)

    def exists(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Whether ``key`` is present (not a use, like :meth:`ttl`)."""
        plan = exists_plan(self._wire.ttl(key, self._core.level(consistency)))
        return self._drive(plan, timeout)

    # -- batches ----------------------------------------------------------------------

    def get_many(
        self,
        keys: Iterable[str],
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> dict[str, bytes]:
        """The values of the ``keys`` that are present (absent keys are not in the
        answer). A refused key (not a valid key) raises its error, e.g.
        ``InvalidArgument``; see :meth:`get_many_results` for per-key results.
        Sent in requests of at most ``batch_size`` keys; ``timeout`` bounds each."""
        return found_values(self.get_many_results(keys, consistency=consistency, timeout=timeout))

    def get_many_results(
        self,
        keys: Iterable[str],
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> list[BatchResult]:
        """One :class:`~lrukv_client.BatchResult` per key, in order (``found``,
        ``value``, or the key's ``error``). Raises only for the whole request."""
        return self._drive(self._get_many_plan(keys, consistency), timeout)

    def put_many(
        self,
        items: PutItems,
        *,
        ttl: float | None = None,
        atomic: bool = False,
        timeout: float | None = None,
    ) -> list[BatchResult]:
        """Store many entries, applied in order (a key given twice ends with its
        last value); one :class:`~lrukv_client.BatchResult` per item, in order.

        A key's own problem (an invalid key, a value over the limit) is that
        item's ``error`` and the others are stored: nothing is raised for it.
        Not atomic: sent in requests of at most ``batch_size`` entries /
        ``batch_bytes`` bytes (smaller if the server's limit is lower), each
        retried like a single write (only under ``retry_writes`` after an
        ambiguous failure). ``atomic=True``: all or nothing, in ONE request that
        raises the first refused item's error (``InvalidArgument``,
        ``ValueTooLarge``…) or ``BatchTooLarge`` over the server's limit.
        """
        return self._drive(self._put_many_plan(items, ttl, atomic), timeout)

    def delete_many(
        self, keys: Iterable[str], *, atomic: bool = False, timeout: float | None = None
    ) -> list[BatchResult]:
        """Remove many keys, in order; one result per key with ``existed``. Split
        and retried as :meth:`put_many`; ``atomic`` as there."""
        return self._drive(self._delete_many_plan(keys, atomic), timeout)


class AsyncApi(_Plans, AsyncClosing):
    """The asyncio API (the same methods as coroutines); the client implements
    ``_execute``. Every method is documented on :class:`SyncApi`."""

    async def _execute(self, call: Call[R], timeout: float | None) -> R:
        raise NotImplementedError

    async def _drive(self, plan: Plan[R], timeout: float | None) -> R:
        """:func:`~lrukv_client._requests.drive`, awaiting each call."""
        try:
            call: Call[Any] = next(plan)
            while True:
                try:
                    result = await self._execute(call, timeout)
                except LrukvClientError as err:
                    call = plan.throw(err)
                else:
                    call = plan.send(result)
        except StopIteration as done:
            value: R = done.value
            return value

    async def put(
        self,
        key: str,
        value: bytes | str,
        *,
        ttl: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Store ``value`` under ``key``; see :meth:`lrukv_client.Client.put`."""
        await self._drive(self._wire.put(key, value, ttl), timeout)

    async def get(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Return the value of ``key``; raise ``KeyNotFound`` if it is absent."""
        return await self._drive(self._wire.get(key, self._core.level(consistency)), timeout)

    async def delete(self, key: str, *, timeout: float | None = None) -> bool:
        """Remove ``key``; return whether it existed."""
        return await self._drive(self._wire.delete(key), timeout)

    async def keys(
        self, *, consistency: Consistency | str | None = None, timeout: float | None = None
    ) -> list[str]:
        """Every live key."""
        return await self._drive(self._wire.keys(self._core.level(consistency)), timeout)

    async def servers(self, *, timeout: float | None = None) -> list[ServerInfo]:
        """The nodes of the cluster."""
        return await self._drive(self._wire.servers(), timeout)

    async def cluster_status(
        self, *, digest: bool = False, timeout: float | None = None
    ) -> ClusterStatus:
        """The node's view of the cluster; see :meth:`lrukv_client.Client.cluster_status`."""
        return await self._drive(self._wire.cluster_status(digest), timeout)

    async def stats(self, *, timeout: float | None = None) -> StoreStats:
        """The node's size, capacity, limits and counters."""
        return await self._drive(self._wire.stats(), timeout)

    async def ttl(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> float | None:
        """Seconds until ``key`` expires, or None; see :meth:`lrukv_client.Client.ttl`."""
        return await self._drive(self._wire.ttl(key, self._core.level(consistency)), timeout)

    async def exists(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Whether ``key`` is present (not a use)."""
        plan = exists_plan(self._wire.ttl(key, self._core.level(consistency)))
        return await self._drive(plan, timeout)

    async def get_many(
        self,
        keys: Iterable[str],
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> dict[str, bytes]:
        """The present keys' values; see :meth:`lrukv_client.Client.get_many`."""
        results = await self.get_many_results(keys, consistency=consistency, timeout=timeout)
        return found_values(results)

    async def get_many_results(
        self,
        keys: Iterable[str],
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> list[BatchResult]:
        """Per-key results; see :meth:`lrukv_client.Client.get_many_results`."""
        return await self._drive(self._get_many_plan(keys, consistency), timeout)

    async def put_many(
        self,
        items: PutItems,
        *,
        ttl: float | None = None,
        atomic: bool = False,
        timeout: float | None = None,
    ) -> list[BatchResult]:
        """Store many entries; see :meth:`lrukv_client.Client.put_many`."""
        return await self._drive(self._put_many_plan(items, ttl, atomic), timeout)

    async def delete_many(
        self, keys: Iterable[str], *, atomic: bool = False, timeout: float | None = None
    ) -> list[BatchResult]:
        """Remove many keys; see :meth:`lrukv_client.Client.delete_many`."""
        return await self._drive(self._delete_many_plan(keys, atomic), timeout)
