"""Canonical JSON, as the appendices define it ("Signing JSON" > "Canonical JSON").

The shortest UTF-8 encoding with object keys sorted by code point, integers only
(in ``[-(2**53)+1, (2**53)-1]``), no floats. This is the byte string that gets
signed, so any value the grammar does not allow raises instead of being encoded
some other way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["CanonicalJsonError", "canonical_json", "signable_json"]

_MAX_SAFE_INT = 2**53 - 1


class CanonicalJsonError(ValueError):
    """The value cannot be encoded as canonical JSON (a float, a huge integer, a non-string key...)."""


def _check(value: Any, depth: int = 0) -> None:
    if depth > 100:
        raise CanonicalJsonError("nested too deeply")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise CanonicalJsonError("integer out of the canonical range")
        return
    if isinstance(value, float):
        raise CanonicalJsonError("floats are not allowed in canonical JSON")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError("object keys must be strings")
            _check(item, depth + 1)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    raise CanonicalJsonError(f"cannot encode {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (UTF-8, sorted keys, no insignificant space)."""
    _check(value)
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode("utf-8")


def signable_json(obj: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: ``obj`` without ``signatures`` and ``unsigned``, canonical."""
    return canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})
