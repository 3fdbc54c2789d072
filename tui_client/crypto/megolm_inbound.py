"""Megolm inbound: the room keys we hold and the room events they decrypt. Keys
arrive as ``m.room_key`` (from the session's creator, over Olm), as
``m.forwarded_room_key`` (from our own verified devices we asked), from a key export
file or from the key backup; a copy that reaches further back on the same ratchet
improves what we have, an unauthenticated copy never replaces an authenticated one.
Withheld notices are remembered to explain a missing key.

State: a cache of unpickled sessions, checked against the stored pickle on every
use (a rolled-back transaction needs no reset). The sessions are in the store.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .backend import (
    BackendError,
    InboundGroupSession,
    MegolmDecryptionError,
    PickleError,
    UnknownMessageIndexError,
)
from .devices import DeviceTracker
from .gossip import KeyGossip
from .key_export import KeyExportError, decrypt_key_export, encrypt_key_export
from .machine_core import (
    ORIGINS,
    MachineCore,
    MachinePart,
    Rejected,
    compact,
    loads,
)
from .olm_sessions import OlmSessions
from .store_api import (
    DeviceRecord,
    InboundGroupSessionRecord,
)
from .types import (
    MEGOLM_ALGORITHM,
    DecryptedEvent,
    DecryptionFailure,
    DeviceTrust,
    FailureReason,
    ImportResult,
    KeyOrigin,
    RoomKeyInfo,
    SenderTrust,
    SyncChanges,
    WithheldInfo,
)

__all__ = ["InboundGroupSessions"]

log = logging.getLogger(__name__)

_UNAUTHENTICATED_ORIGINS = frozenset({KeyOrigin.FORWARDED, KeyOrigin.IMPORTED, KeyOrigin.BACKUP})
# Enum members are looked up once here: on Python 3.11 each ``Enum.MEMBER`` access costs
# more than the rest of a dictionary lookup, and the decrypt path makes many.
_OWN = KeyOrigin.OWN.value
_ROOM_KEY = KeyOrigin.ROOM_KEY.value
_SENDER_VERIFIED = SenderTrust.VERIFIED
_SENDER_UNAUTHENTICATED = SenderTrust.UNAUTHENTICATED
_SENDER_UNKNOWN_DEVICE = SenderTrust.UNKNOWN_DEVICE
_SENDER_TRUST = {
    DeviceTrust.VERIFIED: SenderTrust.VERIFIED,
    DeviceTrust.UNVERIFIED: SenderTrust.UNVERIFIED,
    DeviceTrust.BLOCKED: SenderTrust.BLOCKED,
}


class InboundGroupSessions(MachinePart):
    """Room keys received, imported or made here, and decryption with them."""

    def __init__(
        self, core: MachineCore, devices: DeviceTracker, olm: OlmSessions, gossip: KeyGossip
    ) -> None:
        super().__init__(core)
        self._devices = devices
        self._olm = olm
        self._gossip = gossip
        self._inbound_cache: dict[tuple[str, str], tuple[str, InboundGroupSession]] = {}

    def _inbound_session(self, record: InboundGroupSessionRecord) -> InboundGroupSession:
        key = (record["room_id"], record["session_id"])
        cached = self._inbound_cache.get(key)
        if cached is not None and cached[0] == record["pickle"]:
            return cached[1]
        session = self._backend.inbound_group_session_from_pickle(
            record["pickle"], self._pickle_key
        )
        self._core.remember(self._inbound_cache, key, (record["pickle"], session))
        return session

    def receive_room_key(
        self, sender: str, sender_key: str, claimed_ed25519: str, content: Mapping[str, Any]
    ) -> RoomKeyInfo | None:
        if content.get("algorithm") != MEGOLM_ALGORITHM:
            raise Rejected("m.room_key for an unsupported algorithm")
        room_id = content.get("room_id")
        session_id = content.get("session_id")
        session_key = content.get("session_key")
        if not (
            isinstance(room_id, str)
            and room_id.startswith("!")
            and isinstance(session_id, str)
            and isinstance(session_key, str)
        ):
            raise Rejected("malformed m.room_key")
        return self._keep(
            self._backend.inbound_group_session(session_key),
            room_id,
            session_id,
            "m.room_key ",
            sender_key=sender_key,
            signing_key=claimed_ed25519,
            sender_user_id=sender,
            chain=[],
            origin=KeyOrigin.ROOM_KEY,
            shared_history=content.get("shared_history") is True,
        )

    def receive_forwarded_room_key(
        self,
        sender: str,
        forwarder_key: str,
        device: DeviceRecord | None,
        content: Mapping[str, Any],
    ) -> RoomKeyInfo | None:
        if sender != self._user_id:
            raise Rejected("forwarded room key from another user")
        if device is None or device["deleted"]:
            raise Rejected("forwarded room key from an unknown device")
        if self._devices.trust(device) is not DeviceTrust.VERIFIED:
            raise Rejected("forwarded room key from an unverified device")
        room_id = content.get("room_id")
        session_id = content.get("session_id")
        session_key = content.get("session_key")
        original_sender_key = content.get("sender_key")
        claimed = content.get("sender_claimed_ed25519_key")
        chain = content.get("forwarding_curve25519_key_chain", [])
        if content.get("algorithm") != MEGOLM_ALGORITHM or not (
            isinstance(room_id, str)
            and isinstance(session_id, str)
            and isinstance(session_key, str)
            and isinstance(original_sender_key, str)
            and isinstance(claimed, str)
            and isinstance(chain, list)
            and all(isinstance(k, str) for k in chain)
        ):
            raise Rejected("malformed m.forwarded_room_key")
        request = self._store.find_room_key_request(room_id, session_id)
        if request is None or device["device_id"] not in request["recipients"]:
            raise Rejected("forwarded room key we did not ask that device for")
        info = self._keep(
            self._backend.import_inbound_group_session(session_key),
            room_id,
            session_id,
            "forwarded ",
            sender_key=original_sender_key,
            signing_key=claimed,
            sender_user_id=None,
            chain=[*chain, forwarder_key],
            origin=KeyOrigin.FORWARDED,
            shared_history=content.get("shared_history") is True,
        )
        self._gossip.key_arrived(room_id, session_id)
        return info

    def _keep(
        self,
        session: InboundGroupSession,
        room_id: str,
        session_id: str,
        what: str,
        *,
        sender_key: str,
        signing_key: str,
        sender_user_id: str | None,
        chain: list[str],
        origin: KeyOrigin,
        shared_history: bool,
    ) -> RoomKeyInfo | None:
        """Store a session that came as a room key, forwarded, from a file or the backup.

        The session must be the one its ``session_id`` names (``what`` starts the
        refusal); what we had is merged (:meth:`_store_inbound`).
        """
        if session.session_id != session_id:
            raise Rejected(f"{what}session_id does not match its key")
        candidate = inbound_record(
            session,
            self._pickle_key,
            room_id,
            sender_key=sender_key,
            signing_key=signing_key,
            sender_user_id=sender_user_id,
            chain=chain,
            origin=origin,
            shared_history=shared_history,
            received_ms=self._clock(),
        )
        return self._store_inbound(candidate, session)

    def _store_inbound(
        self, candidate: InboundGroupSessionRecord, session: InboundGroupSession
    ) -> RoomKeyInfo | None:
        """Save ``candidate`` if it adds something; merge with what we have."""
        room_id, session_id = candidate["room_id"], candidate["session_id"]
        existing = self._store.get_inbound_group_session(room_id, session_id)
        record: InboundGroupSessionRecord | None
        if existing is None:
            record = candidate
        else:
            record = self._merge_inbound(existing, candidate, session)
        if record is None:
            return None
        self._store.save_inbound_group_session(record)
        pickle = record["pickle"]
        if pickle == candidate["pickle"]:
            self._core.remember(self._inbound_cache, (room_id, session_id), (pickle, session))
        self._store.delete_withheld(room_id, session_id)
        self._gossip.key_arrived(room_id, session_id)
        return RoomKeyInfo(
            room_id=room_id,
            session_id=session_id,
            sender_key=record["sender_key"],
            first_known_index=record["first_known_index"],
            origin=ORIGINS[record["origin"]],
        )

    def _merge_inbound(
        self,
        existing: InboundGroupSessionRecord,
        candidate: InboundGroupSessionRecord,
        session: InboundGroupSession,
    ) -> InboundGroupSessionRecord | None:
        old_origin = ORIGINS[existing["origin"]]
        new_origin = ORIGINS[candidate["origin"]]
        if old_origin is KeyOrigin.OWN:
            return None
        connected = self._ratchets_connected(existing, session)
        if new_origin is KeyOrigin.ROOM_KEY:
            if old_origin in _UNAUTHENTICATED_ORIGINS:
                # The authenticated copy wins; keep the lower index if it is the same ratchet.
                if connected and existing["first_known_index"] < candidate["first_known_index"]:
                    return {
                        **candidate,
                        "pickle": existing["pickle"],
                        "first_known_index": existing["first_known_index"],
                    }
                return candidate
            if existing["sender_key"] != candidate["sender_key"]:
                log.warning("room key for a known session from another device ignored")
                return None
        if candidate["first_known_index"] >= existing["first_known_index"] or not connected:
            return None
        return {
            **existing,
            "pickle": candidate["pickle"],
            "first_known_index": candidate["first_known_index"],
            "backed_up": False,
        }

    def _ratchets_connected(
        self, existing: InboundGroupSessionRecord, session: InboundGroupSession
    ) -> bool:
        """True if both copies are the same Megolm ratchet (compared at the later first index)."""
        try:
            old = self._inbound_session(existing)
        except PickleError:
            return False
        index = max(old.first_known_index, session.first_known_index)
        mine, theirs = old.export_at(index), session.export_at(index)
        if mine is None or theirs is None:
            return False
        return hmac.compare_digest(mine.encode(), theirs.encode())

    def receive_withheld(
        self, sender: str, content: Mapping[str, Any], result: SyncChanges
    ) -> None:
        code = content.get("code")
        if not isinstance(code, str):
            raise Rejected("malformed m.room_key.withheld")
        reason = content.get("reason") if isinstance(content.get("reason"), str) else None
        sender_key = (
            content.get("sender_key") if isinstance(content.get("sender_key"), str) else None
        )
        room_id = content.get("room_id")
        session_id = content.get("session_id")
        if code == "m.no_olm":
            # The sender could not reach us over Olm: offer a fresh session (rate-limited).
            if sender_key is not None:
                self._olm.mark_wedged(sender, sender_key)
            result.withheld.append(WithheldInfo(sender, code, reason, None, None))
            return
        if not isinstance(room_id, str) or not isinstance(session_id, str):
            raise Rejected("m.room_key.withheld without room or session")
        if self._store.get_inbound_group_session(room_id, session_id) is not None:
            return
        self._store.save_withheld(
            {
                "room_id": room_id,
                "session_id": session_id,
                "sender_user_id": sender,
                "sender_key": sender_key,
                "code": code,
                "reason": reason,
                "received_ms": self._clock(),
            }
        )
        result.withheld.append(WithheldInfo(sender, code, reason, room_id, session_id))

    def decrypt_room_event(
        self,
        event: Mapping[str, Any],
        room_id: str,
        *,
        request_key_if_missing: bool | None = None,
    ) -> DecryptedEvent | DecryptionFailure:
        """Decrypt an ``m.room.encrypted`` room event received in ``room_id``.

        Never raises for bad input. The session is found by ``(room_id,
        session_id)`` only (never by the deprecated ``sender_key``/``device_id``).
        A message index is accepted once per event ID (decrypting the same event
        again is fine; another event reusing the index is a replay). When the key
        is missing and ``request_key_if_missing`` (default: the config's
        ``request_missing_keys``), a key request to our own devices is queued.
        """
        content = event.get("content")
        if type(content) is not dict and not isinstance(content, Mapping):
            return DecryptionFailure(FailureReason.MALFORMED, detail="no content")
        if content.get("algorithm") != MEGOLM_ALGORITHM:
            return DecryptionFailure(FailureReason.UNSUPPORTED_ALGORITHM)
        session_id = content.get("session_id")
        ciphertext = content.get("ciphertext")
        sender = event.get("sender")
        if type(session_id) is not str or type(ciphertext) is not str:
            return DecryptionFailure(FailureReason.MALFORMED, detail="no session_id or ciphertext")
        if type(sender) is not str:
            return DecryptionFailure(FailureReason.MALFORMED, session_id, "no sender")
        record = self._store.get_inbound_group_session(room_id, session_id)
        if record is None:
            return self._missing_key(room_id, session_id, sender, content, request_key_if_missing)
        try:
            session = self._inbound_session(record)
            plaintext, index = session.decrypt(ciphertext)
        except UnknownMessageIndexError as exc:
            self._maybe_request_key(room_id, session_id, content, request_key_if_missing)
            withheld = self._store.get_withheld(room_id, session_id)
            return DecryptionFailure(
                FailureReason.UNKNOWN_MESSAGE_INDEX,
                session_id,
                "sent before this device received the key",
                withheld_code=None if withheld is None else withheld["code"],
                withheld_reason=None if withheld is None else withheld["reason"],
                first_known_index=exc.first_known_index,
                message_index=exc.message_index,
            )
        except (MegolmDecryptionError, PickleError) as exc:
            return DecryptionFailure(FailureReason.DECRYPTION_ERROR, session_id, str(exc))
        try:
            payload = loads(plaintext)
        except ValueError:
            return DecryptionFailure(FailureReason.MALFORMED, session_id, "payload is not JSON")
        if type(payload) is not dict:
            return DecryptionFailure(
                FailureReason.MALFORMED, session_id, "payload is not an object"
            )
        inner_type = payload.get("type")
        inner = payload.get("content")
        if type(inner_type) is not str or type(inner) is not dict:
            return DecryptionFailure(
                FailureReason.MALFORMED, session_id, "payload lacks type/content"
            )
        if payload.get("room_id") != room_id:
            return DecryptionFailure(
                FailureReason.MISMATCHED_ROOM, session_id, "encrypted for another room"
            )
        verdict = self._megolm_sender(record, sender)
        if isinstance(verdict, DecryptionFailure):
            return verdict
        trust, device_id = verdict
        event_id = event.get("event_id")
        if type(event_id) is str:
            ts = event.get("origin_server_ts")
            first_event, _ = self._store.record_megolm_index(
                session_id, index, event_id, ts if type(ts) is int else 0
            )
            if first_event != event_id:
                return DecryptionFailure(
                    FailureReason.REPLAY,
                    session_id,
                    f"message index {index} was already used by another event",
                    message_index=index,
                )
        if "m.relates_to" in inner:
            del inner["m.relates_to"]
        relates_to = content.get("m.relates_to")
        if relates_to is not None and isinstance(relates_to, Mapping):
            inner["m.relates_to"] = dict(relates_to)
        return DecryptedEvent(
            inner_type,
            inner,
            room_id,
            sender,
            session_id,
            index,
            record["sender_key"],
            record["signing_key"],
            device_id,
            trust,
            ORIGINS[record["origin"]],
            tuple(record["forwarding_chain"]),
        )

    def _megolm_sender(
        self, record: InboundGroupSessionRecord, sender: str
    ) -> tuple[SenderTrust, str | None] | DecryptionFailure:
        """Who created the session, checked against the event's sender (hot path: no enums looked up)."""
        origin = record["origin"]
        if origin == _OWN:
            if sender != self._user_id:
                return DecryptionFailure(
                    FailureReason.MISMATCHED_SENDER,
                    record["session_id"],
                    "our session, their event",
                )
            return _SENDER_VERIFIED, self._device_id
        signing_key = record["signing_key"]
        device: DeviceRecord | None = None
        for candidate in self._store.get_devices_by_curve_key(record["sender_key"]):
            if candidate["ed25519"] == signing_key:
                device = candidate
                break
        authenticated = origin == _ROOM_KEY
        if device is not None:
            if device["user_id"] != sender:
                return DecryptionFailure(
                    FailureReason.MISMATCHED_SENDER,
                    record["session_id"],
                    "the session belongs to a device of another user",
                )
            if not authenticated:
                return _SENDER_UNAUTHENTICATED, device["device_id"]
            return _SENDER_TRUST[self._devices.trust(device)], device["device_id"]
        owner = record["sender_user_id"]
        if owner is not None and owner != sender:
            return DecryptionFailure(
                FailureReason.MISMATCHED_SENDER,
                record["session_id"],
                "the room key came from another user",
            )
        if not authenticated:
            return _SENDER_UNAUTHENTICATED, None
        if self._config.require_known_device:
            return DecryptionFailure(
                FailureReason.UNKNOWN_DEVICE, record["session_id"], "the sending device is unknown"
            )
        return _SENDER_UNKNOWN_DEVICE, None

    def _missing_key(
        self,
        room_id: str,
        session_id: str,
        sender: str,
        content: Mapping[str, Any],
        request: bool | None,
    ) -> DecryptionFailure:
        withheld = self._store.get_withheld(room_id, session_id)
        if withheld is not None and withheld["sender_user_id"] == sender:
            return DecryptionFailure(
                FailureReason.WITHHELD,
                session_id,
                "the sender withheld the key",
                withheld_code=withheld["code"],
                withheld_reason=withheld["reason"],
            )
        self._maybe_request_key(room_id, session_id, content, request)
        return DecryptionFailure(FailureReason.MISSING_ROOM_KEY, session_id, "key not received")

    def _maybe_request_key(
        self, room_id: str, session_id: str, content: Mapping[str, Any], request: bool | None
    ) -> None:
        if request is None:
            request = self._config.request_missing_keys
        if request:
            sender_key = content.get("sender_key")
            self._gossip.request_room_key(
                room_id, session_id, sender_key if isinstance(sender_key, str) else None
            )

    def export_sessions(self, room_id: str | None = None) -> list[dict[str, Any]]:
        """Every inbound session (of ``room_id``) in the spec's ``ExportedSessionData`` form."""
        exported: list[dict[str, Any]] = []
        for record in self._store.list_inbound_group_sessions(room_id):
            try:
                session = self._inbound_session(record)
            except PickleError:
                log.warning("an inbound session could not be unpickled; not exported")
                continue
            key = session.export_at(session.first_known_index)
            if key is None:
                continue
            exported.append(
                {
                    "algorithm": MEGOLM_ALGORITHM,
                    "room_id": record["room_id"],
                    "session_id": record["session_id"],
                    "session_key": key,
                    "sender_key": record["sender_key"],
                    "sender_claimed_keys": {"ed25519": record["signing_key"]},
                    "forwarding_curve25519_key_chain": list(record["forwarding_chain"]),
                    "shared_history": record["shared_history"],
                }
            )
        return exported

    def export_room_keys(
        self, passphrase: str, *, room_id: str | None = None, rounds: int | None = None
    ) -> str:
        """The encrypted key export file's text (``-----BEGIN MEGOLM SESSION DATA-----``...)."""
        data = compact(self.export_sessions(room_id))
        return encrypt_key_export(data, passphrase, rounds or self._config.export_rounds)

    def import_sessions(
        self, sessions: Iterable[object], *, origin: KeyOrigin = KeyOrigin.IMPORTED
    ) -> ImportResult:
        """Import ``ExportedSessionData`` objects; invalid ones are skipped.

        Imported keys are marked with ``origin`` (their sender is not authenticated)
        and only replace what we have if they reach further back on the same ratchet.
        """
        total = 0
        imported: list[RoomKeyInfo] = []
        for item in sessions:
            total += 1
            try:
                info = self._import_one(item, origin)
            except (BackendError, Rejected, ValueError, TypeError) as exc:
                log.info("skipped an imported session: %s", exc)
                continue
            if info is not None:
                imported.append(info)
        return ImportResult(total=total, imported=len(imported), room_keys=imported)

    def _import_one(self, item: object, origin: KeyOrigin) -> RoomKeyInfo | None:
        if not isinstance(item, Mapping) or item.get("algorithm") != MEGOLM_ALGORITHM:
            raise Rejected("not a Megolm session")
        room_id = item.get("room_id")
        session_id = item.get("session_id")
        session_key = item.get("session_key")
        sender_key = item.get("sender_key")
        claimed = item.get("sender_claimed_keys")
        claimed_ed = claimed.get("ed25519") if isinstance(claimed, Mapping) else None
        chain = item.get("forwarding_curve25519_key_chain", [])
        if not (
            isinstance(room_id, str)
            and isinstance(session_id, str)
            and isinstance(session_key, str)
            and isinstance(sender_key, str)
            and isinstance(claimed_ed, str)
            and isinstance(chain, list)
        ):
            raise Rejected("incomplete session")
        return self._keep(
            self._backend.import_inbound_group_session(session_key),
            room_id,
            session_id,
            "",
            sender_key=sender_key,
            signing_key=claimed_ed,
            sender_user_id=None,
            chain=[k for k in chain if isinstance(k, str)],
            origin=origin,
            shared_history=item.get("shared_history") is True,
        )

    def import_room_keys(self, text: str, passphrase: str) -> ImportResult:
        """Decrypt and import a key export file; raises ``KeyExportError`` (bad file or passphrase)."""
        data = decrypt_key_export(text, passphrase)
        try:
            sessions = json.loads(data)
        except ValueError as exc:
            raise KeyExportError("the decrypted export is not JSON") from exc
        if not isinstance(sessions, list):
            raise KeyExportError("the decrypted export is not a list of sessions")
        return self.import_sessions(sessions)


def inbound_record(
    session: InboundGroupSession,
    pickle_key: bytes,
    room_id: str,
    *,
    sender_key: str,
    signing_key: str,
    sender_user_id: str | None,
    chain: list[str],
    origin: KeyOrigin,
    shared_history: bool,
    received_ms: int,
) -> InboundGroupSessionRecord:
    """The stored form of an inbound Megolm session, whatever brought it (our own
    outbound session, a room key, a forwarded key, a file, the backup: already backed up)."""
    return InboundGroupSessionRecord(
        room_id=room_id,
        session_id=session.session_id,
        pickle=session.pickle(pickle_key),
        sender_key=sender_key,
        signing_key=signing_key,
        sender_user_id=sender_user_id,
        first_known_index=session.first_known_index,
        forwarding_chain=chain,
        origin=origin.value,
        shared_history=shared_history,
        backed_up=origin is KeyOrigin.BACKUP,
        received_ms=received_ms,
    )
