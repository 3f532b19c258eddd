"""
Versioned schema migrations for the PostgreSQL backends.

Rule 1: the schema carries its version in ``schema_version`` (one row per applied migration).
Code that finds a newer version than it knows refuses to run (`SchemaVersionError`); an older
version is migrated, automatically on first use or explicitly with `migrate`.

Rule 2: a migration runs in one transaction that first takes a transaction-level advisory lock
keyed by the schema name, so two processes migrating at once serialize: the second one waits,
then finds the work done. DDL is transactional in PostgreSQL, so a failed migration leaves nothing.

Rule 3: migrations are append-only. Never edit a released one; add the next.

Design of version 1:

* ``queue``: the small hot table of pending changes, one row per (connector, type, ref), with a
  single ``visible_at`` column for both "ready since" and "leased until" (the pgmq pattern) and an
  index matching the lease query exactly. Rows are deleted on ack, history lives elsewhere.
  Autovacuum is tuned per table because every lease and ack leaves dead tuples.
* ``queue_version``: a sequence, so versions are unique and increasing across ``replace_all``.
* ``connectors``, ``events``, ``iterations``, ``item_statuses``, ``sent_states``, ``sent_links``:
  the state store. A partial unique index allows one active event per connector. Identifiers use
  the ``C`` collation (byte order, like Python's ``sorted``); free text lives in ``json`` columns
  (not ``jsonb``, which cannot hold ``\\u0000``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._clock import Clock
from ._db import Database, lock_key, too_new


if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool


__all__ = ["SCHEMA_VERSION", "migrate"]

_V1 = (
    """
    CREATE TABLE {s}.queue (
        connector   text COLLATE "C" NOT NULL,
        item_type   text COLLATE "C" NOT NULL,
        ref         text COLLATE "C" NOT NULL,
        kind        text NOT NULL,
        version     bigint NOT NULL,
        seq         bigint NOT NULL,
        attempts    integer NOT NULL DEFAULT 0,
        force       boolean NOT NULL DEFAULT false,
        visible_at  timestamptz NOT NULL,
        enqueued_at timestamptz NOT NULL,
        owner       text COLLATE "C",
        lease_id    uuid,
        PRIMARY KEY (connector, item_type, ref)
    ) WITH (
        fillfactor = 80,
        autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_vacuum_threshold = 1000,
        autovacuum_analyze_scale_factor = 0.05
    )
    """,
    "CREATE INDEX queue_line ON {s}.queue (connector, visible_at, seq)",
    "CREATE SEQUENCE {s}.queue_version AS bigint",
    # The lease, ack and release/extend functions. Why functions:
    # * Plans that do not depend on statistics. A queue table is often new or just grown, and
    #   then the planner misjudges "connector = $1 AND visible_at <= $2" as a handful of rows: it
    #   sorts every pending row on each lease, or hash-joins the whole table to find the leased
    #   keys. Here the claim runs with sorting off (it walks queue_line in order and stops after
    #   p_limit rows), and the fenced writers probe the primary key once per lease (a lateral
    #   subquery with a locking clause cannot be flattened into a hash join).
    # * Exactness in one round trip. Each function first locks its rows and collects their
    #   ctids, then changes them by ctid in a second statement, which (READ COMMITTED, volatile
    #   function) takes a new snapshot and therefore sees the very row versions it locked.
    # * Lock order. The fenced writers lock in (item_type, ref) order, like enqueue and
    #   replace_all, so they cannot deadlock one another; the claim skips locked rows.
    """
    CREATE FUNCTION {s}.claim(
        p_connector text, p_now timestamptz, p_limit integer,
        p_owner text, p_deadline timestamptz, p_token uuid
    ) RETURNS TABLE (
        o_item_type text, o_ref text, o_kind text, o_version bigint,
        o_attempts integer, o_force boolean, o_visible_at timestamptz, o_seq bigint
    )
    LANGUAGE plpgsql
    SET enable_sort = off
    AS $fn$
    DECLARE
        ids tid[];
        seqs bigint[];
        visible timestamptz[];
    BEGIN
        SELECT array_agg(c.id), array_agg(c.seq), array_agg(c.visible_at)
        INTO ids, seqs, visible
        FROM (
            SELECT q.ctid AS id, q.seq, q.visible_at
            FROM {s}.queue AS q
            WHERE q.connector = p_connector AND q.visible_at <= p_now
            ORDER BY q.visible_at, q.seq
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) AS c;
        IF ids IS NULL THEN
            RETURN;
        END IF;
        RETURN QUERY
        WITH u AS (
            UPDATE {s}.queue AS q
            SET owner = p_owner, visible_at = p_deadline, attempts = q.attempts + 1,
                lease_id = p_token
            WHERE q.ctid = ANY (ids)
            RETURNING q.item_type, q.ref, q.kind, q.version, q.attempts, q.force, q.seq
        )
        SELECT u.item_type, u.ref, u.kind, u.version, u.attempts, u.force, o.visible_at, u.seq
        FROM u JOIN unnest(seqs, visible) AS o (seq, visible_at) ON o.seq = u.seq;
    END
    $fn$
    """,
    """
    CREATE FUNCTION {s}.held(
        p_connector text, p_now timestamptz,
        p_types text[], p_refs text[], p_versions bigint[], p_owners text[]
    ) RETURNS TABLE (o_id tid, o_current boolean)
    LANGUAGE sql
    AS $fn$
        SELECT q.id, q.version = a.v
        FROM (
            SELECT * FROM unnest(p_types, p_refs, p_versions, p_owners) AS a (t, r, v, o)
            ORDER BY a.t COLLATE "C", a.r COLLATE "C"
        ) AS a
        CROSS JOIN LATERAL (
            SELECT q.ctid AS id, q.version
            FROM {s}.queue AS q
            WHERE q.connector = p_connector AND q.item_type = a.t AND q.ref = a.r
                AND q.owner = a.o AND q.visible_at > p_now
            FOR UPDATE
        ) AS q
    $fn$
    """,
    """
    CREATE FUNCTION {s}.ack(
        p_connector text, p_now timestamptz,
        p_types text[], p_refs text[], p_versions bigint[], p_owners text[]
    ) RETURNS bigint
    LANGUAGE plpgsql
    AS $fn$
    DECLARE
        done tid[];
        stale tid[];
        acked bigint;
    BEGIN
        SELECT array_agg(h.o_id) FILTER (WHERE h.o_current),
               array_agg(h.o_id) FILTER (WHERE NOT h.o_current)
        INTO done, stale
        FROM {s}.held(p_connector, p_now, p_types, p_refs, p_versions, p_owners) AS h;
        DELETE FROM {s}.queue WHERE ctid = ANY (done);
        GET DIAGNOSTICS acked = ROW_COUNT;
        -- a newer version arrived while leased: back in line at once
        UPDATE {s}.queue SET owner = NULL, visible_at = p_now, lease_id = NULL
        WHERE ctid = ANY (stale);
        RETURN acked;
    END
    $fn$
    """,
    """
    CREATE FUNCTION {s}.move(
        p_connector text, p_now timestamptz, p_at timestamptz, p_release boolean,
        p_types text[], p_refs text[], p_versions bigint[], p_owners text[]
    ) RETURNS bigint
    LANGUAGE plpgsql
    AS $fn$
    DECLARE
        ids tid[];
        moved bigint;
    BEGIN
        SELECT array_agg(h.o_id) INTO ids
        FROM {s}.held(p_connector, p_now, p_types, p_refs, p_versions, p_owners) AS h;
        IF p_release THEN
            UPDATE {s}.queue SET owner = NULL, visible_at = p_at, lease_id = NULL
            WHERE ctid = ANY (ids);
        ELSE
            UPDATE {s}.queue SET visible_at = p_at WHERE ctid = ANY (ids);
        END IF;
        GET DIAGNOSTICS moved = ROW_COUNT;
        RETURN moved;
    END
    $fn$
    """,
    """
    CREATE TABLE {s}.connectors (
        id      text COLLATE "C" PRIMARY KEY,
        channel text COLLATE "C" NOT NULL,
        account text COLLATE "C" NOT NULL,
        data    json NOT NULL
    )
    """,
    "CREATE INDEX connectors_account ON {s}.connectors (account, channel)",
    """
    CREATE TABLE {s}.events (
        id               text COLLATE "C" PRIMARY KEY,
        connector_id     text COLLATE "C" NOT NULL,
        trigger          text NOT NULL,
        status           text NOT NULL,
        started_at       timestamptz NOT NULL,
        finished_at      timestamptz,
        channel          text COLLATE "C" NOT NULL,
        snapshot         json NOT NULL,
        errors           json NOT NULL,
        pending_category bigint NOT NULL DEFAULT 0,
        pending_product  bigint NOT NULL DEFAULT 0,
        pending_variant  bigint NOT NULL DEFAULT 0,
        retry_of         text COLLATE "C",
        superseded_by    text COLLATE "C",
        iteration_count  integer NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE UNIQUE INDEX events_one_active ON {s}.events (connector_id)
        WHERE status IN ('in_progress', 'paused')
    """,
    "CREATE INDEX events_by_connector ON {s}.events (connector_id, started_at DESC, id DESC)",
    "CREATE INDEX events_by_start ON {s}.events (started_at DESC, id DESC)",
    """
    CREATE TABLE {s}.iterations (
        id                    text COLLATE "C" PRIMARY KEY,
        event_id              text COLLATE "C" NOT NULL REFERENCES {s}.events (id),
        number                integer NOT NULL,
        worker                text NOT NULL,
        started_at            timestamptz NOT NULL,
        finished_at           timestamptz,
        synchronized_category bigint NOT NULL DEFAULT 0,
        synchronized_product  bigint NOT NULL DEFAULT 0,
        synchronized_variant  bigint NOT NULL DEFAULT 0,
        failed_category       bigint NOT NULL DEFAULT 0,
        failed_product        bigint NOT NULL DEFAULT 0,
        failed_variant        bigint NOT NULL DEFAULT 0,
        unchanged_category    bigint NOT NULL DEFAULT 0,
        unchanged_product     bigint NOT NULL DEFAULT 0,
        unchanged_variant     bigint NOT NULL DEFAULT 0,
        skipped_category      bigint NOT NULL DEFAULT 0,
        skipped_product       bigint NOT NULL DEFAULT 0,
        skipped_variant       bigint NOT NULL DEFAULT 0,
        UNIQUE (event_id, number)
    )
    """,
    """
    CREATE TABLE {s}.item_statuses (
        event_id     text COLLATE "C" NOT NULL REFERENCES {s}.events (id),
        item_type    text COLLATE "C" NOT NULL,
        ref          text COLLATE "C" NOT NULL,
        connector_id text COLLATE "C" NOT NULL,
        state        text NOT NULL,
        updated_at   timestamptz NOT NULL,
        detail       json NOT NULL,
        PRIMARY KEY (event_id, item_type, ref)
    )
    """,
    "CREATE INDEX item_statuses_connector ON {s}.item_statuses (connector_id, updated_at DESC)",
    "CREATE INDEX item_statuses_event ON {s}.item_statuses (event_id, updated_at DESC)",
    "CREATE INDEX item_statuses_time ON {s}.item_statuses (updated_at DESC)",
    """
    CREATE TABLE {s}.sent_states (
        connector_id text COLLATE "C" NOT NULL,
        item_type    text COLLATE "C" NOT NULL,
        ref          text COLLATE "C" NOT NULL,
        data         json NOT NULL,
        PRIMARY KEY (connector_id, item_type, ref)
    )
    """,
    """
    CREATE TABLE {s}.sent_links (
        connector_id text COLLATE "C" NOT NULL,
        child_type   text COLLATE "C" NOT NULL,
        parent_ref   text COLLATE "C" NOT NULL,
        child_ref    text COLLATE "C" NOT NULL,
        PRIMARY KEY (connector_id, child_type, parent_ref, child_ref)
    )
    """,
    "CREATE INDEX sent_links_child ON {s}.sent_links (connector_id, child_type, child_ref)",
)

# Version 2: queue counts without counting the queue. `counts()` runs after every batch, and a
# count(*) of the queue took 29 ms at 88,000 entries and 273 ms at 1,000,000: a big sync spent
# most of its time counting. Statement-level triggers now append one delta row per statement and
# item type (inserted rows count +1, deleted -1; an upsert that coalesces inserts nothing). They
# only append, so concurrent workers never wait on a shared counter row; `counts()` sums them
# and folds a connector's deltas into one row per type (`count_queue`), which keeps the table a
# handful of rows per connector.
_V2 = (
    """
    CREATE TABLE {s}.queue_counts (
        connector text COLLATE "C" NOT NULL,
        item_type text COLLATE "C" NOT NULL,
        n         bigint NOT NULL
    ) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000)
    """,
    "CREATE INDEX queue_counts_connector ON {s}.queue_counts (connector)",
    """
    INSERT INTO {s}.queue_counts (connector, item_type, n)
    SELECT connector, item_type, count(*) FROM {s}.queue GROUP BY connector, item_type
    """,
    """
    CREATE FUNCTION {s}.queue_counted() RETURNS trigger
    LANGUAGE plpgsql
    AS $fn$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO {s}.queue_counts (connector, item_type, n)
            SELECT connector, item_type, count(*) FROM counted_rows GROUP BY connector, item_type;
        ELSE
            INSERT INTO {s}.queue_counts (connector, item_type, n)
            SELECT connector, item_type, -count(*) FROM counted_rows GROUP BY connector, item_type;
        END IF;
        RETURN NULL;
    END
    $fn$
    """,
    """
    CREATE TRIGGER queue_inserted AFTER INSERT ON {s}.queue
    REFERENCING NEW TABLE AS counted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.queue_counted()
    """,
    """
    CREATE TRIGGER queue_deleted AFTER DELETE ON {s}.queue
    REFERENCING OLD TABLE AS counted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.queue_counted()
    """,
    # Any snapshot sees a fold whole or not at all, so the sum of a connector's rows is exact
    # whenever it is read. Folding is compaction only: one caller at a time per connector does it
    # (a try-lock, shared by every schema: the others just read), then the sum is read afresh.
    """
    CREATE FUNCTION {s}.count_queue(p_connector text)
    RETURNS TABLE (o_item_type text, o_n bigint)
    LANGUAGE plpgsql
    AS $fn$
    BEGIN
        IF pg_try_advisory_xact_lock(hashtext('catalogsync.counts'), hashtext(p_connector)) THEN
            WITH gone AS (
                DELETE FROM {s}.queue_counts WHERE connector = p_connector
                RETURNING item_type, n
            )
            INSERT INTO {s}.queue_counts (connector, item_type, n)
            SELECT p_connector, item_type, sum(n) FROM gone GROUP BY item_type
            HAVING sum(n) <> 0;
        END IF;
        RETURN QUERY
        SELECT c.item_type::text, sum(c.n)::bigint FROM {s}.queue_counts AS c
        WHERE c.connector = p_connector GROUP BY c.item_type HAVING sum(c.n) > 0;
    END
    $fn$
    """,
)

#: ``(version, description, statements)``, append-only.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "queue, sequence and state store tables", _V1),
    (2, "queue counts kept by triggers", _V2),
)

#: The schema version this catalogsync writes and reads.
SCHEMA_VERSION = MIGRATIONS[-1][0]


def read_version(db: Database, conn: Connection[Any]) -> int:
    """Return the schema's version, 0 when it has never been migrated."""
    row = conn.execute("SELECT to_regclass(%s)", [db.qualified_version_table]).fetchone()
    if row is None or row[0] is None:
        return 0
    row = conn.execute(db.sql("SELECT max(version) FROM {s}.schema_version")).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def apply_migrations(db: Database, conn: Connection[Any]) -> int:
    """Apply the missing migrations under the schema's advisory lock; return the new version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock(db)])
        conn.execute(db.sql("CREATE SCHEMA IF NOT EXISTS {s}"))
        conn.execute(
            db.sql(
                "CREATE TABLE IF NOT EXISTS {s}.schema_version ("
                " version integer PRIMARY KEY,"
                " description text NOT NULL,"
                " applied_at timestamptz NOT NULL)"
            )
        )
        current = read_version(db, conn)
        if current > SCHEMA_VERSION:
            raise too_new(db.schema, current, SCHEMA_VERSION)
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(db.sql(statement))
            conn.execute(
                db.sql(
                    "INSERT INTO {s}.schema_version (version, description, applied_at)"
                    " VALUES (%s, %s, %s)"
                ),
                [version, description, db.clock.now()],
            )
            current = version
        return current


def _lock(db: Database) -> int:
    return lock_key("migrate", db.schema)


def migrate(
    dsn_or_pool: str | ConnectionPool[Any],
    *,
    schema: str = "catalogsync",
    clock: Clock | None = None,
) -> int:
    """
    Create or upgrade the catalogsync tables in *schema*; return the schema version.

    Safe to run from several processes at once and to run again (it does nothing when the schema
    is current). Backends also migrate on first use unless created with ``auto_migrate=False``;
    call this from your deployment step when the application's database role may not run DDL.

    Args:
        dsn_or_pool: A libpq connection string or a `psycopg_pool.ConnectionPool`.
        schema: The schema to migrate (created if missing).
        clock: Source of the ``applied_at`` timestamps.

    Raises:
        SchemaVersionError: The schema was migrated by a newer catalogsync.
        BackendError: The database could not be reached or refused the DDL.

    .. versionadded:: 0.1.0
    """
    db = Database(
        dsn_or_pool, schema=schema, clock=clock, auto_migrate=True, max_size=1, timeout=30.0
    )
    try:
        return db.migrate()
    finally:
        db.close()
