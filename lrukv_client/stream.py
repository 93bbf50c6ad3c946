"""``ItemStream``: the iterator ``items()`` returns, which can be closed early."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from lrukv_client._lifecycle import Closing

__all__ = ["ItemStream"]


class ItemStream(Closing, Iterator[tuple[str, bytes]]):
    """An iterator of ``(key, value)`` pairs streamed from the server.

    Stopping early is fine: ``close()`` (or leaving a ``with`` block, or dropping
    the last reference) cancels the stream on the server, which then frees what it
    held for it. Iterating after ``close()`` ends the iteration.

    ``with client.items() as items: for key, value in items: ...``
    """

    def __init__(self, pairs: Iterator[tuple[str, bytes]], cancel: Callable[[], None]) -> None:
        self._pairs = pairs
        self._cancel: Callable[[], None] | None = cancel

    def __iter__(self) -> ItemStream:
        return self

    def __next__(self) -> tuple[str, bytes]:
        if self._cancel is None:
            raise StopIteration
        try:
            return next(self._pairs)
        except BaseException:
            # Exhausted or failed: nothing more will come, release the call now.
            self.close()
            raise

    def close(self) -> None:
        """Cancel the stream if it is still open. Idempotent."""
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()

    def __del__(self) -> None:
        # A caller that breaks out of a for loop and forgets the stream must not
        # leave a call open on the server until the channel closes. During
        # interpreter shutdown the transport may already be gone: ignore that.
        with contextlib.suppress(Exception):
            self.close()
