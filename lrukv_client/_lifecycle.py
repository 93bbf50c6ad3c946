"""``with`` / ``async with`` for everything that must be closed: clients,
streams, pipelines. Leaving the block closes; leaving it on an exception
``abandon``s (the same as closing, unless the class knows a quicker way out,
such as cancelling a pipeline instead of waiting for its answers)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncClosing", "Closing"]


class Closing:
    """A context manager over ``close()`` (and ``abandon()`` on an exception)."""

    def close(self) -> None:
        raise NotImplementedError

    def abandon(self) -> None:
        """Leave after an exception in the ``with`` block; by default, ``close()``."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


class AsyncClosing:
    """The ``async with`` twin of :class:`Closing`."""

    async def close(self) -> None:
        raise NotImplementedError

    async def abandon(self) -> None:
        """Leave after an exception in the block; by default, ``close()``."""
        await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abandon()
