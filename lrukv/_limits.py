"""The one validation of a store's sizes, shared by ShardedMap and StoreConfig."""

from __future__ import annotations

from lrukv.errors import InvalidConfig

__all__ = ["validate_sizes"]


def _check_positive(name: str, number: object, *, optional: bool = False) -> None:
    if optional and number is None:
        return
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        kind = "a positive int or None" if optional else "a positive int"
        raise InvalidConfig(f"{name} must be {kind}, not {number!r}")


def validate_sizes(
    shards: object,
    items_per_shard: object,
    max_bytes: object,
    max_key_bytes: object,
    max_value_bytes: object,
) -> None:
    """Raise InvalidConfig naming the first size that is not a sensible positive int.

    >>> validate_sizes(10, 100, None, 1024, None)
    >>> validate_sizes(10, -1, None, 1024, None)
    Traceback (most recent call last):
    ...
    lrukv.errors.InvalidConfig: items_per_shard must be a positive int, not -1
    """
    _check_positive("shards", shards)
    _check_positive("items_per_shard", items_per_shard)
    _check_positive("max_key_bytes", max_key_bytes)
    _check_positive("max_bytes", max_bytes, optional=True)
    _check_positive("max_value_bytes", max_value_bytes, optional=True)
    if isinstance(max_bytes, int) and isinstance(shards, int) and max_bytes < shards:
        raise InvalidConfig(f"max_bytes={max_bytes} leaves less than one byte per shard")
