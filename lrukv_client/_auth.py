"""Bearer tokens: what every client does with ``token=``.

The server (``lrukv-server --auth-policy``) maps a bearer token to a subject and
its role. Over gRPC the token travels as the ``authorization: Bearer <token>``
metadata of every call; over HTTP as the ``Authorization`` header. With a
client certificate (mutual TLS) the server uses the certificate's CN and
ignores the token.
"""

from __future__ import annotations

from lrukv_client.errors import InvalidArgument

__all__ = ["AUTHORIZATION", "bearer", "check_token"]

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
