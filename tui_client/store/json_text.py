"""Compact JSON text for storage: orjson when it is installed, the standard library otherwise.

Both write the same text for what a sync response holds (no spaces, non-ASCII kept,
keys in insertion order; floats in exponent form aside, ``1e-07`` against ``1e-7``, the
same value), so a cache written by one reads the same with the other.
orjson encodes an initial sync's events about 4x faster (bench/ingest.py). What orjson
refuses, the standard library writes as before: keys that are not strings, lone
surrogates (SQLite then refuses them and the store repairs the batch), integers beyond
64 bits, nesting deeper than 254 levels. One difference is kept: a NaN or infinite float
(which only the standard library's decoder reads, from invalid JSON) is written ``null``
by orjson, valid JSON, where the standard library wrote ``NaN`` that SQLite's JSON
functions reject.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the standard library alone: the same text, slower
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "dumps_fields", "stdlib_dumps"]

#: The standard library's encoder with the same settings (what ``dumps`` falls back to).
stdlib_dumps: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False
).encode


def _orjson_dumps(value: Any) -> str:
    try:
        # A str, not orjson's bytes bound through CAST(? AS TEXT): measured faster to insert.
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: see the module documentation
        return stdlib_dumps(value)


#: ``value`` as compact JSON text (see the module documentation).
dumps: Callable[[Any], str] = stdlib_dumps if orjson is None else _orjson_dumps


def _stdlib_dumps_fields(value: Any) -> str:
    return stdlib_dumps(asdict(value))


def _orjson_dumps_fields(value: Any) -> str:
    try:
        # orjson reads a dataclass's fields itself: no asdict() copy first.
        return orjson.dumps(value).decode()
    except TypeError:
        return _stdlib_dumps_fields(value)


#: A dataclass instance as the JSON object of its fields: the text of ``dumps(asdict(value))``.
dumps_fields: Callable[[Any], str] = (
    _stdlib_dumps_fields if orjson is None else _orjson_dumps_fields
)
