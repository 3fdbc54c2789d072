"""A fake homeserver that also keeps keys, cross-signing, account data and a key backup.

Enough of ``/keys/*``, ``/room_keys/*`` and ``/user/{u}/account_data`` for the recovery
setup to run against the deterministic UI profile: what the client uploads is what it
reads back, signatures are merged as Synapse merges them. Everything else is
:class:`~tests.ui.fake_world.FakeHomeserver`'s.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import unquote

import httpx

from tui_client.crypto.secret_storage import KeyDescription, SecretStorageKey, compute_key_check

from .fake_world import BASE_TS, ME, FakeHomeserver

SECRET_ROOM = "!secretplans0000000000000000000000000000000003"
#: An encrypted message whose key never came (delivered by the first incremental sync).
LOST_KEY_EVENT = {
    "event_id": "$lostkey000000000000000000000000000000000001",
    "type": "m.room.encrypted",
    "sender": "@bob:example.org",
    "origin_server_ts": BASE_TS + 9_000_000,
    "content": {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEgAAAA",
        "session_id": "lostsession000000000000000000000000000000001",
        "sender_key": "B" * 43,
        "device_id": "BOBDEVICE",
    },
    "unsigned": {},
}

#: The secret storage key of the snapshots: fixed, so the recovery key shown is too.
FIXED_STORAGE_KEY = bytes(range(1, 33))


def fixed_storage_key(_passphrase: str | None) -> SecretStorageKey:
    """Always the same key (a fixed ID and check value too)."""
    iv, mac = compute_key_check(FIXED_STORAGE_KEY, iv=bytes(16))
    description = KeyDescription(key_id="FIXEDKEYID", iv=iv, mac=mac)
    return SecretStorageKey(FIXED_STORAGE_KEY, description, verified=True)


def _merge_signatures(target: dict[str, Any], signed: dict[str, Any]) -> None:
    for user, by_key in signed.get("signatures", {}).items():
        target.setdefault("signatures", {}).setdefault(user, {}).update(by_key)


class RecoveryServer(FakeHomeserver):
    """:class:`FakeHomeserver` plus the keys, backup and account-data endpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.device_keys: dict[str, dict[str, Any]] = {}
        self.cross_signing: dict[str, dict[str, Any]] = {}
        self.one_time_keys = 0
        self.account_data: dict[str, dict[str, Any]] = {}
        self.account_data_writes: list[str] = []
        self.versions: dict[str, dict[str, Any]] = {}
        self.backup: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.extra_events: list[dict[str, Any]] = [copy.deepcopy(LOST_KEY_EVENT)]

    @property
    def current_version(self) -> str | None:
        return max(self.versions, key=int) if self.versions else None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        method = request.method
        body = json.loads(request.content) if request.content else {}
        if path.endswith("/keys/upload"):
            self.requests.append(request)
            if "device_keys" in body:
                self.device_keys[body["device_keys"]["device_id"]] = body["device_keys"]
            self.one_time_keys += len(body.get("one_time_keys", {}))
            return httpx.Response(
                200, json={"one_time_key_counts": {"signed_curve25519": self.one_time_keys}}
            )
        if path.endswith("/keys/query"):
            self.requests.append(request)
            return httpx.Response(200, json=self._query(body))
        if path.endswith("/keys/device_signing/upload"):
            self.requests.append(request)
            for name in ("master_key", "self_signing_key", "user_signing_key"):
                if name in body:
                    self.cross_signing[name] = body[name]
            return httpx.Response(200, json={})
        if path.endswith("/keys/signatures/upload"):
            self.requests.append(request)
            for key_id, signed in body.get(ME, {}).items():
                target = self.device_keys.get(key_id)
                master = self.cross_signing.get("master_key")
                if target is None and master is not None and f"ed25519:{key_id}" in master["keys"]:
                    target = master
                if target is not None:
                    _merge_signatures(target, signed)
            return httpx.Response(200, json={"failures": {}})
        if path.endswith("/devices"):
            self.requests.append(request)
            return httpx.Response(
                200, json={"devices": [{"device_id": d} for d in sorted(self.device_keys)]}
            )
        if "/account_data/" in path and "/rooms/" not in path:
            self.requests.append(request)
            event_type = unquote(path.rsplit("/", 1)[1])
            if method == "PUT":
                self.account_data[event_type] = body
                self.account_data_writes.append(event_type)
                return httpx.Response(200, json={})
            if event_type in self.account_data:
                return httpx.Response(200, json=self.account_data[event_type])
            return httpx.Response(
                404, json={"errcode": "M_NOT_FOUND", "error": "Account data not found"}
            )
        if "/room_keys/" in path:
            self.requests.append(request)
            return self._room_keys(request, body)
        return await super().handle(request)

    async def _sync(self, request: httpx.Request) -> httpx.Response:
        if self.extra_events and request.url.params.get("since"):
            events, self.extra_events = self.extra_events, []
            self._batch += 1
            room = {"timeline": {"events": events, "limited": False}}
            return httpx.Response(
                200, json={"next_batch": f"s{self._batch}", "rooms": {"join": {SECRET_ROOM: room}}}
            )
        return await super()._sync(request)

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {"device_keys": {}, "failures": {}}
        for user in body.get("device_keys", {}):
            if user != ME:
                answer["device_keys"][user] = {}
                continue
            answer["device_keys"][ME] = copy.deepcopy(self.device_keys)
            for name, field in (
                ("master_key", "master_keys"),
                ("self_signing_key", "self_signing_keys"),
                ("user_signing_key", "user_signing_keys"),
            ):
                if name in self.cross_signing:
                    answer.setdefault(field, {})[ME] = copy.deepcopy(self.cross_signing[name])
        return answer

    def _room_keys(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        path = request.url.path
        method = request.method
        current = self.current_version
        if path.endswith("/room_keys/version") and method == "POST":
            version = str(len(self.versions) + 1)
            self.versions[version] = body
            self.backup[version] = {}
            return httpx.Response(200, json={"version": version})
        if "/room_keys/version" in path and method == "GET":
            wanted = path.rsplit("/", 1)[1]
            version = current if wanted == "version" else wanted
            if version is None or version not in self.versions:
                return httpx.Response(
                    404, json={"errcode": "M_NOT_FOUND", "error": "No current backup version"}
                )
            count = sum(len(s) for s in self.backup[version].values())
            return httpx.Response(
                200,
                json={
                    **self.versions[version],
                    "version": version,
                    "count": count,
                    "etag": str(count),
                },
            )
        if path.endswith("/room_keys/keys"):
            version = request.url.params.get("version")
            if version != current or version is None:
                return httpx.Response(
                    403,
                    json={
                        "errcode": "M_WRONG_ROOM_KEYS_VERSION",
                        "error": "Wrong backup version.",
                        "current_version": current,
                    },
                )
            stored = self.backup[version]
            if method == "PUT":
                for room_id, room in body.get("rooms", {}).items():
                    stored.setdefault(room_id, {}).update(room.get("sessions", {}))
                count = sum(len(s) for s in stored.values())
                return httpx.Response(200, json={"count": count, "etag": str(count)})
            return httpx.Response(
                200, json={"rooms": {r: {"sessions": s} for r, s in stored.items()}}
            )
        return httpx.Response(
            404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        )
