"""
The SQLite schema of the queue and the state store, as an ordered list of migrations.

Rule 1: one version sequence for the whole file. The queue and the store usually share one file,
and whichever opens it first creates every table; a queue-only file simply has empty store
tables. The applied versions are rows of ``catalogsync_schema``.

Rule 2: migrations are append-only. Never edit a released migration; add the next one. Each is a
list of single statements (not a script: ``executescript`` would commit behind our back) and
all pending ones run in one ``BEGIN IMMEDIATE`` transaction, so two processes opening a fresh
file at once do not both migrate, and a crash mid-migration leaves the previous version.

Rule 3: a file whose version is newer than the newest migration known here was written by a newer
catalogsync: refuse it (`SchemaVersionError`) rather than guess.

Rule 4: times are integer microseconds since the Unix epoch (UTC), so they sort and compare in
SQL; JSON columns hold what the storage converter (`catalogsync._convert`) produces.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from attrs import frozen

from .._clock import utcnow
from .._errors import SchemaVersionError


__all__ = ["LATEST", "MIGRATIONS", "Migration", "migrate", "schema_version"]


@frozen
class Migration:
    """One step of the schema: its version, what it does, and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    1,
    "queue and state store",
    (
        # -- queue ----------------------------------------------------------------------------
        # One row per (connector, type, ref): coalescing is an upsert on that key. `seq` is the
        # version the entry got when it first entered the queue: its place in line, kept by
        # re-enqueues. An entry is visible when visible_at <= now; a lease sets owner and moves
        # visible_at to the deadline, so ready entries and expired leases share one index.
        """
        CREATE TABLE queue_entries (
            connector   TEXT    NOT NULL,
            item_type   TEXT    NOT NULL,
            ref         TEXT    NOT NULL,
            kind        TEXT    NOT NULL,
            version     INTEGER NOT NULL,
            attempts    INTEGER NOT NULL DEFAULT 0,
            force       INTEGER NOT NULL DEFAULT 0,
            seq         INTEGER NOT NULL,
            visible_at  INTEGER NOT NULL,
            enqueued_at INTEGER NOT NULL,
            owner       TEXT,
            PRIMARY KEY (connector, item_type, ref)
        )
        """,
        # The lease query: WHERE connector = ? AND visible_at <= ? ORDER BY visible_at, seq.
        "CREATE INDEX queue_entries_line ON queue_entries (connector, visible_at, seq)",
        # Versions are unique and increasing across the whole file (a replace-all fences leases
        # of the old set): writers reserve a block of them inside their write transaction.
        """
        CREATE TABLE queue_counter (
            id      INTEGER PRIMARY KEY CHECK (id = 0),
            version INTEGER NOT NULL
        )
        """,
        "INSERT INTO queue_counter (id, version) VALUES (0, 0)",
        # -- connectors -------------------------------------------------------------------------
        # params is the converter's JSON; credentials is a reference string, never a secret.
        """
        CREATE TABLE connectors (
            id          TEXT    PRIMARY KEY,
            channel     TEXT    NOT NULL,
            account     TEXT    NOT NULL,
            credentials TEXT,
            active      INTEGER NOT NULL,
            schedule    REAL,
            params      TEXT    NOT NULL
        )
        """,
        # -- events -----------------------------------------------------------------------------
        """
        CREATE TABLE events (
            id               TEXT    PRIMARY KEY,
            connector_id     TEXT    NOT NULL,
            channel          TEXT    NOT NULL,
            trigger          TEXT    NOT NULL,
            status           TEXT    NOT NULL,
            started_at       INTEGER NOT NULL,
            finished_at      INTEGER,
            snapshot         TEXT    NOT NULL,
            pending_category INTEGER NOT NULL DEFAULT 0,
            pending_product  INTEGER NOT NULL DEFAULT 0,
            pending_variant  INTEGER NOT NULL DEFAULT 0,
            errors           TEXT    NOT NULL DEFAULT '[]',
            retry_of         TEXT,
            superseded_by    TEXT
        )
        """,
        # At most one active (in progress or paused) event per connector, whatever the code does.
        """
        CREATE UNIQUE INDEX events_one_active ON events (connector_id)
            WHERE status IN ('in_progress', 'paused')
        """,
        "CREATE INDEX events_by_connector ON events (connector_id, started_at, id)",
        "CREATE INDEX events_by_time ON events (started_at, id)",
        # -- iterations -------------------------------------------------------------------------
        """
        CREATE TABLE iterations (
            id                 TEXT    PRIMARY KEY,
            event_id           TEXT    NOT NULL,
            number             INTEGER NOT NULL,
            worker             TEXT    NOT NULL,
            started_at         INTEGER NOT NULL,
            finished_at        INTEGER,
            synchronized_category INTEGER NOT NULL DEFAULT 0,
            synchronized_product  INTEGER NOT NULL DEFAULT 0,
            synchronized_variant  INTEGER NOT NULL DEFAULT 0,
            failed_category    INTEGER NOT NULL DEFAULT 0,
            failed_product     INTEGER NOT NULL DEFAULT 0,
            failed_variant     INTEGER NOT NULL DEFAULT 0,
            unchanged_category INTEGER NOT NULL DEFAULT 0,
            unchanged_product  INTEGER NOT NULL DEFAULT 0,
            unchanged_variant  INTEGER NOT NULL DEFAULT 0,
            skipped_category   INTEGER NOT NULL DEFAULT 0,
            skipped_product    INTEGER NOT NULL DEFAULT 0,
            skipped_variant    INTEGER NOT NULL DEFAULT 0,
            UNIQUE (event_id, number)
        )
        """,
        # -- item statuses ----------------------------------------------------------------------
        # One row per (event, type, ref). errors and warnings are JSON lists of ItemError.
        """
        CREATE TABLE item_statuses (
            event_id     TEXT    NOT NULL,
            item_type    TEXT    NOT NULL,
            ref          TEXT    NOT NULL,
            connector_id TEXT    NOT NULL,
            state        TEXT    NOT NULL,
            action       TEXT,
            errors       TEXT,
            warnings     TEXT,
            endpoint     TEXT,
            request_id   TEXT,
            channel_id   TEXT,
            channel_url  TEXT,
            message      TEXT,
            updated_at   INTEGER NOT NULL,
            PRIMARY KEY (event_id, item_type, ref)
        )
        """,
        # The item status tab of a connector (all events), newest first, optionally since a time.
        """
        CREATE INDEX item_statuses_by_connector ON item_statuses (connector_id, updated_at)
        """,
        # One event's statuses by state: the overview counts, failed_keys, the state filter.
        "CREATE INDEX item_statuses_by_event_state ON item_statuses (event_id, state, item_type)",
        # The cross-connector history by time range.
        "CREATE INDEX item_statuses_by_time ON item_statuses (updated_at)",
        # -- sent states and their links --------------------------------------------------------
        """
        CREATE TABLE sent_states (
            connector_id TEXT    NOT NULL,
            item_type    TEXT    NOT NULL,
            ref          TEXT    NOT NULL,
            hash         TEXT,
            channel_id   TEXT,
            channel_url  TEXT,
            parents      TEXT    NOT NULL,
            memo         TEXT    NOT NULL,
            event_id     TEXT    NOT NULL,
            updated_at   INTEGER NOT NULL,
            PRIMARY KEY (connector_id, item_type, ref)
        ) WITHOUT ROWID
        """,
        # child -> parent edges of delivered items, for sent_children (by parent) and for
        # replacing a child's edges (by child).
        """
        CREATE TABLE sent_links (
            connector_id TEXT NOT NULL,
            child_type   TEXT NOT NULL,
            parent_ref   TEXT NOT NULL,
            child_ref    TEXT NOT NULL,
            PRIMARY KEY (connector_id, child_type, parent_ref, child_ref)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX sent_links_by_child ON sent_links (connector_id, child_type, child_ref)",
    ),
)

_V2 = Migration(
    2,
    "queue counts kept by triggers",
    (
        # `counts()` ran after every batch and counted the whole queue: 10 ms at 88,000 entries,
        # 137 ms at 1,000,000, so a big first sync spent minutes counting. The counts are now
        # kept per (connector, type) by triggers, in the same transaction as the rows, so they
        # are exact and cost one small update per inserted or deleted entry. An upsert that
        # coalesces into an existing entry fires no INSERT trigger.
        """
        CREATE TABLE queue_counts (
            connector TEXT    NOT NULL,
            item_type TEXT    NOT NULL,
            n         INTEGER NOT NULL,
            PRIMARY KEY (connector, item_type)
        ) WITHOUT ROWID
        """,
        """
        INSERT INTO queue_counts (connector, item_type, n)
            SELECT connector, item_type, count(*) FROM queue_entries GROUP BY connector, item_type
        """,
        """
        CREATE TRIGGER queue_entries_counted AFTER INSERT ON queue_entries BEGIN
            INSERT INTO queue_counts (connector, item_type, n)
                VALUES (new.connector, new.item_type, 1)
                ON CONFLICT (connector, item_type) DO UPDATE SET n = n + 1;
        END
        """,
        """
        CREATE TRIGGER queue_entries_uncounted AFTER DELETE ON queue_entries BEGIN
            UPDATE queue_counts SET n = n - 1
                WHERE connector = old.connector AND item_type = old.item_type;
        END
        """,
    ),
)

#: Every migration, oldest first; ``MIGRATIONS[i].version == i + 1``.
MIGRATIONS: Sequence[Migration] = (_V1, _V2)

#: The schema version this code writes.
LATEST: Final = len(MIGRATIONS)

_TABLE = "catalogsync_schema"


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the schema version of the database (0 for a fresh file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_TABLE,)
    ).fetchone()
    if exists is None:
        return 0
    (version,) = conn.execute(f"SELECT coalesce(max(version), 0) FROM {_TABLE}").fetchone()  # noqa: S608
    return int(version)


def _refuse_newer(version: int, known: int) -> None:
    if version > known:
        msg = (
            f"the database schema is version {version}, newer than this catalogsync knows "
            f"({known}): it was migrated by a newer catalogsync; upgrade catalogsync to use it"
        )
        raise SchemaVersionError(msg)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] | None = None) -> int:
    """
    Apply the pending *migrations* (default: `MIGRATIONS`) on *conn*; return the version.

    The connection must be in autocommit mode (``isolation_level=None``) and outside a
    transaction. Raises `SchemaVersionError` for a database newer than the code.
    """
    steps = MIGRATIONS if migrations is None else migrations
    known = len(steps)
    version = schema_version(conn)  # cheap check first: the common case is "up to date"
    _refuse_newer(version, known)
    if version == known:
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        version = schema_version(conn)  # again, under the write lock: another process may have won
        _refuse_newer(version, known)
        for step in steps[version:]:
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {_TABLE} (version, description, applied_at) VALUES (?, ?, ?)",  # noqa: S608
                (step.version, step.description, utcnow().isoformat()),
            )
            version = step.version
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version
