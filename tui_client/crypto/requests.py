"""The requests the machine asks the engine to send, and their kinds.

Every request has a ``request_id``: hand ``to_http()`` to the HTTP layer, then
report the JSON answer with ``OlmMachine.mark_request_as_sent(request_id, body)``
(or ``mark_request_as_failed``). For to-device requests the ``request_id`` is
also the transaction ID in the path, so re-sending after a crash is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from tui_client.protocol.requests import CLIENT_V3, Request

__all__ = [
    "DeviceSigningUploadRequest",
    "KeysClaimRequest",
    "KeysQueryRequest",
    "KeysUploadRequest",
    "OutgoingRequest",
    "RoomMessageRequest",
    "SignatureUploadRequest",
    "ToDeviceKind",
    "ToDeviceRequest",
]


class ToDeviceKind(StrEnum):
    """What a to-device request carries (decides what marking it sent does)."""

    ROOM_KEY_SHARE = "room_key_share"
    WITHHELD = "withheld"
    KEY_REQUEST = "key_request"
    KEY_REQUEST_CANCELLATION = "key_request_cancellation"
    FORWARDED_ROOM_KEY = "forwarded_room_key"
    DUMMY = "dummy"
    SECRET_REQUEST = "secret_request"
    SECRET_SEND = "secret_send"
    VERIFICATION = "verification"
    OTHER = "other"


@dataclass(frozen=True, slots=True, eq=False)
class KeysUploadRequest:
    """``POST /keys/upload``: device keys (first time), one-time and fallback keys."""

    request_id: str
    body: dict[str, Any] = field(repr=False)

    method = "POST"

    @property
    def path(self) -> str:
        """The endpoint path."""
        return f"{CLIENT_V3}/keys/upload"

    def to_http(self) -> Request:
        """The request for ``net``."""
        return Request(self.method, self.path, body=self.body)


@dataclass(frozen=True, slots=True, eq=False)
class KeysQueryRequest:
    """``POST /keys/query`` for the tracked users whose device lists are outdated."""

    request_id: str
    users: tuple[str, ...]
    body: dict[str, Any] = field(repr=False)

    method = "POST"

    @property
    def path(self) -> str:
        """The endpoint path."""
        return f"{CLIENT_V3}/keys/query"

    def to_http(self) -> Request:
        """The request for ``net`` (the server may wait ``timeout`` ms on federation)."""
        timeout = self.body.get("timeout", 0)
        return Request(
            self.method,
            self.path,
            body=self.body,
            timeout=float(timeout) / 1000.0,
            idempotent=True,  # a read
        )


@dataclass(frozen=True, slots=True, eq=False)
class KeysClaimRequest:
    """``POST /keys/claim``: one-time keys for the devices we have no Olm session with."""

    request_id: str
    #: ``{user_id: {device_id: "signed_curve25519"}}``.
    one_time_keys: dict[str, dict[str, str]]
    body: dict[str, Any] = field(repr=False)

    method = "POST"

    @property
    def path(self) -> str:
        """The endpoint path."""
        return f"{CLIENT_V3}/keys/claim"

    def to_http(self) -> Request:
        """The request for ``net``."""
        timeout = self.body.get("timeout", 0)
        return Request(
            self.method,
            self.path,
            body=self.body,
            timeout=float(timeout) / 1000.0,
            idempotent=True,  # a read
        )


@dataclass(frozen=True, slots=True, eq=False)
class ToDeviceRequest:
    """``PUT /sendToDevice/{event_type}/{request_id}``."""

    request_id: str
    event_type: str
    kind: ToDeviceKind
    #: ``{user_id: {device_id: content}}``.
    messages: dict[str, dict[str, dict[str, Any]]] = field(repr=False)

    method = "PUT"

    @property
    def path(self) -> str:
        """The endpoint path (the request ID is the transaction ID)."""
        return (
            f"{CLIENT_V3}/sendToDevice/{quote(self.event_type, safe='')}/"
            f"{quote(self.request_id, safe='')}"
        )

    @property
    def body(self) -> dict[str, Any]:
        """The request body."""
        return {"messages": self.messages}

    def recipient_count(self) -> int:
        """How many devices the request addresses."""
        return sum(len(devices) for devices in self.messages.values())

    def to_http(self) -> Request:
        """The request for ``net``."""
        return Request(self.method, self.path, body=self.body)


@dataclass(frozen=True, slots=True, eq=False)
class SignatureUploadRequest:
    """``POST /keys/signatures/upload``: cross-signing signatures we made."""

    request_id: str
    #: ``{user_id: {key_id: signed object}}`` (device ID, or a master key's public key).
    body: dict[str, Any] = field(repr=False)

    method = "POST"

    @property
    def path(self) -> str:
        """The endpoint path."""
        return f"{CLIENT_V3}/keys/signatures/upload"

    def to_http(self) -> Request:
        """The request for ``net``."""
        return Request(self.method, self.path, body=self.body)


@dataclass(frozen=True, slots=True, eq=False)
class DeviceSigningUploadRequest:
    """``POST /keys/device_signing/upload``: publish our cross-signing public keys.

    The endpoint uses user-interactive authentication (not when the account has no
    master key yet, since v1.11): send ``to_http()``; on a 401 with UIA ``flows``,
    send ``to_http(auth={...})`` with the completed stage (and its ``session``).
    It is not among ``outgoing_requests()``: the caller sends it, then reports with
    ``mark_request_as_sent`` (or ``mark_request_as_failed`` when giving up).
    """

    request_id: str
    #: The keys, without ``auth``.
    body: dict[str, Any] = field(repr=False)

    method = "POST"

    @property
    def path(self) -> str:
        """The endpoint path."""
        return f"{CLIENT_V3}/keys/device_signing/upload"

    def to_http(self, auth: Mapping[str, Any] | None = None) -> Request:
        """The request for ``net``, with the UIA ``auth`` dict when given."""
        body = dict(self.body)
        if auth is not None:
            body["auth"] = dict(auth)
        return Request(self.method, self.path, body=body)


@dataclass(frozen=True, slots=True, eq=False)
class RoomMessageRequest:
    """A room event the machine wants sent (in-room verification).

    ``request_id`` is the transaction ID (stable across retries). In an encrypted
    room, encrypt ``event_type``/``content`` first and send ``m.room.encrypted``
    (``to_http()`` sends it in the clear). Report the answer (``{"event_id": ...}``)
    with ``OlmMachine.mark_request_as_sent``.
    """

    request_id: str
    room_id: str
    event_type: str
    content: dict[str, Any] = field(repr=False)

    method = "PUT"

    @property
    def path(self) -> str:
        """The endpoint path (unencrypted send)."""
        return (
            f"{CLIENT_V3}/rooms/{quote(self.room_id, safe='')}/send/"
            f"{quote(self.event_type, safe='')}/{quote(self.request_id, safe='')}"
        )

    def to_http(self) -> Request:
        """The unencrypted send."""
        return Request(self.method, self.path, body=self.content)


OutgoingRequest = (
    KeysUploadRequest
    | KeysQueryRequest
    | KeysClaimRequest
    | ToDeviceRequest
    | SignatureUploadRequest
)
