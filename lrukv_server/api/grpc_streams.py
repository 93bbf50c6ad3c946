"""Bounds on what server streams can hold of the gRPC thread pool.

grpcio's synchronous server runs a server stream on one pool thread from its
first message to its last, and that thread waits while the client is not
taking messages (HTTP/2 flow control). Clients that open ``GetKeysValues`` and
stop reading, without a deadline, would each keep a thread for good; as many as
the pool has threads and every other call waits forever. So:

* at most ``max_streams`` streams run at once (fewer than the pool's threads,
  so unary calls always find one); one more is refused with TooManyStreams
  (RESOURCE_EXHAUSTED, ``too_many_streams``) before it takes a thread for long;
* a stream whose client takes no message for ``send_timeout`` seconds is
  cancelled, which wakes its thread and frees its slot. One watchdog thread
  checks every stream; a stream only stamps the time before each message it
  hands to grpcio, so the cost per item is a clock read.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

from lrukv_server.errors import TooManyStreams

__all__ = ["StreamLimits", "StreamSlot"]

log = logging.getLogger(__name__)


class StreamSlot:
    """One running stream: stamp ``sending_since`` before each message is handed
    to grpcio, clear it when grpcio asks for the next; ``release()`` when done."""

    __slots__ = ("_cancelled", "_limits", "_released", "context", "sending_since")

    def __init__(self, limits: StreamLimits, context: grpc.ServicerContext) -> None:
        self._limits = limits
        self._released = False
        self._cancelled = False
        self.context = context
        self.sending_since: float | None = None

    def release(self) -> None:
        """Give the slot back. Idempotent: called when the handler ends and when
        grpcio reports the call over, whichever comes first."""
        self._limits._release(self)


class StreamLimits:
    """The stream cap and the send-timeout watchdog of one gRPC server."""

    def __init__(self, *, max_streams: int, send_timeout: float, method: str) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, not {max_streams}")
        self.max_streams = max_streams
        self.send_timeout = send_timeout
        self._method = method
        self._lock = threading.Lock()
        self._active: set[StreamSlot] = set()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def acquire(self, context: grpc.ServicerContext) -> StreamSlot:
        """A slot for the stream of *context*; TooManyStreams when none is free."""
        slot = StreamSlot(self, context)
        with self._lock:
            if len(self._active) >= self.max_streams:
                raise TooManyStreams(
                    f"this server runs at most {self.max_streams} item streams (GetKeysValues and "
                    f"Pipeline) at once "
                    f"and all are busy; retry later (--grpc-max-streams)"
                )
            self._active.add(slot)
        # Also when grpcio ends the call (client gone, cancelled, server stopping),
        # in case the handler's generator is not closed at once.
        context.add_callback(slot.release)
        return slot

    def _release(self, slot: StreamSlot) -> None:
        with self._lock:
            if not slot._released:
                slot._released = True
                self._active.discard(slot)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def start(self) -> None:
        """Start the watchdog thread."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name="lrukv-grpc-stream-watchdog", daemon=True
            )
            self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        # A stream is cancelled between send_timeout and send_timeout + interval.
        interval = min(1.0, self.send_timeout / 4)
        while not self._stop.wait(interval):
            self.cancel_stalled(time.monotonic())

    def cancel_stalled(self, now: float) -> int:
        """Cancel every stream whose client took no message for send_timeout; return how many."""
        with self._lock:
            stalled = [
                slot
                for slot in self._active
                if not slot._cancelled
                and slot.sending_since is not None
                and now - slot.sending_since > self.send_timeout
            ]
            for slot in stalled:
                slot._cancelled = True
        for slot in stalled:
            log.warning(
                "cancelled a %s stream to %s: its client took no message for %g s",
                self._method,
                slot.context.peer(),
                self.send_timeout,
            )
            # Wakes the thread waiting for flow control; grpcio then ends the call
            # (the client sees CANCELLED). The slot is freed when the thread is: by
            # the handler's end, or grpcio's call-over callback (run only once the
            # pending send has failed).
            slot.context.cancel()  # type: ignore[no-untyped-call]
        return len(stalled)
