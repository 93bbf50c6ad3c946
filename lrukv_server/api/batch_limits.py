"""The limits of one batch request, checked by both transports before the
service is called, so a batch over them is refused whole and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from lrukv_server.errors import BatchTooLarge

__all__ = ["BatchLimits"]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """``max_entries`` keys or operations per batch; ``max_bytes`` bytes of the
    request (the gRPC message, the HTTP body), which also bounds the key and
    value bytes a read batch answers (``KVService.get_many(max_bytes=...)``).

    >>> BatchLimits(max_entries=2).check_entries(3)
    Traceback (most recent call last):
    ...
    lrukv_server.errors.BatchTooLarge: the batch has 3 entries; the limit is 2 \
(--max-batch-entries); nothing was done
    """

    max_entries: int = 10_000
    max_bytes: int = 4 << 20

    def check_entries(self, entries: int) -> None:
        """Raise BatchTooLarge if *entries* is over the limit."""
        if entries > self.max_entries:
            raise BatchTooLarge(
                f"the batch has {entries} entries; the limit is {self.max_entries} "
                "(--max-batch-entries); nothing was done"
            )

    def check_bytes(self, size: int) -> None:
        """Raise BatchTooLarge if a request of *size* bytes is over the limit."""
        if size > self.max_bytes:
            raise BatchTooLarge(self.too_many_bytes(size))

    def too_many_bytes(self, size: int, *, at_least: bool = False) -> str:
        """The message for a request of *size* bytes (*at_least*: a chunked body cut off)."""
        more = "more than " if at_least else ""
        return (
            f"the batch request is {more}{size} bytes; the limit is {self.max_bytes} "
            "(--max-batch-bytes); nothing was done"
        )
