"""Key validation and the stable shard hash.

Why a stable hash: Python salts ``hash(str)`` per process, so two processes (or
two Raft replicas) would put the same key in different shards and evict
different keys. ``zlib.crc32`` of the UTF-8 bytes is the same everywhere.
"""

from __future__ import annotations

import re
import zlib

from lrukv.errors import InvalidKey

__all__ = ["DEFAULT_MAX_KEY_BYTES", "encode_key", "shard_index"]

DEFAULT_MAX_KEY_BYTES = 1024

# C0 controls and DEL. They break logs, terminals and text protocols (the
# comma-joined key list of the original API), so no transport may store them.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def encode_key(key: object, max_key_bytes: int = DEFAULT_MAX_KEY_BYTES) -> bytes:
    """Validate *key* and return its UTF-8 encoding.

    Cost: O(len(key)). Printable keys, the common case, are checked with one C
    string method; anything else takes the thorough path.

    >>> encode_key("caf\u00e9")
    b'caf\xc3\xa9'
    >>> encode_key("")
    Traceback (most recent call last):
    ...
    lrukv.errors.InvalidKey: key must not be empty
    """
    # isprintable() rules out every control character and lone surrogate, so
    # for most keys only the encoded length is left to check.
    if isinstance(key, str) and key.isprintable():
        encoded = key.encode()
        if 0 < len(encoded) <= max_key_bytes:
            return encoded
    return _encode_key_thoroughly(key, max_key_bytes)


def _encode_key_thoroughly(key: object, max_key_bytes: int) -> bytes:
    if not isinstance(key, str):
        raise InvalidKey(f"key must be str, not {type(key).__name__}")
    if not key:
        raise InvalidKey("key must not be empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKey(f"key is not valid UTF-8 (lone surrogate at {exc.start})") from None
    if len(encoded) > max_key_bytes:
        raise InvalidKey(f"key is {len(encoded)} bytes; the limit is {max_key_bytes}")
    match = _CONTROL.search(key)
    if match is not None:
        raise InvalidKey(f"key contains control character {match.group()!r} at {match.start()}")
    return encoded


def shard_index(encoded_key: bytes, shards: int) -> int:
    """Return the shard of a key from its UTF-8 bytes: the same in every process.

    >>> shard_index(b"key-a", 10)
    6
    """
    return zlib.crc32(encoded_key) % shards
