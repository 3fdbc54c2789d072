"""The cache schema: numbered migrations applied in order, tracked by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaTooNew", "migrate"]

# Each entry moves the schema from version N to N+1. Never edit one that has shipped:
# add the next.
MIGRATIONS: tuple[str, ...] = (
    # 1: the initial cache.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE rooms (
        room_id TEXT PRIMARY KEY,
        summary TEXT NOT NULL,
        last_ts INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    -- Every event we hold, timeline or state. `pos` orders a room's timeline; it is
    -- NULL for state we only know from a `state` block. Positions are sparse: a gap
    -- leaves room below it for back-filled events.
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        room_id TEXT NOT NULL,
        pos INTEGER,
        type TEXT NOT NULL,
        sender TEXT NOT NULL,
        ts INTEGER NOT NULL,
        state_key TEXT,
        rel_type TEXT,
        relates_to TEXT,
        rel_key TEXT,
        txn_id TEXT,
        redacted_by TEXT,
        json TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_pos ON events (room_id, pos) WHERE pos IS NOT NULL;
    CREATE INDEX events_by_relation ON events (relates_to, rel_type) WHERE relates_to IS NOT NULL;

    CREATE TABLE room_state (
        room_id TEXT NOT NULL,
        type TEXT NOT NULL,
        state_key TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (room_id, type, state_key)
    ) WITHOUT ROWID;

    -- Missing history just below `pos_above`, fetched with /messages from `token`.
    CREATE TABLE gaps (
        room_id TEXT NOT NULL,
        pos_above INTEGER NOT NULL,
        token TEXT NOT NULL,
        PRIMARY KEY (room_id, pos_above)
    ) WITHOUT ROWID;

    CREATE TABLE receipts (
        room_id TEXT NOT NULL,
        receipt_type TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (room_id, receipt_type, thread_id, user_id)
    ) WITHOUT ROWID;

    CREATE TABLE account_data (
        room_id TEXT NOT NULL,
        type TEXT NOT NULL,
        content TEXT NOT NULL,
        PRIMARY KEY (room_id, type)
    ) WITHOUT ROWID;

    CREATE TABLE invite_state (
        room_id TEXT PRIMARY KEY,
        events TEXT NOT NULL
    ) WITHOUT ROWID;

    -- Messages the user sent that the server has not echoed back yet. The
    -- transaction ID is written before the first attempt and reused on every retry.
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        txn_id TEXT NOT NULL UNIQUE,
        room_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        content TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        event_id TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_ts INTEGER NOT NULL
    );
    """,
    # 2: end-to-end encryption: the crypto machine's state (pickles are encrypted by
    # the backend under the pickle key), and what we decrypted or could not.
    """
    CREATE TABLE crypto_account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        data TEXT NOT NULL
    );

    CREATE TABLE crypto_olm_sessions (
        sender_key TEXT NOT NULL,
        session_id TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (sender_key, session_id)
    ) WITHOUT ROWID;

    CREATE TABLE crypto_inbound_sessions (
        room_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        backed_up INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (room_id, session_id)
    ) WITHOUT ROWID;
    CREATE INDEX crypto_inbound_not_backed_up ON crypto_inbound_sessions (backed_up) WHERE backed_up = 0;

    CREATE TABLE crypto_outbound_sessions (
        room_id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE crypto_room_key_shares (
        room_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (room_id, session_id, user_id, device_id)
    ) WITHOUT ROWID;

    CREATE TABLE crypto_devices (
        user_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        curve25519 TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (user_id, device_id)
    ) WITHOUT ROWID;
    CREATE INDEX crypto_devices_by_curve ON crypto_devices (curve25519);

    CREATE TABLE crypto_tracked_users (
        user_id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE crypto_cross_signing_keys (
        user_id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE crypto_key_requests (
        request_id TEXT PRIMARY KEY,
        room_id TEXT,
        session_id TEXT,
        data TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX crypto_key_requests_by_session ON crypto_key_requests (room_id, session_id);

    CREATE TABLE crypto_pending_to_device (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
    );

    CREATE TABLE crypto_megolm_replay (
        session_id TEXT NOT NULL,
        message_index INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (session_id, message_index)
    ) WITHOUT ROWID;

    CREATE TABLE crypto_withheld (
        room_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (room_id, session_id)
    ) WITHOUT ROWID;

    CREATE TABLE crypto_olm_peers (
        curve25519 TEXT PRIMARY KEY,
        unwedge_pending INTEGER NOT NULL,
        data TEXT NOT NULL
    ) WITHOUT ROWID;

    -- The clear form of encrypted events we decrypted (their stored JSON stays the
    -- ciphertext the server sent), and why the others could not be decrypted: they are
    -- tried again the moment a key for their session arrives.
    CREATE TABLE decrypted_events (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        clear TEXT NOT NULL,
        info TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE undecrypted_events (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX undecrypted_by_session ON undecrypted_events (session_id);
    """,
    # 3: cross-signing: the local judgement on each user's identity (pinned and verified
    # master keys), and secrets this device keeps (cross-signing private keys, the backup
    # key), sealed under the pickle key by the crypto machine.
    """
    CREATE TABLE crypto_user_identities (
        user_id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE crypto_secrets (
        name TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: server-side key backup: the backup version the sessions' `backed_up` flags
    # refer to (with its public key, and the server's last count and etag), so a restart
    # resumes uploading where it stopped and a replaced version is noticed.
    """
    CREATE TABLE crypto_backup_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        data TEXT NOT NULL
    );
    """,
    # 5: the join queue, so that joins asked for and not yet made (waiting out a rate
    # limit, say) are made after a restart.
    """
    CREATE TABLE pending_joins (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        target TEXT NOT NULL,
        via TEXT NOT NULL,
        label TEXT NOT NULL,
        reason TEXT,
        after_key TEXT
    );
    """,
    # 6: the local full-text index of messages (FTS5, in the same file as the events, so
    # an encrypted cache keeps it encrypted). `search_text` is each message's current text:
    # the latest edit by its sender, else its own body; the clear form for encrypted
    # ones; nothing once redacted. Triggers keep the index in the writers' transactions;
    # a new message is only inserted (an FTS5 delete flushes its pending writes, so
    # deletes are kept to edits, redactions and re-decryptions).
    # (Trigger bodies keep ';' mid-line: migration scripts are split at ';' line ends.)
    """
    CREATE VIRTUAL TABLE message_fts USING fts5 (body, tokenize = 'unicode61 remove_diacritics 2');

    CREATE VIEW search_text AS
    SELECT e.seq AS seq, e.event_id AS event_id, COALESCE(
        (SELECT CASE WHEN x.type = 'm.room.encrypted'
                THEN json_extract(xd.clear, '$.content."m.new_content".body')
                ELSE json_extract(x.json, '$.content."m.new_content".body') END
         FROM events x LEFT JOIN decrypted_events xd ON xd.event_id = x.event_id
         WHERE x.relates_to = e.event_id AND x.rel_type = 'm.replace' AND x.redacted_by IS NULL
           AND x.sender = e.sender
           AND (CASE WHEN x.type = 'm.room.encrypted'
                THEN json_extract(xd.clear, '$.content."m.new_content".body')
                ELSE json_extract(x.json, '$.content."m.new_content".body') END) IS NOT NULL
         ORDER BY x.ts DESC, x.seq DESC LIMIT 1),
        CASE WHEN e.type = 'm.room.encrypted' THEN json_extract(d.clear, '$.content.body')
        ELSE json_extract(e.json, '$.content.body') END
    ) AS body
    FROM events e LEFT JOIN decrypted_events d ON d.event_id = e.event_id
    WHERE e.redacted_by IS NULL AND e.state_key IS NULL AND e.rel_type IS NOT 'm.replace'
      AND (e.type = 'm.room.message'
           OR (e.type = 'm.room.encrypted' AND json_extract(d.clear, '$.type') = 'm.room.message'));

    CREATE TRIGGER message_fts_message_added AFTER INSERT ON events
    WHEN NEW.state_key IS NULL AND NEW.type = 'm.room.message' AND NEW.rel_type IS NOT 'm.replace'
        AND NEW.redacted_by IS NULL
    BEGIN
        INSERT INTO message_fts (rowid, body) SELECT NEW.seq, body FROM (SELECT COALESCE(
            (SELECT body FROM search_text WHERE event_id = NEW.event_id AND EXISTS (SELECT 1 FROM events x
             WHERE x.relates_to = NEW.event_id AND x.rel_type = 'm.replace')),
            json_extract(NEW.json, '$.content.body')) AS body) WHERE body IS NOT NULL; END;

    CREATE TRIGGER message_fts_encrypted_added AFTER INSERT ON events
    WHEN NEW.state_key IS NULL AND NEW.type = 'm.room.encrypted' AND NEW.rel_type IS NOT 'm.replace'
    BEGIN
        INSERT INTO message_fts (rowid, body) SELECT seq, body FROM search_text
        WHERE body IS NOT NULL AND event_id = NEW.event_id; END;

    CREATE TRIGGER message_fts_edit_added AFTER INSERT ON events
    WHEN NEW.state_key IS NULL AND NEW.type IN ('m.room.message', 'm.room.encrypted')
        AND NEW.rel_type = 'm.replace'
    BEGIN
        DELETE FROM message_fts WHERE rowid = (SELECT seq FROM events WHERE event_id = NEW.relates_to); INSERT
        INTO message_fts (rowid, body) SELECT seq, body FROM search_text
        WHERE body IS NOT NULL AND event_id = NEW.relates_to; END;

    CREATE TRIGGER message_fts_event_redacted AFTER UPDATE OF redacted_by ON events
    WHEN NEW.redacted_by IS NOT NULL AND OLD.redacted_by IS NULL
    BEGIN
        DELETE FROM message_fts WHERE rowid = NEW.seq; DELETE
        FROM message_fts WHERE OLD.rel_type = 'm.replace'
            AND rowid = (SELECT seq FROM events WHERE event_id = OLD.relates_to); INSERT
        INTO message_fts (rowid, body) SELECT seq, body FROM search_text
        WHERE OLD.rel_type = 'm.replace' AND body IS NOT NULL AND event_id = OLD.relates_to; END;

    CREATE TRIGGER message_fts_event_removed AFTER DELETE ON events
    BEGIN DELETE FROM message_fts WHERE rowid = OLD.seq; END;

    CREATE TRIGGER message_fts_decrypted_added AFTER INSERT ON decrypted_events
    WHEN (SELECT rel_type FROM events WHERE event_id = NEW.event_id) IS NOT 'm.replace'
    BEGIN
        INSERT INTO message_fts (rowid, body) SELECT seq, body FROM search_text
        WHERE body IS NOT NULL AND event_id = NEW.event_id; END;

    CREATE TRIGGER message_fts_decrypted_edit_added AFTER INSERT ON decrypted_events
    WHEN (SELECT rel_type FROM events WHERE event_id = NEW.event_id) = 'm.replace'
    BEGIN
        DELETE FROM message_fts WHERE rowid = (SELECT seq FROM events WHERE event_id = (SELECT
            relates_to FROM events WHERE event_id = NEW.event_id)); INSERT
        INTO message_fts (rowid, body) SELECT seq, body FROM search_text WHERE body IS NOT NULL AND event_id = (SELECT
            relates_to FROM events WHERE event_id = NEW.event_id); END;

    CREATE TRIGGER message_fts_decrypted_changed AFTER UPDATE OF clear ON decrypted_events
    BEGIN
        DELETE FROM message_fts WHERE rowid = (SELECT seq FROM events WHERE event_id = (SELECT
            CASE WHEN rel_type = 'm.replace' THEN relates_to ELSE event_id END
            FROM events WHERE event_id = NEW.event_id)); INSERT
        INTO message_fts (rowid, body) SELECT seq, body FROM search_text WHERE body IS NOT NULL AND event_id = (SELECT
            CASE WHEN rel_type = 'm.replace' THEN relates_to ELSE event_id END
            FROM events WHERE event_id = NEW.event_id); END;

    INSERT INTO message_fts (rowid, body) SELECT seq, body FROM search_text WHERE body IS NOT NULL;
    """,
    # 7: files being uploaded, so an upload cut short (the client closed) starts again
    # on the next start if the file is unchanged (same size and SHA-256).
    """
    CREATE TABLE pending_uploads (
        upload_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        room_id TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 8: unread counts per thread (unread_thread_notifications), as the last sync said.
    """
    CREATE TABLE thread_unread (
        room_id TEXT NOT NULL,
        root_id TEXT NOT NULL,
        notifications INTEGER NOT NULL,
        highlights INTEGER NOT NULL,
        PRIMARY KEY (room_id, root_id)
    ) WITHOUT ROWID;
    """,
    # 9: avatars (rooms' and users'), as the few pixels drawn: no refetch at each start.
    """
    CREATE TABLE avatars (
        mxc TEXT PRIMARY KEY,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        rgba BLOB NOT NULL,
        fetched_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 10: new messages are indexed after their batch, not by triggers inside it (the index
    # was most of a first sync's ingest): an insert only notes the message in
    # `fts_pending`; `Cache.index_pending` indexes them in slices (after each sync batch,
    # and before any search). Edits, redactions and decryptions keep their triggers (an
    # edit's trigger may index a pending message early: the catch-up skips it then).
    """
    DROP TRIGGER message_fts_message_added;
    DROP TRIGGER message_fts_encrypted_added;
    CREATE TABLE fts_pending (seq INTEGER PRIMARY KEY);
    CREATE TRIGGER fts_pending_added AFTER INSERT ON events
    WHEN NEW.state_key IS NULL AND NEW.type IN ('m.room.message', 'm.room.encrypted')
        AND NEW.rel_type IS NOT 'm.replace' AND NEW.redacted_by IS NULL
    BEGIN INSERT OR IGNORE INTO fts_pending (seq) VALUES (NEW.seq); END;
    CREATE TRIGGER fts_pending_removed AFTER DELETE ON events
    BEGIN DELETE FROM fts_pending WHERE seq = OLD.seq; END;
    """,
    # 11: no trigger runs for each inserted event: the writers note a batch's new messages
    # in `fts_pending` and re-index what its edits replace with one statement each, after
    # the batch's rows (`TimelineStore._events_added`). A row trigger, even one whose WHEN
    # is false, was ~40% of the CPU time of inserting a first sync's events.
    """
    DROP TRIGGER fts_pending_added;
    DROP TRIGGER message_fts_edit_added;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The cache was written by a newer release (a schema this code does not know)."""


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`, one transaction per step.

    Returns the version found before migrating. A database newer than this code is
    refused rather than touched.
    """
    (found,) = connection.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the cache was written by a newer tui_client (schema {found} > {SCHEMA_VERSION})"
        )
    for version in range(found, SCHEMA_VERSION):
        with connection:
            connection.execute("BEGIN")
            for statement in _statements(MIGRATIONS[version]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
    return int(found)


def _statements(script: str) -> list[str]:
    # Split on ';' at line ends; the schema has no ';' inside literals.
    parts = [p.strip() for p in script.split(";\n")]
    return [
        p for p in parts if p and not all(line.strip().startswith("--") for line in p.splitlines())
    ]
