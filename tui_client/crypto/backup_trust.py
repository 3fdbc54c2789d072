"""Whether a key backup version may be used: the signatures on its ``auth_data``.

Signed by this device, by one of our verified devices or by our trusted master key,
or its public key is that of a backup key we hold from a trusted source
(:func:`check_backup_trust`, :func:`check_backup_trust_for` reading the machine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .backend import CryptoBackend, IdentityKeys
from .backup_key import BackupKey, BackupVersion
from .signing import verify_signed_json
from .types import Device, DeviceTrust


class SignerKind(StrEnum):
    """Whose key a signature on ``auth_data`` claims to be."""

    THIS_DEVICE = "this_device"
    OWN_DEVICE = "own_device"
    MASTER_KEY = "master_key"
    #: A key ID we cannot attribute (unknown device, other algorithm).
    UNKNOWN = "unknown"


class SignatureState(StrEnum):
    """The result of checking one signature."""

    VALID_TRUSTED = "valid_trusted"
    #: Valid, but the signer is not trusted (an unverified device, an untrusted master key).
    VALID_UNTRUSTED = "valid_untrusted"
    INVALID = "invalid"
    #: Not checked: we do not know the signing key.
    UNKNOWN_SIGNER = "unknown_signer"


class TrustedBy(StrEnum):
    """Why a backup version is trusted."""

    THIS_DEVICE = "this_device"
    VERIFIED_DEVICE = "verified_device"
    MASTER_KEY = "master_key"
    #: Its public key is the one of the backup key we hold (from secret storage or the user).
    PRIVATE_KEY = "private_key"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One signature by our own user on ``auth_data``."""

    key_id: str
    signer: SignerKind
    state: SignatureState
    #: The device, for device signatures.
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class BackupTrust:
    """Whether a backup version may be used, and every signature that was checked."""

    trusted: bool
    trusted_by: tuple[TrustedBy, ...]
    signatures: tuple[SignatureCheck, ...]
    #: Whether the backup key we hold matches the version (``None``: we hold none).
    key_matches: bool | None

    def explain(self) -> str:
        """A sentence for the encryption health screen."""
        if self.trusted:
            reasons = {
                TrustedBy.THIS_DEVICE: "this device",
                TrustedBy.VERIFIED_DEVICE: "a verified device of yours",
                TrustedBy.MASTER_KEY: "your cross-signing identity",
                TrustedBy.PRIVATE_KEY: "the backup key from your recovery",
            }
            return (
                "The backup is trusted: signed by or matching "
                + " and ".join(reasons[r] for r in self.trusted_by)
                + "."
            )
        if self.key_matches is False:
            return "The backup on the server was made with another key than yours."
        if not self.signatures:
            return "The backup is not signed by any of your keys: it is not used."
        if any(s.state is SignatureState.INVALID for s in self.signatures):
            return "The backup's signatures do not verify: it is not used."
        return "The backup is signed only by keys you have not verified: it is not used."


