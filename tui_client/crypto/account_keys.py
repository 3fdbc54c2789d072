"""Account and device keys: this device's Olm account, its signed device keys, the
one-time and fallback keys it publishes (``/keys/upload``).

State: the account (pickled in the store, unpickled once and cached against the
stored pickle) and the upload in flight.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .backend import (
    Account,
    IdentityKeys,
)
from .machine_core import (
    SIGNED_CURVE25519,
    CryptoStoreMismatch,
    MachineCore,
    MachinePart,
    compact,
    new_id,
)
from .requests import (
    KeysUploadRequest,
)
from .signing import sign_json
from .store_api import (
    AccountRecord,
)
from .types import (
    MEGOLM_ALGORITHM,
    OLM_ALGORITHM,
    RequestOutcome,
)

__all__ = ["AccountKeys"]


class AccountKeys(MachinePart):
    """This device's account: created on first use, checked against the store's owner."""

    def __init__(self, core: MachineCore) -> None:
        super().__init__(core)
        self._account_cache: tuple[str, Account] | None = None
        self._upload_in_flight: KeysUploadRequest | None = None
        record = self._store.load_account()
        if record is None:
            account = self._backend.create_account()
            record = AccountRecord(
                user_id=self._user_id,
                device_id=self._device_id,
                pickle="",
                shared=False,
                uploaded_otk_count=0,
                fallback_key_needed=True,
                old_fallback_forget_at_ms=0,
            )
            self.save_account(record, account)
        elif record["user_id"] != self._user_id or record["device_id"] != self._device_id:
            raise CryptoStoreMismatch(
                f"the crypto store belongs to {record['user_id']} / {record['device_id']}"
            )
        _, account = self.account()
        #: This device's Curve25519 and Ed25519 keys.
        self.identity: IdentityKeys = account.identity_keys
        self._identity = self.identity
        #: Our signed device-keys object (as uploaded); do not change it.
        self.signed_device_keys: dict[str, Any] = self._build_device_keys(account)
        self._device_keys = self.signed_device_keys

    def mark_sent(self, request_id: str, response: Mapping[str, Any]) -> RequestOutcome | None:
        """Apply the answer to our upload; ``None`` if the request is not ours."""
        upload = self._upload_in_flight
        if upload is None or upload.request_id != request_id:
            return None
        self._upload_in_flight = None
        self._upload_done(upload, response)
        return RequestOutcome()

    def mark_failed(self, request_id: str) -> bool:
        """The upload failed: it is rebuilt from the account next time. ``False``: not ours."""
        if self._upload_in_flight is None or self._upload_in_flight.request_id != request_id:
            return False
        self._upload_in_flight = None
        return True

    def account(self) -> tuple[AccountRecord, Account]:
        record = self._store.load_account()
        if record is None:
            raise CryptoStoreMismatch("the account vanished from the crypto store")
        cached = self._account_cache
        if cached is not None and cached[0] == record["pickle"]:
            return record, cached[1]
        account = self._backend.account_from_pickle(record["pickle"], self._pickle_key)
        self._account_cache = (record["pickle"], account)
        return record, account

    def save_account(
        self, record: AccountRecord, account: Account, **changes: Any
    ) -> AccountRecord:
        pickle = account.pickle(self._pickle_key)
        updated: AccountRecord = {**record, **changes, "pickle": pickle}  # type: ignore[typeddict-item]
        self._store.save_account(updated)
        self._account_cache = (pickle, account)
        return updated

    def _build_device_keys(self, account: Account) -> dict[str, Any]:
        keys = {
            "user_id": self._user_id,
            "device_id": self._device_id,
            "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
            "keys": {
                f"curve25519:{self._device_id}": self._identity.curve25519,
                f"ed25519:{self._device_id}": self._identity.ed25519,
            },
        }
        return sign_json(keys, self._user_id, f"ed25519:{self._device_id}", account.sign)

    def sign(self, message: bytes) -> str:
        """Sign bytes with this device's Ed25519 key."""
        _, account = self.account()
        return account.sign(message)

    def sign_json(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` signed by this device (``ed25519:<device_id>``)."""
        _, account = self.account()
        return sign_json(obj, self._user_id, f"ed25519:{self._device_id}", account.sign)

    def device_keys(self) -> dict[str, Any]:
        """Our signed device-keys object (as uploaded)."""
        return json.loads(compact(self._device_keys))  # type: ignore[no-any-return]

    def receive_key_counts(
        self, counts: Mapping[str, int] | None, unused_fallback: Iterable[str] | None
    ) -> None:
        record, account = self.account()
        changes: dict[str, Any] = {}
        count = (counts or {}).get(SIGNED_CURVE25519, 0)
        if isinstance(count, int) and count != record["uploaded_otk_count"] and record["shared"]:
            changes["uploaded_otk_count"] = count
        if (
            unused_fallback is not None
            and record["shared"]
            and not record["fallback_key_needed"]
            and SIGNED_CURVE25519 not in set(unused_fallback)
        ):
            changes["fallback_key_needed"] = True
        forget_at = record["old_fallback_forget_at_ms"]
        if forget_at and self._clock() >= forget_at:
            account.forget_old_fallback_key()
            changes["old_fallback_forget_at_ms"] = 0
            self.save_account(record, account, **changes)
        elif changes:
            self._store.save_account({**record, **changes})  # type: ignore[typeddict-item]

    def upload_request(self) -> KeysUploadRequest | None:
        if self._upload_in_flight is not None:
            return self._upload_in_flight
        record, account = self.account()
        changed = False
        target = int(account.max_one_time_keys * self._config.one_time_key_fraction)
        if not account.one_time_keys():
            known = record["uploaded_otk_count"] if record["shared"] else 0
            if known >= 0 and known < target:
                account.generate_one_time_keys(target - known)
                changed = True
        if record["fallback_key_needed"] and not account.fallback_key():
            if record["shared"]:
                record = {
                    **record,
                    "old_fallback_forget_at_ms": self._clock()
                    + self._config.old_fallback_key_lifetime_ms,
                }
            account.generate_fallback_key()
            changed = True
        if changed:
            record = self.save_account(record, account)
        body: dict[str, Any] = {}
        if not record["shared"]:
            body["device_keys"] = self._device_keys
        one_time = self._signed_keys(account, account.one_time_keys(), fallback=False)
        if one_time:
            body["one_time_keys"] = one_time
        fallback = self._signed_keys(account, account.fallback_key(), fallback=True)
        if fallback:
            body["fallback_keys"] = fallback
        if not body:
            return None
        self._upload_in_flight = KeysUploadRequest(request_id=new_id(), body=body)
        return self._upload_in_flight

    def _signed_keys(
        self, account: Account, keys: Mapping[str, str], *, fallback: bool
    ) -> dict[str, Any]:
        signed: dict[str, Any] = {}
        for key_id, key in keys.items():
            obj: dict[str, Any] = {"key": key}
            if fallback:
                obj["fallback"] = True
            signed[f"{SIGNED_CURVE25519}:{key_id}"] = sign_json(
                obj, self._user_id, f"ed25519:{self._device_id}", account.sign
            )
        return signed

    def _upload_done(self, request: KeysUploadRequest, response: Mapping[str, Any]) -> None:
        record, account = self.account()
        account.mark_keys_as_published()
        counts = response.get("one_time_key_counts")
        count = counts.get(SIGNED_CURVE25519, 0) if isinstance(counts, Mapping) else -1
        changes: dict[str, Any] = {
            "shared": record["shared"] or "device_keys" in request.body,
            "uploaded_otk_count": count if isinstance(count, int) else -1,
        }
        if "fallback_keys" in request.body:
            changes["fallback_key_needed"] = False
        self.save_account(record, account, **changes)
