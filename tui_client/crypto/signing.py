"""Signing JSON and checking signatures (appendices, "Signing JSON")."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from tui_client.protocol.canonical_json import CanonicalJsonError, signable_json

from .backend import CryptoBackend

__all__ = ["sign_json", "verify_signed_json"]


def sign_json(
    obj: Mapping[str, Any], signer: str, key_id: str, sign: Callable[[bytes], str]
) -> dict[str, Any]:
    """A copy of ``obj`` with ``signatures[signer][key_id]`` set to ``sign(canonical bytes)``.

    Existing signatures and ``unsigned`` are kept (and not covered, as the spec says).
    """
    signed = copy.deepcopy(dict(obj))
    signature = sign(signable_json(signed))
    signatures = signed.get("signatures")
    if not isinstance(signatures, dict):
        signatures = {}
    signatures.setdefault(signer, {})[key_id] = signature
    signed["signatures"] = signatures
    return signed


def verify_signed_json(
    backend: CryptoBackend, obj: Mapping[str, Any], signer: str, key_id: str, public_key: str
) -> bool:
    """True if ``obj`` carries a valid Ed25519 signature by ``signer``/``key_id`` under ``public_key``.

    Any malformation (no such signature, not canonical-encodable, bad base64) is ``False``.
    """
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    by_signer = signatures.get(signer)
    if not isinstance(by_signer, Mapping):
        return False
    signature = by_signer.get(key_id)
    if not isinstance(signature, str):
        return False
    try:
        message = signable_json(obj)
    except CanonicalJsonError:
        return False
    return backend.verify_ed25519(public_key, message, signature)
