"""``Client``: the blocking gRPC client.

One channel per node address, created on first use and reused by every call
(and every thread: a Client may be shared). Calls are retried, redirected to
the leader and bounded by a deadline as ``lrukv_client.retry`` describes.

>>> with Client("127.0.0.1:50051") as kv:  # doctest: +SKIP
...     kv.put("key-a", b"Hello, key-value store!")
...     kv.get("key-a")
b'Hello, key-value store!'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

import grpc

from lrukv_client._auth import check_token, with_token
from lrukv_client._grpc_common import (
    ChannelOptions,
    channel_credentials,
    channel_options,
    cluster_status,
    consistency_pb,
    error_from_rpc,
    server_info,
    store_stats,
    ttl_of,
)
from lrukv_client._targets import Targets, parse_servers
from lrukv_client._tracing import TraceContextInterceptor, otel_installed
from lrukv_client.errors import (
    DeadlineExceeded,
    KeyNotFound,
    LrukvClientError,
    NotLeader,
    Unreachable,
)
from lrukv_client.models import (
    ClusterStatus,
    Consistency,
    ServerInfo,
    StoreStats,
    TLSConfig,
    check_key,
    check_ttl,
    to_bytes,
)
from lrukv_client.retry import Retry
from lrukv_client.stream import ItemStream
from lrukv_proto.v1 import kv_pb2, kv_pb2_grpc

__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_GRPC_SERVER", "Client"]

DEFAULT_GRPC_PORT = 50051
DEFAULT_GRPC_SERVER = f"127.0.0.1:{DEFAULT_GRPC_PORT}"

R = TypeVar("R")
# An opened item stream: the call (to cancel it), its iterator, the first item, the node.
_OpenStream = tuple[grpc.Call, Iterator[kv_pb2.KeyValue], kv_pb2.KeyValue | None, str]


class Client:
    """A blocking lrukv client over gRPC.

    ``servers``: ``"host:port"``, a comma-separated list or a sequence of seeds;
    the client starts with the first, follows the leader it is pointed to, and
    moves to the next seed when a node is unavailable.
    ``timeout``: default deadline of each call in seconds, retries included;
    None takes the retry policy's (10 s unless ``retry`` says otherwise).
    ``retry``: a :class:`~lrukv_client.retry.Retry`; ``Retry.disabled()`` for none.
    ``tls``: a :class:`~lrukv_client.models.TLSConfig` turns TLS on.
    ``consistency``: the default level of reads.
    ``extra_options``: extra gRPC channel arguments; they override ours.
    ``token``: a bearer token, sent as ``authorization: Bearer <token>`` metadata
    on every call (for a server with ``--auth-policy``).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = DEFAULT_GRPC_SERVER,
        *,
        timeout: float | None = None,
        retry: Retry | None = None,
        tls: TLSConfig | None = None,
        consistency: Consistency | str = Consistency.DEFAULT,
        extra_options: ChannelOptions = (),
        token: str | None = None,
    ) -> None:
        self._token = check_token(token)
        self._targets = Targets(parse_servers(servers, default_port=DEFAULT_GRPC_PORT))
        self._timeout = timeout
        self._retry = retry if retry is not None else Retry()
        self._consistency = Consistency.parse(consistency)
        self._options = channel_options(tls, extra_options)
        self._credentials = channel_credentials(tls) if tls is not None else None
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[str, kv_pb2_grpc.KVStub] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every channel. Open item streams are cancelled. Idempotent."""
        with self._lock:
            self._closed = True
            channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for channel in channels:
            channel.close()

    @property
    def server(self) -> str:
        """The address the next call goes to (the leader, once one was followed)."""
        return self._targets.current

    def __repr__(self) -> str:
        return f"Client(server={self.server!r}, seeds={self._targets.seeds!r})"

    # -- the API ------------------------------------------------------------------

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
        request = kv_pb2.PutRequest(key=check_key(key), value=to_bytes(value))
        ttl = check_ttl(ttl)
        if ttl is not None:
            request.ttl_seconds = ttl
        self._unary(
            lambda stub, t: stub.Put(request, timeout=t), key=key, write=True, timeout=timeout
        )

    def get(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Return the value of ``key``; raise ``KeyNotFound`` if it is absent."""
        request = kv_pb2.GetRequest(key=check_key(key), consistency=self._level(consistency))
        response = self._unary(
            lambda stub, t: stub.Get(request, timeout=t), key=key, timeout=timeout
        )
        return response.value

    def delete(self, key: str, *, timeout: float | None = None) -> bool:
        """Remove ``key``; return whether it existed. An absent key is no error."""
        request = kv_pb2.DeleteRequest(key=check_key(key))
        response = self._unary(
            lambda stub, t: stub.Delete(request, timeout=t), key=key, write=True, timeout=timeout
        )
        return response.existed

    def keys(
        self, *, consistency: Consistency | str | None = None, timeout: float | None = None
    ) -> list[str]:
        """Every live key, in one message."""
        request = kv_pb2.GetKeysRequest(consistency=self._level(consistency))
        response = self._unary(lambda stub, t: stub.GetKeys(request, timeout=t), timeout=timeout)
        return list(response.keys)

    def servers(self, *, timeout: float | None = None) -> list[ServerInfo]:
        """The nodes of the cluster, as the node asked knows them."""
        request = kv_pb2.GetServersRequest()
        response = self._unary(lambda stub, t: stub.GetServers(request, timeout=t), timeout=timeout)
        return [server_info(server) for server in response.servers]

    def cluster_status(
        self, *, digest: bool = False, timeout: float | None = None
    ) -> ClusterStatus:
        """The node's view of the cluster (role, term, indexes, leader, members);
        with *digest*, its store's digest too. Asks the node it is pointed at."""
        request = kv_pb2.GetServersRequest(digest=digest)
        response = self._unary(lambda stub, t: stub.GetServers(request, timeout=t), timeout=timeout)
        return cluster_status(response)

    def add_member(self, raft_addr: str, *, timeout: float | None = None) -> None:
        """Add a voting member by its Raft address (``host:port``)."""
        request = kv_pb2.AddMemberRequest(raft_addr=raft_addr)
        self._unary(lambda stub, t: stub.AddMember(request, timeout=t), timeout=timeout)

    def remove_member(self, raft_addr: str, *, timeout: float | None = None) -> None:
        """Remove a voting member by its Raft address."""
        request = kv_pb2.RemoveMemberRequest(raft_addr=raft_addr)
        self._unary(lambda stub, t: stub.RemoveMember(request, timeout=t), timeout=timeout)

    def stats(self, *, timeout: float | None = None) -> StoreStats:
        """The node's size, capacity, limits and counters."""
        request = kv_pb2.StatsRequest()
        response = self._unary(lambda stub, t: stub.Stats(request, timeout=t), timeout=timeout)
        return store_stats(response)

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
        request = kv_pb2.TtlRequest(key=check_key(key), consistency=self._level(consistency))
        response = self._unary(
            lambda stub, t: stub.Ttl(request, timeout=t), key=key, timeout=timeout
        )
        return ttl_of(response)

    def exists(
        self,
        key: str,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Whether ``key`` is present (not a use, like :meth:`ttl`)."""
        try:
            self.ttl(key, consistency=consistency, timeout=timeout)
        except KeyNotFound:
            return False
        return True

    def items(
        self,
        *,
        consistency: Consistency | str | None = None,
        timeout: float | None = None,
        stream_timeout: float | None = None,
    ) -> ItemStream:
        """Stream every live ``(key, value)``, shard by shard.

        Opening the stream (up to its first item) is retried like any read and
        bounded by ``timeout``. After the first item a failure is raised from the
        iterator, not retried: restarting would repeat items. ``stream_timeout``
        bounds the whole stream (None: no limit). Close the returned
        :class:`~lrukv_client.stream.ItemStream` to stop early.
        """
        request = kv_pb2.GetKeysValuesRequest(consistency=self._level(consistency))

        def open_stream(attempt_timeout: float | None) -> _OpenStream:
            target = self._targets.current
            call = self._stub(target).GetKeysValues(request, timeout=stream_timeout)
            pending = iter(call)
            try:
                first = _first_item(call.cancel, pending, attempt_timeout, target)
            except LrukvClientError as err:
                self._targets.reached |= not isinstance(err, Unreachable)
                raise
            self._targets.reached = True
            return call, pending, first, target

        call, pending, first, target = self._retry.call_with_retry(
            open_stream,
            timeout=timeout if timeout is not None else self._timeout,
            redirect=self._redirect,
            failover=self._failover,
            reached=self._targets.has_reached,
            seeds=len(self._targets.seeds),
        )
        return ItemStream(_pairs(pending, first, target), call.cancel)

    # -- internals ----------------------------------------------------------------

    def _level(self, consistency: Consistency | str | None) -> kv_pb2.Consistency.ValueType:
        return consistency_pb(self._consistency if consistency is None else consistency)

    def _stub(self, target: str) -> kv_pb2_grpc.KVStub:
        with self._lock:
            if self._closed:
                raise LrukvClientError("the client is closed")
            stub = self._stubs.get(target)
            if stub is None:
                if self._credentials is not None:
                    channel = grpc.secure_channel(target, self._credentials, self._options)
                else:
                    channel = grpc.insecure_channel(target, self._options)
                if otel_installed():  # the caller's trace context goes along
                    channel = grpc.intercept_channel(channel, TraceContextInterceptor())
                self._channels[target] = channel
                stub = self._stubs[target] = with_token(kv_pb2_grpc.KVStub(channel), self._token)
            return stub

    def _unary(
        self,
        invoke: Callable[[kv_pb2_grpc.KVStub, float | None], R],
        *,
        key: str | None = None,
        write: bool = False,
        timeout: float | None = None,
    ) -> R:
        def attempt(attempt_timeout: float | None) -> R:
            target = self._targets.current
            stub = self._stub(target)
            try:
                result = invoke(stub, attempt_timeout)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, target=target, key=key)
                self._targets.reached |= not isinstance(error, Unreachable)
                raise error from exc
            self._targets.reached = True
            return result

        return self._retry.call_with_retry(
            attempt,
            write=write,
            timeout=timeout if timeout is not None else self._timeout,
            redirect=self._redirect,
            failover=self._failover,
            reached=self._targets.has_reached,
            seeds=len(self._targets.seeds),
        )

    def _redirect(self, err: NotLeader) -> bool:
        if not err.leader_rpc:
            return False
        self._targets.follow(err.leader_rpc)
        return True

    def _failover(self, err: LrukvClientError) -> None:
        self._targets.fail_over()


def _first_item(
    cancel: Callable[[], object],
    pending: Iterator[kv_pb2.KeyValue],
    attempt_timeout: float | None,
    target: str,
) -> kv_pb2.KeyValue | None:
    """Wait for the stream's first item (None: the store is empty), at most
    ``attempt_timeout`` seconds: a timer cancels a stream that does not start."""
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        cancel()

    timer = threading.Timer(attempt_timeout, expire) if attempt_timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        return next(pending)
    except StopIteration:
        return None
    except grpc.RpcError as exc:
        if timed_out.is_set():
            raise DeadlineExceeded(f"{target}: no item within {attempt_timeout:.3g} s") from exc
        raise error_from_rpc(exc, target=target) from exc
    finally:
        if timer is not None:
            timer.cancel()


def _pairs(
    pending: Iterator[kv_pb2.KeyValue], first: kv_pb2.KeyValue | None, target: str
) -> Iterator[tuple[str, bytes]]:
    if first is None:
        return
    yield first.key, first.value
    try:
        for item in pending:
            yield item.key, item.value
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, target=target) from exc
