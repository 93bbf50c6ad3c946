"""Wrapping a grpcio method handler's behaviour, for the interceptors here.

A ``grpc.ServerInterceptor`` can only hand grpcio a handler; to run code
around a call it returns a copy of the handler whose behaviour is wrapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc

__all__ = ["iterate_within", "wrap_handler"]

T = TypeVar("T")


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    around: Callable[[Callable[..., Any]], Callable[..., Any]],
    around_stream: Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]],
) -> grpc.RpcMethodHandler[Any, Any]:
    """*handler* with its behaviour wrapped: *around* for unary responses,
    *around_stream* for streamed ones. Streamed requests are passed through."""
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=around(handler.unary_unary))  # type: ignore[attr-defined, no-any-return]
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=around_stream(handler.unary_stream))  # type: ignore[attr-defined, no-any-return]
    return handler


def iterate_within(
    items: Iterable[T], enter: Callable[[], object], leave: Callable[[object], None]
) -> Iterator[T]:
    """Yield from *items*, calling ``enter()`` before each step and ``leave(token)``
    after it, so a context (a context variable, a span) holds while the
    producer runs but never across a ``yield`` into grpcio."""
    iterator = iter(items)
    while True:
        token = enter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            leave(token)
        yield item
