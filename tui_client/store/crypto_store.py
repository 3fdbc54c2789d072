"""The crypto machine's state in the account's SQLite cache.

:class:`SqliteCryptoStore` satisfies ``tui_client.crypto.store_api.CryptoStore``
structurally (the store layer does not import the crypto layer): records are plain
dicts of primitive values, kept as JSON next to the columns they are looked up by.
It never commits: the engine runs machine calls inside its own transaction (for a
sync batch, the same one that stores the batch and its ``next_batch``), so a crash
never loses a room key and a rolled-back batch leaves no crypto change behind.

It also keeps what the engine decrypted (:meth:`save_decrypted`) and what it could
not, indexed by Megolm session so those events are retried when the key arrives.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["SqliteCryptoStore"]

Record = dict[str, Any]
_Row = tuple[str, str, str, str, str]
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _load(data: str) -> Any:
    return json.loads(data)


class SqliteCryptoStore:
    """Crypto records on one SQLite connection (the cache's, on the database thread)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        #: Forms saved inside :meth:`batched_forms`, not written yet: (decrypted, undecrypted).
        self._pending: tuple[list[_Row], list[_Row]] | None = None

    def _one(self, sql: str, params: Sequence[Any]) -> Any | None:
        row = self._db.execute(sql, params).fetchone()
        return _load(row[0]) if row else None

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return [_load(data) for (data,) in self._db.execute(sql, params)]

    # -- account ---------------------------------------------------------------------

    def load_account(self) -> Record | None:
        """This device's account record."""
        return self._one("SELECT data FROM crypto_account WHERE id = 1", ())

    def save_account(self, record: Record) -> None:
        """Upsert the account record."""
        self._db.execute(
            "INSERT INTO crypto_account (id, data) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (_dumps(record),),
        )

    def load_pickle_format(self) -> str | None:
        """The backend whose format the stored pickles are in, if recorded."""
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = 'crypto_pickle_format'"
        ).fetchone()
        return None if row is None else str(row[0])

    def save_pickle_format(self, backend: str) -> None:
        """Record the backend whose format the stored pickles are in (in the caller's transaction)."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('crypto_pickle_format', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (backend,),
        )

    # -- Olm sessions ------------------------------------------------------------------

    def list_olm_sessions(self) -> list[Record]:
        """Every Olm session."""
        return self._all("SELECT data FROM crypto_olm_sessions")

    def get_olm_sessions(self, sender_key: str) -> list[Record]:
        """Every Olm session with one device."""
        return self._all("SELECT data FROM crypto_olm_sessions WHERE sender_key = ?", (sender_key,))

    def save_olm_session(self, record: Record) -> None:
        """Upsert by ``(sender_key, session_id)``."""
        self._db.execute(
            "INSERT INTO crypto_olm_sessions (sender_key, session_id, data) VALUES (?, ?, ?) "
            "ON CONFLICT(sender_key, session_id) DO UPDATE SET data = excluded.data",
            (record["sender_key"], record["session_id"], _dumps(record)),
        )

    def delete_olm_session(self, sender_key: str, session_id: str) -> None:
        """Remove one Olm session."""
        self._db.execute(
            "DELETE FROM crypto_olm_sessions WHERE sender_key = ? AND session_id = ?",
            (sender_key, session_id),
        )

    # -- inbound group sessions ----------------------------------------------------------

    def get_inbound_group_session(self, room_id: str, session_id: str) -> Record | None:
        """One inbound session, by room and session ID."""
        return self._one(
            "SELECT data FROM crypto_inbound_sessions WHERE room_id = ? AND session_id = ?",
            (room_id, session_id),
        )

    def save_inbound_group_session(self, record: Record) -> None:
        """Upsert by ``(room_id, session_id)``."""
        self._db.execute(
            "INSERT INTO crypto_inbound_sessions (room_id, session_id, backed_up, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(room_id, session_id) DO UPDATE SET backed_up = excluded.backed_up, data = excluded.data",
            (
                record["room_id"],
                record["session_id"],
                int(bool(record["backed_up"])),
                _dumps(record),
            ),
        )

    def list_inbound_group_sessions(self, room_id: str | None = None) -> list[Record]:
        """Every inbound session (of one room if given)."""
        if room_id is None:
            return self._all("SELECT data FROM crypto_inbound_sessions")
        return self._all("SELECT data FROM crypto_inbound_sessions WHERE room_id = ?", (room_id,))

    def inbound_group_sessions_to_back_up(self, limit: int) -> list[Record]:
        """Up to ``limit`` sessions not yet in the backup."""
        return self._all(
            "SELECT data FROM crypto_inbound_sessions WHERE backed_up = 0 LIMIT ?", (limit,)
        )

    def mark_inbound_group_sessions_backed_up(self, keys: list[tuple[str, str]]) -> None:
        """Flag sessions as backed up (the JSON copy too)."""
        for room_id, session_id in keys:
            record = self.get_inbound_group_session(room_id, session_id)
            if record is not None:
                record["backed_up"] = True
                self.save_inbound_group_session(record)

    def reset_inbound_group_sessions_backup(self) -> None:
        """Clear ``backed_up`` everywhere (a new backup version)."""
        rows = self._db.execute(
            "SELECT data FROM crypto_inbound_sessions WHERE backed_up = 1"
        ).fetchall()
        for (data,) in rows:
            record = _load(data)
            record["backed_up"] = False
            self.save_inbound_group_session(record)

    def count_inbound_group_sessions(self) -> tuple[int, int]:
        """``(total, backed_up)``."""
        total, backed = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(backed_up), 0) FROM crypto_inbound_sessions"
        ).fetchone()
        return int(total), int(backed)

    # -- outbound group sessions and shares -----------------------------------------------

    def get_outbound_group_session(self, room_id: str) -> Record | None:
        """The room's current outbound session."""
        return self._one("SELECT data FROM crypto_outbound_sessions WHERE room_id = ?", (room_id,))

    def save_outbound_group_session(self, record: Record) -> None:
        """Upsert by room."""
        self._db.execute(
            "INSERT INTO crypto_outbound_sessions (room_id, data) VALUES (?, ?) "
            "ON CONFLICT(room_id) DO UPDATE SET data = excluded.data",
            (record["room_id"], _dumps(record)),
        )

    def list_outbound_group_sessions(self) -> list[Record]:
        """Every room's outbound session."""
        return self._all("SELECT data FROM crypto_outbound_sessions")

    def delete_outbound_group_session(self, room_id: str) -> None:
        """Forget the room's outbound session."""
        self._db.execute("DELETE FROM crypto_outbound_sessions WHERE room_id = ?", (room_id,))

    def get_room_key_shares(self, room_id: str, session_id: str) -> list[Record]:
        """Every share record of one outbound session."""
        return self._all(
            "SELECT data FROM crypto_room_key_shares WHERE room_id = ? AND session_id = ?",
            (room_id, session_id),
        )

    def save_room_key_shares(self, records: Iterable[Record]) -> None:
        """Upsert each by room, session, user and device."""
        self._db.executemany(
            "INSERT INTO crypto_room_key_shares (room_id, session_id, user_id, device_id, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(room_id, session_id, user_id, device_id) DO UPDATE SET data = excluded.data",
            [
                (r["room_id"], r["session_id"], r["user_id"], r["device_id"], _dumps(r))
                for r in records
            ],
        )

    # -- devices and tracking ------------------------------------------------------------

    def get_device(self, user_id: str, device_id: str) -> Record | None:
        """One device (deleted ones included)."""
        return self._one(
            "SELECT data FROM crypto_devices WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        )

    def get_user_devices(self, user_id: str) -> list[Record]:
        """Every stored device of a user."""
        return self._all("SELECT data FROM crypto_devices WHERE user_id = ?", (user_id,))

    def get_devices_by_curve_key(self, curve25519: str) -> list[Record]:
        """Every device claiming a Curve25519 key (indexed)."""
        return self._all("SELECT data FROM crypto_devices WHERE curve25519 = ?", (curve25519,))

    def save_device(self, record: Record) -> None:
        """Upsert by ``(user_id, device_id)``."""
        self._db.execute(
            "INSERT INTO crypto_devices (user_id, device_id, curve25519, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(user_id, device_id) DO UPDATE SET curve25519 = excluded.curve25519, data = excluded.data",
            (record["user_id"], record["device_id"], record["curve25519"], _dumps(record)),
        )

    def get_tracked_users(self) -> list[Record]:
        """Every tracked user."""
        return self._all("SELECT data FROM crypto_tracked_users")

    def get_tracked_user(self, user_id: str) -> Record | None:
        """One tracked user."""
        return self._one("SELECT data FROM crypto_tracked_users WHERE user_id = ?", (user_id,))

    def save_tracked_user(self, record: Record) -> None:
        """Upsert by user."""
        self._db.execute(
            "INSERT INTO crypto_tracked_users (user_id, data) VALUES (?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data",
            (record["user_id"], _dumps(record)),
        )

    def delete_tracked_user(self, user_id: str) -> None:
        """Stop tracking a user."""
        self._db.execute("DELETE FROM crypto_tracked_users WHERE user_id = ?", (user_id,))

    def get_cross_signing_keys(self, user_id: str) -> Record | None:
        """A user's cross-signing keys as last queried."""
        return self._one("SELECT data FROM crypto_cross_signing_keys WHERE user_id = ?", (user_id,))

    def save_cross_signing_keys(self, record: Record) -> None:
        """Upsert by user."""
        self._db.execute(
            "INSERT INTO crypto_cross_signing_keys (user_id, data) VALUES (?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data",
            (record["user_id"], _dumps(record)),
        )

    # -- cross-signing identities as judged here, and sealed local secrets -------------

    def get_user_identity(self, user_id: str) -> Record | None:
        """The local judgement on a user's cross-signing identity."""
        return self._one("SELECT data FROM crypto_user_identities WHERE user_id = ?", (user_id,))

    def save_user_identity(self, record: Record) -> None:
        """Upsert by user."""
        self._db.execute(
            "INSERT INTO crypto_user_identities (user_id, data) VALUES (?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data",
            (record["user_id"], _dumps(record)),
        )

    def list_user_identities(self) -> list[Record]:
        """Every identity record."""
        return self._all("SELECT data FROM crypto_user_identities")

    def get_secret(self, name: str) -> Record | None:
        """One sealed secret (encrypted under the pickle key by the machine)."""
        return self._one("SELECT data FROM crypto_secrets WHERE name = ?", (name,))

    def save_secret(self, record: Record) -> None:
        """Upsert by name."""
        self._db.execute(
            "INSERT INTO crypto_secrets (name, data) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET data = excluded.data",
            (record["name"], _dumps(record)),
        )

    def delete_secret(self, name: str) -> None:
        """Forget a secret."""
        self._db.execute("DELETE FROM crypto_secrets WHERE name = ?", (name,))

    def list_secret_names(self) -> list[str]:
        """Names of the stored secrets."""
        return [
            str(name)
            for (name,) in self._db.execute("SELECT name FROM crypto_secrets ORDER BY name")
        ]

    # -- server-side key backup ------------------------------------------------------------

    def load_backup_state(self) -> Record | None:
        """The backup version the ``backed_up`` flags refer to (the engine's record), if any."""
        return self._one("SELECT data FROM crypto_backup_state WHERE id = 1", ())

    def save_backup_state(self, record: Record) -> None:
        """Replace the backup state record."""
        self._db.execute(
            "INSERT INTO crypto_backup_state (id, data) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (_dumps(record),),
        )

    def delete_backup_state(self) -> None:
        """Forget the backup state (no backup is used any more)."""
        self._db.execute("DELETE FROM crypto_backup_state WHERE id = 1")

    def undecrypted_summary(self) -> list[tuple[str, int, int]]:
        """Events we could not decrypt, by failure code: ``(code, events, sessions)``."""
        rows = self._db.execute(
            "SELECT code, COUNT(*), COUNT(DISTINCT session_id) FROM undecrypted_events GROUP BY code ORDER BY COUNT(*) DESC"
        )
        return [(str(code), int(events), int(sessions)) for code, events, sessions in rows]

    def undecrypted_sessions(self, codes: Sequence[str]) -> list[tuple[str, str]]:
        """The distinct ``(room_id, session_id)`` of events that failed with one of ``codes``."""
        marks = ",".join("?" * len(codes)) or "NULL"
        rows = self._db.execute(
            f"SELECT DISTINCT room_id, session_id FROM undecrypted_events WHERE code IN ({marks}) AND session_id != ''",
            list(codes),
        )
        return [(str(room_id), str(session_id)) for room_id, session_id in rows]

    # -- key requests ----------------------------------------------------------------------

    def get_key_request(self, request_id: str) -> Record | None:
        """One of our key requests."""
        return self._one("SELECT data FROM crypto_key_requests WHERE request_id = ?", (request_id,))

    def find_room_key_request(self, room_id: str, session_id: str) -> Record | None:
        """Our request for one room key, if any."""
        return self._one(
            "SELECT data FROM crypto_key_requests WHERE room_id = ? AND session_id = ? LIMIT 1",
            (room_id, session_id),
        )

    def list_key_requests(self) -> list[Record]:
        """Every outstanding key request."""
        return self._all("SELECT data FROM crypto_key_requests")

    def save_key_request(self, record: Record) -> None:
        """Upsert by request ID."""
        self._db.execute(
            "INSERT INTO crypto_key_requests (request_id, room_id, session_id, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(request_id) DO UPDATE SET room_id = excluded.room_id, session_id = excluded.session_id, "
            "data = excluded.data",
            (record["request_id"], record.get("room_id"), record.get("session_id"), _dumps(record)),
        )

    def delete_key_request(self, request_id: str) -> None:
        """Forget a key request."""
        self._db.execute("DELETE FROM crypto_key_requests WHERE request_id = ?", (request_id,))

    # -- to-device requests waiting to be sent ---------------------------------------------

    def list_pending_to_device(self) -> list[Record]:
        """Pending to-device requests, oldest first."""
        return self._all("SELECT data FROM crypto_pending_to_device ORDER BY seq")

    def get_pending_to_device(self, request_id: str) -> Record | None:
        """One pending to-device request."""
        return self._one(
            "SELECT data FROM crypto_pending_to_device WHERE request_id = ?", (request_id,)
        )

    def save_pending_to_device(self, record: Record) -> None:
        """Insert, or replace in place (keeping its position)."""
        self._db.execute(
            "INSERT INTO crypto_pending_to_device (request_id, data) VALUES (?, ?) "
            "ON CONFLICT(request_id) DO UPDATE SET data = excluded.data",
            (record["request_id"], _dumps(record)),
        )

    def delete_pending_to_device(self, request_id: str) -> None:
        """Remove a sent request."""
        self._db.execute("DELETE FROM crypto_pending_to_device WHERE request_id = ?", (request_id,))

    # -- replay protection ----------------------------------------------------------------

    def record_megolm_index(
        self, session_id: str, message_index: int, event_id: str, origin_server_ts: int
    ) -> tuple[str, int]:
        """Remember the first event that used a Megolm index; return that first one."""
        self._db.execute(
            "INSERT OR IGNORE INTO crypto_megolm_replay (session_id, message_index, event_id, ts) VALUES (?, ?, ?, ?)",
            (session_id, message_index, event_id, origin_server_ts),
        )
        row = self._db.execute(
            "SELECT event_id, ts FROM crypto_megolm_replay WHERE session_id = ? AND message_index = ?",
            (session_id, message_index),
        ).fetchone()
        return str(row[0]), int(row[1])

    # -- withheld notices -------------------------------------------------------------------

    def get_withheld(self, room_id: str, session_id: str) -> Record | None:
        """The withheld notice of a session."""
        return self._one(
            "SELECT data FROM crypto_withheld WHERE room_id = ? AND session_id = ?",
            (room_id, session_id),
        )

    def save_withheld(self, record: Record) -> None:
        """Upsert by room and session."""
        self._db.execute(
            "INSERT INTO crypto_withheld (room_id, session_id, data) VALUES (?, ?, ?) "
            "ON CONFLICT(room_id, session_id) DO UPDATE SET data = excluded.data",
            (record["room_id"], record["session_id"], _dumps(record)),
        )

    def delete_withheld(self, room_id: str, session_id: str) -> None:
        """Forget a withheld notice."""
        self._db.execute(
            "DELETE FROM crypto_withheld WHERE room_id = ? AND session_id = ?",
            (room_id, session_id),
        )

    # -- per-device Olm bookkeeping -----------------------------------------------------------

    def get_olm_peer_state(self, curve25519: str) -> Record | None:
        """Wedge bookkeeping of one device."""
        return self._one("SELECT data FROM crypto_olm_peers WHERE curve25519 = ?", (curve25519,))

    def save_olm_peer_state(self, record: Record) -> None:
        """Upsert by Curve25519 key."""
        self._db.execute(
            "INSERT INTO crypto_olm_peers (curve25519, unwedge_pending, data) VALUES (?, ?, ?) "
            "ON CONFLICT(curve25519) DO UPDATE SET unwedge_pending = excluded.unwedge_pending, data = excluded.data",
            (record["curve25519"], int(bool(record["unwedge_pending"])), _dumps(record)),
        )

    def list_unwedge_pending(self) -> list[Record]:
        """Peers whose session must be replaced."""
        return self._all("SELECT data FROM crypto_olm_peers WHERE unwedge_pending = 1")

    # -- decrypted and undecryptable events (the engine's, not the machine's) ---------------

    @contextmanager
    def batched_forms(self) -> Iterator[None]:
        """Keep the forms saved inside (:meth:`save_decrypted`, :meth:`save_undecrypted`)
        and write them together on leaving, one statement each for the whole batch rather
        than per event. Still inside the caller's transaction: nothing commits here, and a
        batch that fails writes none of them (its transaction rolls back). Reads of the
        forms inside see them (they are written first)."""
        if self._pending is not None:
            yield  # nested: the outer batch writes them
            return
        self._pending = ([], [])
        try:
            yield
            self._write_pending()
        finally:
            self._pending = None

    def _write_pending(self) -> None:
        pending = self._pending
        if pending is None or not (pending[0] or pending[1]):
            return
        clear, failed = pending
        self._pending = ([], [])
        if failed:
            self._db.executemany(
                "INSERT INTO undecrypted_events (event_id, room_id, session_id, code, reason) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(event_id) DO UPDATE SET code = excluded.code, reason = excluded.reason",
                failed,
            )
        if clear:
            self._db.executemany(
                "INSERT INTO decrypted_events (event_id, room_id, session_id, clear, info) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(event_id) DO UPDATE SET clear = excluded.clear, info = excluded.info",
                clear,
            )
            self._db.executemany(
                "DELETE FROM undecrypted_events WHERE event_id = ?", [(row[0],) for row in clear]
            )

    def save_decrypted(
        self, event_id: str, room_id: str, session_id: str, clear: Record, info: Record
    ) -> None:
        """Keep the clear form of an event we decrypted (and forget why it failed before)."""
        row = (event_id, room_id, session_id, _dumps(clear), _dumps(info))
        if self._pending is None:
            self._pending = ([row], [])
            try:
                self._write_pending()
            finally:
                self._pending = None
        else:
            self._pending[0].append(row)

    def save_undecrypted(
        self, event_id: str, room_id: str, session_id: str, code: str, reason: str
    ) -> None:
        """Note why an event could not be decrypted (it is retried when its key arrives)."""
        row = (event_id, room_id, session_id, code, reason)
        if self._pending is None:
            self._pending = ([], [row])
            try:
                self._write_pending()
            finally:
                self._pending = None
        else:
            self._pending[1].append(row)

    def decrypted(self, event_ids: Sequence[str]) -> dict[str, tuple[Record, Record]]:
        """Clear forms we hold: event ID -> (clear event, encryption info)."""
        self._write_pending()
        found: dict[str, tuple[Record, Record]] = {}
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT event_id, clear, info FROM decrypted_events WHERE event_id IN ({marks})",
                chunk,
            )
            found.update((e, (_load(c), _load(i))) for e, c, i in rows)
        return found

    def undecrypted(self, event_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Why events could not be decrypted: event ID -> (code, reason)."""
        self._write_pending()
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT event_id, code, reason FROM undecrypted_events WHERE event_id IN ({marks})",
                chunk,
            )
            found.update((e, (c, r)) for e, c, r in rows)
        return found

    def undecrypted_for_sessions(
        self, sessions: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str, str]]:
        """Events waiting for any of these ``(room_id, session_id)`` keys: (event_id, room_id, json)."""
        self._write_pending()
        waiting: list[tuple[str, str, str]] = []
        for room_id, session_id in sessions:
            rows = self._db.execute(
                "SELECT u.event_id, u.room_id, e.json FROM undecrypted_events u JOIN events e ON e.event_id = u.event_id "
                "WHERE u.session_id = ? AND u.room_id = ?",
                (session_id, room_id),
            )
            waiting.extend(rows)
        return waiting
