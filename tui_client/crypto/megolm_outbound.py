"""Megolm outbound: each encrypted room's current outbound session, shared with the
devices that may read the next message (``m.room_key`` over Olm), rotated when due
(age, message count, settings, a recipient gone), withheld from blocked or (when
asked) unverified devices and reported as ``m.no_olm`` to devices without a session.

State: a cache of unpickled outbound sessions. The sessions, who got each one and
the pending share requests are in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .backend import (
    IdentityKeys,
    OlmSession,
    OutboundGroupSession,
    PickleError,
)
from .devices import DeviceTracker
from .machine_core import (
    EncryptionError,
    MachineCore,
    MachinePart,
    compact,
)
from .megolm_inbound import inbound_record
from .olm_sessions import OlmSessions
from .requests import (
    ToDeviceKind,
    ToDeviceRequest,
)
from .store_api import (
    DeviceRecord,
    OlmSessionRecord,
    OutboundGroupSessionRecord,
    PendingToDeviceRecord,
    RoomKeyShareRecord,
)
from .types import (
    MEGOLM_ALGORITHM,
    DeviceTrust,
    EncryptionSettings,
    KeyOrigin,
)

__all__ = ["OutboundGroupSessions"]

log = logging.getLogger(__name__)


class OutboundGroupSessions(MachinePart):
    """This device's outbound room keys and their delivery."""

    def __init__(
        self, core: MachineCore, identity: IdentityKeys, devices: DeviceTracker, olm: OlmSessions
    ) -> None:
        super().__init__(core)
        self._identity = identity
        self._devices = devices
        self._olm = olm
        self._outbound_cache: dict[str, tuple[str, OutboundGroupSession]] = {}

    def share_sent(self, pending: PendingToDeviceRecord) -> None:
        """A room key share reached the server: its devices have the key."""
        if pending["kind"] != ToDeviceKind.ROOM_KEY_SHARE:
            return
        meta = pending["meta"]
        shares = self._store.get_room_key_shares(meta["room_id"], meta["session_id"])
        self._store.save_room_key_shares(
            [
                {**s, "state": "sent", "request_id": None}
                for s in shares
                if s["state"] == "pending" and s["request_id"] == pending["request_id"]
            ]
        )

    def share_failed(self, pending: PendingToDeviceRecord) -> None:
        """A share was refused for good: its devices are retried at the next share."""
        meta = pending["meta"]
        if pending["kind"] != ToDeviceKind.ROOM_KEY_SHARE or not (
            "room_id" in meta and "session_id" in meta
        ):
            return
        shares = self._store.get_room_key_shares(meta["room_id"], meta["session_id"])
        self._store.save_room_key_shares(
            [
                {**s, "state": "failed", "request_id": None}
                for s in shares
                if s["request_id"] == pending["request_id"]
            ]
        )

    def share_room_key(
        self,
        room_id: str,
        users: Iterable[str],
        settings: EncryptionSettings | None = None,
    ) -> list[ToDeviceRequest]:
        """Make sure every device of ``users`` has the room's current outbound session.

        ``users`` are the members who may read the next message (the caller derives
        them from membership and history visibility); our own other devices are
        included when our user is. Rotates the session first when it is due (age,
        message count, settings), invalidated, or when a device that received it is
        no longer among the recipients (a member left, a device was deleted or
        blocked). Devices without an Olm session get an ``m.no_olm`` notice (once),
        unless a claim for them is in flight (see :meth:`.OlmSessions.claims_awaited`);
        with ``only_verified``, unverified devices get ``m.unverified`` and blocked
        ones ``m.blacklisted``.

        Returns every to-device request still needed for this session, including
        ones returned before but not yet marked sent. Send them all and mark them
        sent before :meth:`encrypt_room_event`. Call :meth:`get_missing_sessions`
        (and send its claim) first, and make sure :meth:`outdated_users` is empty
        for ``users``, or new devices are missed.
        """
        settings = settings or EncryptionSettings()
        if settings.algorithm != MEGOLM_ALGORITHM:
            raise EncryptionError(f"unsupported room encryption algorithm {settings.algorithm!r}")
        users = list(dict.fromkeys(users))
        self._devices.update_tracked_users(users)
        now = self._clock()
        recipients: dict[tuple[str, str], DeviceRecord] = {}
        refused: dict[tuple[str, str], tuple[DeviceRecord, str]] = {}
        for device in self._devices.sendable_devices(users):
            key = (device["user_id"], device["device_id"])
            trust = self._devices.trust(device)
            if trust is DeviceTrust.BLOCKED:
                refused[key] = (device, "m.blacklisted")
            elif settings.only_verified and trust is not DeviceTrust.VERIFIED:
                refused[key] = (device, "m.unverified")
            else:
                recipients[key] = device

        record = self._store.get_outbound_group_session(room_id)
        session: OutboundGroupSession | None = None
        shares: dict[tuple[str, str], RoomKeyShareRecord] = {}
        if record is not None:
            shares = {
                (s["user_id"], s["device_id"]): s
                for s in self._store.get_room_key_shares(room_id, record["session_id"])
            }
            if self._needs_rotation(record, settings, shares, recipients, now):
                self._drop_pending_shares(record["session_id"])
                record = None
            else:
                try:
                    session = self._outbound_session(record)
                except PickleError:
                    record = None
        if record is None or session is None:
            record, session = self._new_outbound_session(room_id, settings, now)
            shares = {}

        session_id = record["session_id"]
        pending_ids: dict[str, None] = {}
        to_share: list[tuple[DeviceRecord, tuple[OlmSessionRecord, OlmSession]]] = []
        no_olm: list[DeviceRecord] = []
        for key, device in recipients.items():
            share = shares.get(key)
            if share is not None and share["state"] == "sent":
                continue
            if (
                share is not None
                and share["state"] == "pending"
                and share["request_id"]
                and self._store.get_pending_to_device(share["request_id"]) is not None
            ):
                pending_ids[share["request_id"]] = None
                continue
            found = self._olm.preferred_session(device["curve25519"])
            if found is not None:
                to_share.append((device, found))
            elif not self._olm.claiming(device["user_id"], device["device_id"]):
                no_olm.append(device)
            # else: a claim in flight may yet bring the session: no ``m.no_olm`` now (it
            # would say the device can never have the key); the next share sends it.

        requests = [
            self._core.to_device_request(r)
            for r in (self._store.get_pending_to_device(i) for i in pending_ids)
            if r is not None
        ]
        requests.extend(self._send_room_key(room_id, record, session, to_share, settings))
        withheld_request = self._send_withheld(room_id, session_id, shares, refused, no_olm)
        if withheld_request is not None:
            requests.append(withheld_request)
        return requests

    def _drop_pending_shares(self, session_id: str) -> None:
        """A rotated session's undelivered key shares are not worth sending."""
        for pending in self._store.list_pending_to_device():
            if (
                pending["kind"] == ToDeviceKind.ROOM_KEY_SHARE
                and pending["meta"].get("session_id") == session_id
            ):
                self._store.delete_pending_to_device(pending["request_id"])

    def _needs_rotation(
        self,
        record: OutboundGroupSessionRecord,
        settings: EncryptionSettings,
        shares: Mapping[tuple[str, str], RoomKeyShareRecord],
        recipients: Mapping[tuple[str, str], DeviceRecord],
        now: int,
    ) -> bool:
        if record["invalidated"] or self._expired(record, now):
            return True
        if record["settings_key"] != settings.key():
            return True
        return any(
            s["state"] in ("sent", "pending") and key not in recipients for key, s in shares.items()
        )

    @staticmethod
    def _expired(record: OutboundGroupSessionRecord, now: int) -> bool:
        return (
            now - record["created_ms"] >= record["rotation_period_ms"]
            or record["message_count"] >= record["rotation_period_msgs"]
        )

    def _new_outbound_session(
        self, room_id: str, settings: EncryptionSettings, now: int
    ) -> tuple[OutboundGroupSessionRecord, OutboundGroupSession]:
        session = self._backend.create_outbound_group_session()
        inbound = self._backend.inbound_group_session(session.session_key)
        self._store.save_inbound_group_session(
            inbound_record(
                inbound,
                self._pickle_key,
                room_id,
                sender_key=self._identity.curve25519,
                signing_key=self._identity.ed25519,
                sender_user_id=self._user_id,
                chain=[],
                origin=KeyOrigin.OWN,
                shared_history=settings.shared_history,
                received_ms=now,
            )
        )
        pickle = session.pickle(self._pickle_key)
        record = OutboundGroupSessionRecord(
            room_id=room_id,
            session_id=session.session_id,
            pickle=pickle,
            created_ms=now,
            message_count=0,
            rotation_period_ms=max(1, settings.rotation_period_ms),
            rotation_period_msgs=max(1, settings.rotation_period_msgs),
            settings_key=settings.key(),
            invalidated=False,
        )
        self._store.save_outbound_group_session(record)
        self._outbound_cache[room_id] = (pickle, session)
        log.debug("new outbound session for %s", room_id)
        return record, session

    def _send_room_key(
        self,
        room_id: str,
        record: OutboundGroupSessionRecord,
        session: OutboundGroupSession,
        devices: list[tuple[DeviceRecord, tuple[OlmSessionRecord, OlmSession]]],
        settings: EncryptionSettings,
    ) -> list[ToDeviceRequest]:
        if not devices:
            return []
        room_key = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": record["session_id"],
            "session_key": session.session_key,
            "shared_history": settings.shared_history,
        }
        index = session.message_index
        requests: list[ToDeviceRequest] = []
        size = max(1, self._config.to_device_batch_size)
        for start in range(0, len(devices), size):
            batch = devices[start : start + size]
            messages: dict[str, dict[str, dict[str, Any]]] = {}
            sent_to: list[DeviceRecord] = []
            for device, olm_session in batch:
                encrypted = self._olm.encrypt(device, "m.room_key", room_key, using=olm_session)
                if encrypted is None:
                    continue
                messages.setdefault(device["user_id"], {})[device["device_id"]] = encrypted
                sent_to.append(device)
            if not messages:
                continue
            request = self._core.queue_to_device(
                "m.room.encrypted",
                messages,
                ToDeviceKind.ROOM_KEY_SHARE,
                {"room_id": room_id, "session_id": record["session_id"]},
            )
            self._store.save_room_key_shares(
                [
                    RoomKeyShareRecord(
                        room_id=room_id,
                        session_id=record["session_id"],
                        user_id=d["user_id"],
                        device_id=d["device_id"],
                        curve25519=d["curve25519"],
                        message_index=index,
                        state="pending",
                        request_id=request.request_id,
                        withheld_code=None,
                    )
                    for d in sent_to
                ]
            )
            requests.append(request)
        return requests

    def _send_withheld(
        self,
        room_id: str,
        session_id: str,
        shares: Mapping[tuple[str, str], RoomKeyShareRecord],
        refused: Mapping[tuple[str, str], tuple[DeviceRecord, str]],
        no_olm: list[DeviceRecord],
    ) -> ToDeviceRequest | None:
        messages: dict[str, dict[str, dict[str, Any]]] = {}
        records: list[RoomKeyShareRecord] = []
        for key, (device, code) in refused.items():
            share = shares.get(key)
            if (
                share is not None
                and share["state"] == "withheld"
                and share["withheld_code"] == code
            ):
                continue
            reason = (
                "You have been blocked by the sender"
                if code == "m.blacklisted"
                else "The sender only shares keys with verified devices"
            )
            messages.setdefault(device["user_id"], {})[device["device_id"]] = {
                "algorithm": MEGOLM_ALGORITHM,
                "room_id": room_id,
                "session_id": session_id,
                "sender_key": self._identity.curve25519,
                "code": code,
                "reason": reason,
            }
            records.append(
                RoomKeyShareRecord(
                    room_id=room_id,
                    session_id=session_id,
                    user_id=device["user_id"],
                    device_id=device["device_id"],
                    curve25519=device["curve25519"],
                    message_index=0,
                    state="withheld",
                    request_id=None,
                    withheld_code=code,
                )
            )
        for device in no_olm:
            state = self._olm.peer_state(
                device["curve25519"], device["user_id"], device["device_id"]
            )
            if state["no_olm_sent"]:
                continue
            messages.setdefault(device["user_id"], {})[device["device_id"]] = {
                "algorithm": MEGOLM_ALGORITHM,
                "sender_key": self._identity.curve25519,
                "code": "m.no_olm",
                "reason": "Unable to establish a secure channel",
            }
            self._store.save_olm_peer_state({**state, "no_olm_sent": True})
        if records:
            self._store.save_room_key_shares(records)
        if not messages:
            return None
        return self._core.queue_to_device(
            "m.room_key.withheld",
            messages,
            ToDeviceKind.WITHHELD,
            {"room_id": room_id, "session_id": session_id},
        )

    def invalidate_group_session(self, room_id: str) -> bool:
        """Rotate the room's outbound session at the next share (a member left, a device went).

        Returns ``False`` if the room had no outbound session.
        """
        record = self._store.get_outbound_group_session(room_id)
        if record is None:
            return False
        if not record["invalidated"]:
            self._store.save_outbound_group_session({**record, "invalidated": True})
        return True

    def room_key_shares(self, room_id: str) -> list[RoomKeyShareRecord]:
        """Who got the room's current outbound session (and at which index), or was refused it."""
        record = self._store.get_outbound_group_session(room_id)
        if record is None:
            return []
        return self._store.get_room_key_shares(room_id, record["session_id"])

    def encrypt_room_event(
        self, room_id: str, event_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content for a room event.

        Raises :class:`EncryptionError` unless the room has an outbound session that
        is neither due for rotation nor invalidated and whose shares were all sent:
        call :meth:`share_room_key` (and send its requests) right before. The
        ``m.relates_to`` of ``content`` travels in the clear, as the spec requires.
        """
        record = self._store.get_outbound_group_session(room_id)
        if record is None or record["invalidated"] or self._expired(record, self._clock()):
            raise EncryptionError("no usable room key: call share_room_key first")
        shares = self._store.get_room_key_shares(room_id, record["session_id"])
        if any(s["state"] == "pending" for s in shares):
            raise EncryptionError(
                "the room key has not been delivered yet: send and mark share_room_key's requests"
            )
        session = self._outbound_session(record)
        inner = dict(content)
        relates_to = inner.pop("m.relates_to", None)
        ciphertext = session.encrypt(
            compact({"type": event_type, "content": inner, "room_id": room_id})
        )
        pickle = session.pickle(self._pickle_key)
        self._store.save_outbound_group_session(
            {**record, "pickle": pickle, "message_count": record["message_count"] + 1}
        )
        self._outbound_cache[room_id] = (pickle, session)
        encrypted: dict[str, Any] = {
            "algorithm": MEGOLM_ALGORITHM,
            "sender_key": self._identity.curve25519,
            "ciphertext": ciphertext,
            "session_id": record["session_id"],
            "device_id": self._device_id,
        }
        if relates_to is not None:
            encrypted["m.relates_to"] = relates_to
        return encrypted

    def _outbound_session(self, record: OutboundGroupSessionRecord) -> OutboundGroupSession:
        cached = self._outbound_cache.get(record["room_id"])
        if cached is not None and cached[0] == record["pickle"]:
            return cached[1]
        session = self._backend.outbound_group_session_from_pickle(
            record["pickle"], self._pickle_key
        )
        self._outbound_cache[record["room_id"]] = (record["pickle"], session)
        return session