def check_backup_trust(
    version: BackupVersion,
    *,
    backend: CryptoBackend,
    user_id: str,
    device_id: str,
    device_ed25519: str,
    own_devices: Iterable[Device] = (),
    is_verified: Callable[[Device], bool] = lambda _device: False,
    master_key: str | None = None,
    master_key_trusted: bool = False,
    backup_key: BackupKey | None = None,
) -> BackupTrust:
    """Decide whether ``version`` may be used (the spec's two ways), checking every signature.

    Trusted if ``auth_data`` carries a valid signature by this device, by one of
    ``own_devices`` for which ``is_verified`` holds, or by ``master_key`` when
    ``master_key_trusted``; or if ``backup_key`` (held from a trusted source: secret
    storage opened by the user, or typed in) has the version's public key.
    A key ID equal to our master key is only ever checked against the master key
    (device IDs and cross-signing keys share a namespace, and a server could
    invent a device so named). Signatures by other users are ignored.
    """
    auth_data = version.auth_data
    devices = {d.device_id: d for d in own_devices if d.user_id == user_id}
    checks: list[SignatureCheck] = []
    trusted_by: list[TrustedBy] = []
    signatures = auth_data.get("signatures")
    mine = signatures.get(user_id) if isinstance(signatures, Mapping) else None
    if isinstance(mine, Mapping):
        for key_id in sorted(k for k in mine if isinstance(k, str)):
            algorithm, _, name = key_id.partition(":")
            if algorithm != "ed25519" or not name:
                checks.append(
                    SignatureCheck(key_id, SignerKind.UNKNOWN, SignatureState.UNKNOWN_SIGNER)
                )
                continue
            if master_key is not None and name == master_key:
                valid = verify_signed_json(backend, auth_data, user_id, key_id, master_key)
                state = _state(valid, master_key_trusted)
                checks.append(SignatureCheck(key_id, SignerKind.MASTER_KEY, state))
                if state is SignatureState.VALID_TRUSTED:
                    trusted_by.append(TrustedBy.MASTER_KEY)
            elif name == device_id:
                valid = verify_signed_json(backend, auth_data, user_id, key_id, device_ed25519)
                state = _state(valid, True)
                checks.append(SignatureCheck(key_id, SignerKind.THIS_DEVICE, state, name))
                if state is SignatureState.VALID_TRUSTED:
                    trusted_by.append(TrustedBy.THIS_DEVICE)
            elif name in devices:
                device = devices[name]
                valid = verify_signed_json(backend, auth_data, user_id, key_id, device.ed25519)
                state = _state(valid, not device.deleted and is_verified(device))
                checks.append(SignatureCheck(key_id, SignerKind.OWN_DEVICE, state, name))
                if (
                    state is SignatureState.VALID_TRUSTED
                    and TrustedBy.VERIFIED_DEVICE not in trusted_by
                ):
                    trusted_by.append(TrustedBy.VERIFIED_DEVICE)
            else:
                checks.append(
                    SignatureCheck(key_id, SignerKind.UNKNOWN, SignatureState.UNKNOWN_SIGNER)
                )
    key_matches = None if backup_key is None else backup_key.matches(version)
    if key_matches:
        trusted_by.append(TrustedBy.PRIVATE_KEY)
    return BackupTrust(
        trusted=bool(trusted_by),
        trusted_by=tuple(sorted(set(trusted_by), key=list(TrustedBy).index)),
        signatures=tuple(checks),
        key_matches=key_matches,
    )


def _state(valid: bool, signer_trusted: bool) -> SignatureState:
    if not valid:
        return SignatureState.INVALID
    return SignatureState.VALID_TRUSTED if signer_trusted else SignatureState.VALID_UNTRUSTED


class MachineView(Protocol):
    """The parts of :class:`~tui_client.crypto.machine.OlmMachine` the trust check reads."""

    @property
    def user_id(self) -> str:
        """Our user ID."""
        ...

    @property
    def device_id(self) -> str:
        """Our device ID."""
        ...

    @property
    def identity_keys(self) -> IdentityKeys:
        """Our device's keys."""
        ...

    @property
    def backend(self) -> CryptoBackend:
        """The primitives."""
        ...

    def get_user_devices(self, user_id: str) -> list[Device]:
        """A user's known devices."""
        ...

    def device_trust(self, device: Device) -> DeviceTrust:
        """A device's trust under the machine's policy."""
        ...


def check_backup_trust_for(
    machine: MachineView,
    version: BackupVersion,
    *,
    master_key: str | None = None,
    master_key_trusted: bool = False,
    backup_key: BackupKey | None = None,
) -> BackupTrust:
    """:func:`check_backup_trust` with our devices and their trust taken from the machine.

    ``master_key`` (our master public key) and whether it is trusted come from
    the cross-signing layer (issue 5): ours is trusted once this device is
    verified against it, or its private key came from secret storage.
    """
    return check_backup_trust(
        version,
        backend=machine.backend,
        user_id=machine.user_id,
        device_id=machine.device_id,
        device_ed25519=machine.identity_keys.ed25519,
        own_devices=machine.get_user_devices(machine.user_id),
        is_verified=lambda device: machine.device_trust(device) is DeviceTrust.VERIFIED,
        master_key=master_key,
        master_key_trusted=master_key_trusted,
        backup_key=backup_key,
    )
