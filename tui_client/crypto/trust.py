"""Who is trusted: the policy the machine asks.

The machine asks a :class:`TrustPolicy` whenever trust matters: sharing room keys
with ``only_verified``, accepting forwarded keys and secrets (own verified devices
only), answering key and secret requests, and labelling decrypted events. The
machine's default is :class:`~tui_client.crypto.cross_signing.CrossSigningTrustPolicy`
(the user's decisions, then cross-signing signatures); :class:`LocalTrustPolicy`
uses only what the user decided on this client (:class:`LocalTrust`).
"""

from __future__ import annotations

from typing import Protocol

from .types import Device, DeviceTrust, LocalTrust

__all__ = ["LocalTrustPolicy", "TrustPolicy"]


class TrustPolicy(Protocol):
    """Decides a device's trust. Must be fast and free of I/O beyond the crypto store."""

    def device_trust(self, device: Device) -> DeviceTrust:
        """The trust of ``device`` (the machine's own device never reaches this)."""
        ...


class LocalTrustPolicy:
    """Trust is what the user set on this client: verified, blocked, or neither."""

    def device_trust(self, device: Device) -> DeviceTrust:
        """Verified or blocked by the user's choice; unverified otherwise."""
        if device.local_trust is LocalTrust.BLOCKED:
            return DeviceTrust.BLOCKED
        if device.local_trust is LocalTrust.VERIFIED:
            return DeviceTrust.VERIFIED
        return DeviceTrust.UNVERIFIED
