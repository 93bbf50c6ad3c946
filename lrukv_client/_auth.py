"""Bearer tokens: what every client does with ``token=``.

The server (``lrukv-server --auth-policy``) maps a bearer token to a subject and
its role. Over gRPC the token travels as the ``authorization: Bearer <token>``
metadata of every call; over HTTP as the ``Authorization`` header. With a
client certificate (mutual TLS) the server uses the certificate's CN and
ignores the token.
"""

from __future__ import annotations

import functools
from typing import Any

from lrukv_client.errors import InvalidArgument

__all__ = ["AUTHORIZATION", "bearer", "check_token", "with_token"]

AUTHORIZATION = "authorization"  # gRPC metadata keys are lower case


def check_token(token: str | None) -> str | None:
    """*token* if it can travel in a header, else InvalidArgument; None stays None.

    >>> check_token("abc-123")
    'abc-123'
    >>> check_token("two words")
    Traceback (most recent call last):
    ...
    lrukv_client.errors.InvalidArgument: a bearer token is printable ASCII without spaces
    """
    if token is None:
        return None
    if not isinstance(token, str) or not token:
        raise InvalidArgument("a bearer token must be a non-empty string")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise InvalidArgument("a bearer token is printable ASCII without spaces")
    return token


def bearer(token: str) -> str:
    """The header (and metadata) value for *token*."""
    return f"Bearer {token}"


class _WithMetadata:
    """A gRPC stub whose every method call sends *metadata* (blocking and aio
    stubs alike: both take ``metadata=`` on every call)."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Any:
        method = functools.partial(getattr(self._stub, name), metadata=self._metadata)
        setattr(self, name, method)  # found directly next time
        return method


def with_token(stub: Any, token: str | None) -> Any:
    """*stub* itself without a token; with one, a stub that sends it on every call."""
    if token is None:
        return stub
    return _WithMetadata(stub, ((AUTHORIZATION, bearer(token)),))
