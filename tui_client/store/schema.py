"""The cache schema: numbered migrations applied in order, tracked by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

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
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`, one transaction per step.

    Returns the version found before migrating. A database newer than this code is
    refused rather than touched.
    """
    (found,) = connection.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise RuntimeError(
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
    return [p for p in parts if p and not all(line.strip().startswith("--") for line in p.splitlines())]
