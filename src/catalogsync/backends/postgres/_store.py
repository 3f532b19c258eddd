"""
`PostgresStore`: the `StateStore` on PostgreSQL.

Design notes:

* Rows mirror the memory store: connectors, events (snapshot and general errors as JSON, live
  pending counts as columns), iterations (count columns, added to by `commit`), item statuses
  (unique per event, type and ref), sent states (memo inside their JSON) and ``sent_links``, the
  parent -> child index behind `sent_children`.
* Models are stored with the storage converter of ``catalogsync._convert``; columns duplicate
  only what queries filter or sort on.
* ``open_event`` relies on the partial unique index ``events_one_active``: at most one in-progress
  or paused event per connector, whatever the number of processes.
* ``commit`` is one transaction: it first bumps the iteration's counts (which fails with
  `NotFoundError`, writing nothing, for an unknown iteration), then writes statuses, sent states
  and links with one set-based statement each.

Retry policy after a lost connection: reads, ``save_connector``, ``open_event`` (it recognises
its own event), ``set_pending``, ``start_iteration`` (the iteration id is chosen before the first
attempt and looked up first) and ``finish_iteration`` are retried once. ``transition`` (a
compare-and-set whose second attempt would report a false conflict), ``add_errors`` (would append
twice) and ``commit`` (would add the counts twice) raise a retryable `BackendError` instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ..._clock import Clock
from ..._convert import make_converter
from ..._errors import ConflictError, InvalidArgumentError, NotFoundError
from ..._ids import new_id
from ..._models import (
    ConfigSnapshot,
    Connector,
    Counts,
    EventStatus,
    GeneralError,
    ItemKey,
    ItemState,
    ItemStatus,
    ItemType,
    Iteration,
    SyncEvent,
)
from ...typing import (
    EventQuery,
    HistoryQuery,
    HistoryRecord,
    ItemQuery,
    ItemRecord,
    Page,
    SentState,
    StatusCounts,
)
from .._common import like_pattern
from ._db import PostgresBackend, check_text


if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool


__all__ = ["PostgresStore"]

_TYPES: Final = tuple(ItemType)
_ACTIVE: Final = [EventStatus.IN_PROGRESS.value, EventStatus.PAUSED.value]
_COUNT_KINDS: Final = ("synchronized", "failed", "unchanged", "skipped")

_EVENT_COLUMNS: Final = (
    "id, connector_id, trigger, status, started_at, finished_at, snapshot, errors,"
    " pending_category, pending_product, pending_variant, retry_of, superseded_by"
)
_ITERATION_COLUMNS: Final = "id, event_id, number, worker, started_at, finished_at, " + ", ".join(
    f"{kind}_{t.value}" for kind in _COUNT_KINDS for t in _TYPES
)

_SAVE_CONNECTOR = """
INSERT INTO {s}.connectors (id, channel, account, data) VALUES (%s, %s, %s, %s::json)
ON CONFLICT (id) DO UPDATE
SET channel = EXCLUDED.channel, account = EXCLUDED.account, data = EXCLUDED.data
"""

_INSERT_EVENT = (
    "INSERT INTO {s}.events ("  # noqa: S608 - constant fragments
    + _EVENT_COLUMNS
    + ", channel) VALUES (%(id)s, %(connector_id)s, %(trigger)s, %(status)s, %(started_at)s,"
    " %(finished_at)s, %(snapshot)s::json, %(errors)s::json, %(pc)s, %(pp)s, %(pv)s,"
    " %(retry_of)s, %(superseded_by)s, %(channel)s)"
)

_OPEN_ACTIVE = (
    _INSERT_EVENT
    + " ON CONFLICT (connector_id) WHERE status IN ('in_progress', 'paused') DO NOTHING"
    " RETURNING id"
)
_OPEN_OTHER = _INSERT_EVENT + " ON CONFLICT (id) DO NOTHING"

_TRANSITION = """
UPDATE {s}.events
SET status = %(status)s,
    finished_at = %(finished_at)s,
    superseded_by = COALESCE(%(superseded_by)s, superseded_by),
    pending_category = CASE WHEN %(finished)s THEN 0 ELSE pending_category END,
    pending_product = CASE WHEN %(finished)s THEN 0 ELSE pending_product END,
    pending_variant = CASE WHEN %(finished)s THEN 0 ELSE pending_variant END
WHERE id = %(id)s AND status = ANY(%(expected)b::text[])
"""

_START_ITERATION = """
WITH n AS (
    UPDATE {s}.events SET iteration_count = iteration_count + 1 WHERE id = %(event_id)s
    RETURNING iteration_count
)
INSERT INTO {s}.iterations (id, event_id, number, worker, started_at)
SELECT %(id)s, %(event_id)s, n.iteration_count, %(worker)s, %(at)s FROM n
RETURNING number
"""

_BUMP_ITERATION = (
    "UPDATE {s}.iterations SET "  # noqa: S608 - constant fragments
    + ", ".join(
        f"{kind}_{t.value} = {kind}_{t.value} + %({kind}_{t.value})s"
        for kind in _COUNT_KINDS
        for t in _TYPES
    )
    + " WHERE id = %(id)s AND event_id = %(event_id)s RETURNING 1"
)

_UPSERT_STATUSES = """
INSERT INTO {s}.item_statuses AS s
    (event_id, item_type, ref, connector_id, state, updated_at, detail)
SELECT e, t, r, c, st, u, d::json
FROM unnest(%(e)b::text[], %(t)b::text[], %(r)b::text[], %(c)b::text[], %(st)b::text[],
            %(u)b::timestamptz[], %(d)b::text[]) AS x (e, t, r, c, st, u, d)
ORDER BY e COLLATE "C", t COLLATE "C", r COLLATE "C"
ON CONFLICT (event_id, item_type, ref) DO UPDATE
SET connector_id = EXCLUDED.connector_id, state = EXCLUDED.state,
    updated_at = EXCLUDED.updated_at, detail = EXCLUDED.detail
"""

_UNLINK = """
DELETE FROM {s}.sent_links AS l
USING unnest(%(c)b::text[], %(t)b::text[], %(r)b::text[]) AS x (c, t, r)
WHERE l.connector_id = x.c AND l.child_type = x.t AND l.child_ref = x.r
"""

_FORGET = """
DELETE FROM {s}.sent_states AS s
USING unnest(%(c)b::text[], %(t)b::text[], %(r)b::text[]) AS x (c, t, r)
WHERE s.connector_id = x.c AND s.item_type = x.t AND s.ref = x.r
"""

_UPSERT_STATES = """
INSERT INTO {s}.sent_states AS s (connector_id, item_type, ref, data)
SELECT c, t, r, d::json
FROM unnest(%(c)b::text[], %(t)b::text[], %(r)b::text[], %(d)b::text[]) AS x (c, t, r, d)
ORDER BY c COLLATE "C", t COLLATE "C", r COLLATE "C"
ON CONFLICT (connector_id, item_type, ref) DO UPDATE SET data = EXCLUDED.data
"""

_LINK = """
INSERT INTO {s}.sent_links (connector_id, child_type, parent_ref, child_ref)
SELECT c, t, p, r
FROM unnest(%(c)b::text[], %(t)b::text[], %(p)b::text[], %(r)b::text[]) AS x (c, t, p, r)
ON CONFLICT DO NOTHING
"""

_STATUS_ORDER: Final = " ORDER BY s.updated_at DESC, s.event_id, s.item_type, s.ref"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _counts(row: Sequence[Any]) -> Counts:
    return Counts(category=int(row[0]), product=int(row[1]), variant=int(row[2]))


def _live(values: Collection[str]) -> list[str]:
    # Refs with a NUL can never have been stored, so they simply match nothing.
    return [v for v in values if isinstance(v, str) and "\x00" not in v]


def _bump_params(iteration: Iteration, deltas: Sequence[Counts]) -> dict[str, Any]:
    params: dict[str, Any] = {"id": iteration.id, "event_id": iteration.event_id}
    for kind, counts in zip(_COUNT_KINDS, deltas, strict=True):
        if not isinstance(counts, Counts):
            raise InvalidArgumentError(f"{kind} must be Counts", field=kind)
        for item_type, n in counts:
            params[f"{kind}_{item_type.value}"] = n
    return params


_Key = tuple[str, ItemType, str]


def _reduce_records(
    records: Sequence[ItemRecord],
) -> tuple[dict[_Key, ItemStatus], dict[_Key, SentState | None]]:
    """The last status per (event, type, ref); the final state (or None: forget) per key."""
    last_status: dict[_Key, ItemStatus] = {}
    final: dict[_Key, SentState | None] = {}
    for record in records:
        if not isinstance(record, ItemRecord):
            raise InvalidArgumentError("commit takes ItemRecord values", field="records")
        s = record.status
        check_text(s.event_id, "ItemStatus.event_id")
        check_text(s.connector_id, "ItemStatus.connector_id")
        check_text(s.ref, "ItemStatus.ref")
        last_status[(s.event_id, s.type, s.ref)] = s
        if record.forget:
            final[(s.connector_id, s.type, s.ref)] = None
        elif record.state is not None:
            for parent in record.state.parents:
                check_text(parent, "SentState.parents")
            final[(s.connector_id, s.type, s.ref)] = record.state
    return last_status, final


class PostgresStore(PostgresBackend):
    """
    A `catalogsync.typing.StateStore` on PostgreSQL (``catalogsync[postgres]``).

    Workers on many hosts may share one store: ``open_event`` is atomic across processes (a
    partial unique index), ``transition`` is a compare-and-set, and ``commit`` is one transaction.

    Example:
        >>> from catalogsync import Connector
        >>> from catalogsync.backends.postgres import PostgresStore
        >>> with PostgresStore("postgresql://app@db/pim") as store:  # doctest: +SKIP
        ...     store.save_connector(Connector("shop", "shopify", account="acme"))
        ...     store.get_connector("shop").account
        'acme'

    Args:
        dsn_or_pool: A libpq connection string, for which the store opens (and `close`
            closes) its own pool, or a `psycopg_pool.ConnectionPool` that you own and close.
        schema: The schema holding the tables (created and migrated on first use).
        clock: Source of time (the store records the times callers pass; the clock stamps
            migrations).
        auto_migrate: Migrate an older or missing schema on first use (see `PostgresQueue`).
        max_size: Connections in the store's own pool (ignored for a pool you pass).
        timeout: Seconds to wait for a free pooled connection (own pool only).

    Raises:
        ImportError: psycopg is not installed (install ``catalogsync[postgres]``).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "catalogsync",
        clock: Clock | None = None,
        auto_migrate: bool = True,
        max_size: int = 4,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(
            dsn_or_pool,
            schema=schema,
            clock=clock,
            auto_migrate=auto_migrate,
            max_size=max_size,
            timeout=timeout,
        )
        self._conv = make_converter()
        sql = self._db.sql
        self._sql = {
            "save_connector": sql(_SAVE_CONNECTOR),
            "get_connector": sql("SELECT data FROM {s}.connectors WHERE id = %s"),
            "list_connectors": sql("SELECT data FROM {s}.connectors ORDER BY id"),
            "open_active": sql(_OPEN_ACTIVE),
            "open_other": sql(_OPEN_OTHER),
            "event": sql(f"SELECT {_EVENT_COLUMNS} FROM {{s}}.events WHERE id = %s"),  # noqa: S608 - constant columns
            "active": sql(
                f"SELECT {_EVENT_COLUMNS} FROM {{s}}.events"  # noqa: S608 - constant columns
                " WHERE connector_id = %s AND status = ANY(%b::text[])"
            ),
            "iterations": sql(
                f"SELECT {_ITERATION_COLUMNS} FROM {{s}}.iterations"  # noqa: S608 - constant columns
                " WHERE event_id = ANY(%b::text[]) ORDER BY event_id, number"
            ),
            "status": sql("SELECT status FROM {s}.events WHERE id = %s"),
            "transition": sql(_TRANSITION),
            "errors_for_update": sql("SELECT errors FROM {s}.events WHERE id = %s FOR UPDATE"),
            "set_errors": sql("UPDATE {s}.events SET errors = %s::json WHERE id = %s"),
            "set_pending": sql(
                "UPDATE {s}.events SET pending_category = %s, pending_product = %s,"
                " pending_variant = %s WHERE id = %s"
            ),
            "start_iteration": sql(_START_ITERATION),
            "iteration_number": sql("SELECT number FROM {s}.iterations WHERE id = %s"),
            "bump_iteration": sql(_BUMP_ITERATION),
            "finish_iteration": sql(
                "UPDATE {s}.iterations SET finished_at = %s WHERE id = %s AND event_id = %s"
            ),
            "upsert_statuses": sql(_UPSERT_STATUSES),
            "unlink": sql(_UNLINK),
            "forget": sql(_FORGET),
            "upsert_states": sql(_UPSERT_STATES),
            "link": sql(_LINK),
            "sent_states": sql(
                "SELECT ref, data FROM {s}.sent_states"
                " WHERE connector_id = %s AND item_type = %s AND ref = ANY(%b::text[])"
            ),
            "sent_children": sql(
                "SELECT parent_ref, child_ref FROM {s}.sent_links"
                " WHERE connector_id = %s AND child_type = %s AND parent_ref = ANY(%b::text[])"
                " ORDER BY parent_ref, child_ref"
            ),
            "status_counts": sql(
                "SELECT state, item_type, count(*) FROM {s}.item_statuses"
                " WHERE event_id = %s AND state IN ('done', 'error') GROUP BY state, item_type"
            ),
            "failed_keys": sql(
                "SELECT item_type, ref FROM {s}.item_statuses"
                " WHERE event_id = %s AND state = 'error' ORDER BY item_type, ref"
            ),
        }

    # -- helpers --------------------------------------------------------------------------------

    def _json(self, value: Any) -> str:
        return json.dumps(self._conv.unstructure(value), separators=(",", ":"), ensure_ascii=False)

    def _retried(self, action: str, fn: Callable[[Connection[Any]], Any]) -> Any:
        """Run *fn*, once more after a lost connection (only for work that may repeat)."""
        return self._db.run(action, fn, retry=fn)

    def _event_from(self, row: Sequence[Any], iterations: Sequence[Iteration]) -> SyncEvent:
        return SyncEvent(
            row[0],
            row[1],
            row[2],
            row[3],
            _utc(row[4]),
            self._conv.structure(row[6], ConfigSnapshot),
            finished_at=_opt_utc(row[5]),
            errors=self._conv.structure(row[7], tuple[GeneralError, ...]),
            pending=_counts(row[8:11]),
            retry_of=row[11],
            superseded_by=row[12],
            iterations=iterations,
        )

    @staticmethod
    def _iteration_from(row: Sequence[Any]) -> Iteration:
        return Iteration(
            row[0],
            row[1],
            row[2],
            row[3],
            _utc(row[4]),
            _opt_utc(row[5]),
            synchronized=_counts(row[6:9]),
            failed=_counts(row[9:12]),
            unchanged=_counts(row[12:15]),
            skipped=_counts(row[15:18]),
        )

    def _events_with_iterations(
        self, conn: Connection[Any], rows: Sequence[Sequence[Any]]
    ) -> list[SyncEvent]:
        if not rows:
            return []
        by_event: dict[str, list[Iteration]] = {row[0]: [] for row in rows}
        for it in conn.execute(self._sql["iterations"], [list(by_event)]).fetchall():
            by_event[it[1]].append(self._iteration_from(it))
        return [self._event_from(row, by_event[row[0]]) for row in rows]

    # -- connectors -----------------------------------------------------------------------------

    def save_connector(self, connector: Connector) -> None:
        """Insert or replace a connector (never starts a synchronization, rule R03)."""
        if not isinstance(connector, Connector):
            raise InvalidArgumentError("save_connector takes a Connector", field="connector")
        params = [
            check_text(connector.id, "Connector.id"),
            check_text(connector.channel, "Connector.channel"),
            check_text(connector.account, "Connector.account"),
            self._json(connector),
        ]

        def save(conn: Connection[Any]) -> None:
            conn.execute(self._sql["save_connector"], params)

        self._retried("save_connector", save)

    def get_connector(self, connector_id: str) -> Connector:
        """Return a connector. Raises `NotFoundError`."""

        def get(conn: Connection[Any]) -> Any:
            return conn.execute(self._sql["get_connector"], [connector_id]).fetchone()

        row = self._retried("get_connector", get) if "\x00" not in connector_id else None
        if row is None:
            raise NotFoundError(f"no connector {connector_id!r}")
        connector: Connector = self._conv.structure(row[0], Connector)
        return connector

    def list_connectors(self) -> Sequence[Connector]:
        """Return every connector, by id."""

        def get(conn: Connection[Any]) -> list[Any]:
            return conn.execute(self._sql["list_connectors"]).fetchall()

        return [self._conv.structure(row[0], Connector) for row in self._retried("connectors", get)]

    # -- events ---------------------------------------------------------------------------------

    def _event_params(self, event: SyncEvent) -> dict[str, Any]:
        for name in ("id", "connector_id", "retry_of", "superseded_by"):
            value = getattr(event, name)
            if value is not None:
                check_text(value, f"SyncEvent.{name}")
        return {
            "id": event.id,
            "connector_id": event.connector_id,
            "trigger": event.trigger.value,
            "status": event.status.value,
            "started_at": event.started_at,
            "finished_at": event.finished_at,
            "snapshot": self._json(event.snapshot),
            "errors": self._json(event.errors),
            "pc": event.pending.category,
            "pp": event.pending.product,
            "pv": event.pending.variant,
            "retry_of": event.retry_of,
            "superseded_by": event.superseded_by,
            "channel": check_text(event.snapshot.channel, "ConfigSnapshot.channel"),
        }

    def open_event(self, event: SyncEvent) -> tuple[SyncEvent, bool]:
        """
        Insert *event* unless the connector already has an active event.

        Returns ``(the active event, whether it was created)``; ``ERROR`` events are inserted
        as they are. Atomic across processes (partial unique index ``events_one_active``).
        """
        if not isinstance(event, SyncEvent):
            raise InvalidArgumentError("open_event takes a SyncEvent", field="event")
        params = self._event_params(event)

        def open_(conn: Connection[Any]) -> tuple[SyncEvent, bool]:
            if not event.status.active:
                conn.execute(self._sql["open_other"], params)
                return event, True
            # Loop: the active event we collided with may finish before we read it.
            while True:
                if conn.execute(self._sql["open_active"], params).fetchone() is not None:
                    return event, True
                rows = conn.execute(self._sql["active"], [event.connector_id, _ACTIVE]).fetchall()
                if rows:
                    [current] = self._events_with_iterations(conn, rows)
                    # After a lost connection, the event found may be the one we inserted.
                    return current, current.id == event.id

        result: tuple[SyncEvent, bool] = self._retried("open_event", open_)
        return result

    def get_event(self, event_id: str) -> SyncEvent:
        """Return an event with its iterations. Raises `NotFoundError`."""

        def get(conn: Connection[Any]) -> list[SyncEvent]:
            rows = conn.execute(self._sql["event"], [event_id]).fetchall()
            return self._events_with_iterations(conn, rows)

        events = self._retried("get_event", get) if "\x00" not in event_id else []
        if not events:
            raise NotFoundError(f"no event {event_id!r}")
        event: SyncEvent = events[0]
        return event

    def event_status(self, event_id: str) -> EventStatus:
        """Return an event's current status without loading it. Raises `NotFoundError`."""

        def get(conn: Connection[Any]) -> Any:
            return conn.execute(self._sql["status"], [event_id]).fetchone()

        row = self._retried("event_status", get) if "\x00" not in event_id else None
        if row is None:
            raise NotFoundError(f"no event {event_id!r}")
        return EventStatus(row[0])

    def active_event(self, connector_id: str) -> SyncEvent | None:
        """Return the connector's in-progress or paused event, if any."""

        def get(conn: Connection[Any]) -> list[SyncEvent]:
            rows = conn.execute(self._sql["active"], [connector_id, _ACTIVE]).fetchall()
            return self._events_with_iterations(conn, rows)

        events = self._retried("active_event", get) if "\x00" not in connector_id else []
        return events[0] if events else None

    def events(self, query: EventQuery) -> Page[SyncEvent]:
        """Return events, newest first (iterations included)."""
        if not isinstance(query, EventQuery):
            raise InvalidArgumentError("events takes an EventQuery", field="query")
        where: list[str] = []
        params: dict[str, Any] = {"o": query.offset, "l": query.limit}
        if query.connector_id is not None:
            where.append("connector_id = %(c)s")
            params["c"] = query.connector_id
        if query.status is not None:
            where.append("status = %(st)s")
            params["st"] = query.status.value
        if query.since is not None:
            where.append("started_at >= %(since)s")
            params["since"] = query.since
        if query.until is not None:
            where.append("started_at < %(until)s")
            params["until"] = query.until
        condition = " WHERE " + " AND ".join(where) if where else ""
        total_statement = self._db.sql(f"SELECT count(*) FROM {{s}}.events{condition}")  # noqa: S608 - constant fragments, values are parameters
        statement = self._db.sql(
            f"SELECT {_EVENT_COLUMNS}, ({total_statement}) FROM {{s}}.events{condition}"  # noqa: S608 - as above
            " ORDER BY started_at DESC, id DESC OFFSET %(o)s LIMIT %(l)s"
        )

        def get(conn: Connection[Any]) -> tuple[list[SyncEvent], int]:
            rows = conn.execute(statement, params).fetchall()
            if rows:
                return self._events_with_iterations(conn, rows), int(rows[0][13])
            row = conn.execute(total_statement, params).fetchone()
            return [], int(row[0]) if row else 0

        if query.connector_id is not None and "\x00" in query.connector_id:
            return Page((), 0, query.offset, query.limit)
        events, total = self._retried("events", get)
        return Page(tuple(events), total, query.offset, query.limit)

    def transition(
        self,
        event_id: str,
        *,
        expected: Collection[EventStatus],
        status: EventStatus,
        at: datetime,
        finished: bool = False,
        superseded_by: str | None = None,
    ) -> bool:
        """
        Set the event's status if it is currently one of *expected*; return whether it was.

        Not retried after a lost connection (a second compare-and-set would fail against the
        first one's result): the retryable `BackendError` asks the caller to check and retry.

        Raises:
            NotFoundError: No such event.
            ConflictError: The new status would make a second active event for the connector.
        """
        status = EventStatus(status)
        params = {
            "id": event_id,
            "status": status.value,
            "finished_at": at if finished else None,
            "finished": bool(finished),
            "superseded_by": None
            if superseded_by is None
            else check_text(superseded_by, "superseded_by"),
            "expected": [EventStatus(s).value for s in expected],
        }
        psycopg = self._db.psycopg

        def cas(conn: Connection[Any]) -> bool:
            try:
                changed = conn.execute(self._sql["transition"], params).rowcount
            except psycopg.errors.UniqueViolation as exc:
                msg = (
                    f"event {event_id!r} cannot become {status.value}: "
                    "its connector has another active event"
                )
                raise ConflictError(msg) from exc
            if changed:
                return True
            if conn.execute(self._sql["status"], [event_id]).fetchone() is None:
                raise NotFoundError(f"no event {event_id!r}")
            return False

        if "\x00" in event_id:
            raise NotFoundError(f"no event {event_id!r}")
        changed: bool = self._db.run("transition", cas)
        return changed

    def add_errors(self, event_id: str, errors: Sequence[GeneralError]) -> None:
        """Append general errors to an event (not retried: a repeat would append twice)."""
        extra = list(errors)
        for error in extra:
            if not isinstance(error, GeneralError):
                raise InvalidArgumentError("add_errors takes GeneralError values", field="errors")

        def append(conn: Connection[Any]) -> None:
            with conn.transaction():
                row = conn.execute(self._sql["errors_for_update"], [event_id]).fetchone()
                if row is None:
                    raise NotFoundError(f"no event {event_id!r}")
                current = self._conv.structure(row[0], tuple[GeneralError, ...])
                conn.execute(self._sql["set_errors"], [self._json((*current, *extra)), event_id])

        if "\x00" in event_id:
            raise NotFoundError(f"no event {event_id!r}")
        self._db.run("add_errors", append)

    def set_pending(self, event_id: str, pending: Counts) -> None:
        """Record the latest pending counts of an event."""
        if not isinstance(pending, Counts):
            raise InvalidArgumentError("pending must be Counts", field="pending")
        params = [pending.category, pending.product, pending.variant, event_id]

        def update(conn: Connection[Any]) -> int:
            return conn.execute(self._sql["set_pending"], params).rowcount

        if "\x00" in event_id or not self._retried("set_pending", update):
            raise NotFoundError(f"no event {event_id!r}")

    # -- iterations and batches -----------------------------------------------------------------

    def start_iteration(self, event_id: str, *, worker: str, at: datetime) -> Iteration:
        """Open a new iteration of *event_id* numbered after the existing ones."""
        iteration_id = new_id(at)
        params = {
            "id": iteration_id,
            "event_id": event_id,
            "worker": check_text(worker, "worker"),
            "at": at,
        }

        def start(conn: Connection[Any]) -> int | None:
            row = conn.execute(self._sql["start_iteration"], params).fetchone()
            return None if row is None else int(row[0])

        def restart(conn: Connection[Any]) -> int | None:
            row = conn.execute(self._sql["iteration_number"], [iteration_id]).fetchone()
            return int(row[0]) if row is not None else start(conn)

        number = (
            None if "\x00" in event_id else self._db.run("start_iteration", start, retry=restart)
        )
        if number is None:
            raise NotFoundError(f"no event {event_id!r}")
        return Iteration(iteration_id, event_id, number, worker, at)

    def commit(
        self,
        iteration: Iteration,
        records: Sequence[ItemRecord],
        *,
        synchronized: Counts,
        failed: Counts,
        unchanged: Counts,
        skipped: Counts,
    ) -> None:
        """
        Atomically upsert *records* and add the count deltas to *iteration*.

        One transaction; not retried after a lost connection (the counts would be added twice).

        Raises:
            NotFoundError: The iteration does not exist (nothing is written).
        """
        if not isinstance(iteration, Iteration):
            raise InvalidArgumentError("commit takes an Iteration", field="iteration")
        bump = _bump_params(iteration, (synchronized, failed, unchanged, skipped))
        writes = self._plan_commit(records)

        def write(conn: Connection[Any]) -> None:
            with conn.transaction():
                if conn.execute(self._sql["bump_iteration"], bump).fetchone() is None:
                    raise NotFoundError(f"no iteration {iteration.id!r}")
                for name, params in writes:
                    conn.execute(self._sql[name], params)

        if "\x00" in iteration.id or "\x00" in iteration.event_id:
            raise NotFoundError(f"no iteration {iteration.id!r}")
        self._db.run("commit", write)

    def _plan_commit(self, records: Sequence[ItemRecord]) -> list[tuple[str, dict[str, list[Any]]]]:
        """
        Reduce *records* to set-based writes with the memory store's sequential meaning.

        The last status per ``(event, type, ref)`` wins; per ``(connector, type, ref)`` the last
        record that forgets or sets a state decides. Rows are sorted so that concurrent commits
        lock them in the same order.
        """
        last_status, final = _reduce_records(records)
        statuses: dict[str, list[Any]] = {k: [] for k in ("e", "t", "r", "c", "st", "u", "d")}
        for s in sorted(last_status.values(), key=lambda s: (s.event_id, s.type, s.ref)):
            for name, value in zip(
                ("e", "t", "r", "c", "st", "u"),
                (s.event_id, s.type.value, s.ref, s.connector_id, s.state.value, s.updated_at),
                strict=True,
            ):
                statuses[name].append(value)
            statuses["d"].append(self._json(s))
        touched: dict[str, list[Any]] = {"c": [], "t": [], "r": []}
        forgotten: dict[str, list[Any]] = {"c": [], "t": [], "r": []}
        states: dict[str, list[Any]] = {"c": [], "t": [], "r": [], "d": []}
        links: dict[str, list[Any]] = {"c": [], "t": [], "p": [], "r": []}
        for (connector_id, item_type, ref), state in sorted(final.items(), key=lambda kv: kv[0]):
            for target in (touched, forgotten if state is None else states):
                target["c"].append(connector_id)
                target["t"].append(item_type.value)
                target["r"].append(ref)
            if state is not None:
                states["d"].append(self._json(state))
                for parent in dict.fromkeys(state.parents):
                    for name, value in zip(
                        ("c", "t", "p", "r"),
                        (connector_id, item_type.value, parent, ref),
                        strict=True,
                    ):
                        links[name].append(value)
        plan = (
            ("upsert_statuses", statuses),
            ("unlink", touched),
            ("forget", forgotten),
            ("upsert_states", states),
            ("link", links),
        )
        return [(name, params) for name, params in plan if params["r"]]

    def finish_iteration(self, iteration: Iteration, *, at: datetime) -> None:
        """Close an iteration. Raises `NotFoundError`."""
        params = [at, iteration.id, iteration.event_id]

        def update(conn: Connection[Any]) -> int:
            return conn.execute(self._sql["finish_iteration"], params).rowcount

        if "\x00" in iteration.id or not self._retried("finish_iteration", update):
            raise NotFoundError(f"no iteration {iteration.id!r}")

    def sent_states(
        self, connector_id: str, item_type: ItemType, refs: Collection[str]
    ) -> Mapping[str, SentState]:
        """Return the sent states of *refs* (absent: never delivered or forgotten)."""
        wanted = _live(refs)
        if not wanted or "\x00" in connector_id:
            return {}
        params = [connector_id, ItemType(item_type).value, wanted]

        def get(conn: Connection[Any]) -> list[Any]:
            return conn.execute(self._sql["sent_states"], params).fetchall()

        return {
            ref: self._conv.structure(data, SentState)
            for ref, data in self._retried("sent_states", get)
        }

    def sent_children(
        self, connector_id: str, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, tuple[str, ...]]:
        """Return, per parent ref, the refs of delivered *child_type* items that name it."""
        out: dict[str, list[str]] = {p: [] for p in parent_refs}
        wanted = _live(out)
        if wanted and "\x00" not in connector_id:
            params = [connector_id, ItemType(child_type).value, wanted]

            def get(conn: Connection[Any]) -> list[Any]:
                return conn.execute(self._sql["sent_children"], params).fetchall()

            for parent, child in self._retried("sent_children", get):
                out[parent].append(child)
        return {p: tuple(children) for p, children in out.items()}

    # -- queries --------------------------------------------------------------------------------

    def _page_of_statuses(
        self,
        action: str,
        columns: tuple[str, ...],
        from_clause: str,
        where: list[str],
        params: dict[str, Any],
    ) -> tuple[list[Any], int]:
        condition = " WHERE " + " AND ".join(where) if where else ""
        width = len(columns)
        total_statement = self._db.sql(f"SELECT count(*) {from_clause}{condition}")
        # The total as an uncorrelated subquery (computed once): a window count would make the
        # page query read and sort every matching row instead of stopping after the page.
        statement = self._db.sql(
            f"SELECT {', '.join(columns)}, ({total_statement}) {from_clause}{condition}"
            f"{_STATUS_ORDER} OFFSET %(o)s LIMIT %(l)s"
        )

        def get(conn: Connection[Any]) -> tuple[list[Any], int]:
            rows = conn.execute(statement, params).fetchall()
            if rows:
                return rows, int(rows[0][width])
            row = conn.execute(total_statement, params).fetchone()
            return [], int(row[0]) if row else 0

        result: tuple[list[Any], int] = self._retried(action, get)
        return result

    @staticmethod
    def _status_filters(
        where: list[str],
        params: dict[str, Any],
        *,
        ref_contains: str | None,
        state: ItemState | None,
        since: datetime | None,
    ) -> bool:
        """Add the shared filters; return ``False`` when nothing can match."""
        if ref_contains:
            if "\x00" in ref_contains:
                return False
            where.append("s.ref LIKE %(p)s ESCAPE '\\'")
            params["p"] = like_pattern(ref_contains)
        if state is not None:
            where.append("s.state = %(st)s")
            params["st"] = state.value
        if since is not None:
            where.append("s.updated_at >= %(since)s")
            params["since"] = since
        return True

    def item_statuses(self, query: ItemQuery) -> Page[ItemStatus]:
        """Return item statuses, most recent first."""
        if not isinstance(query, ItemQuery):
            raise InvalidArgumentError("item_statuses takes an ItemQuery", field="query")
        where = ["s.connector_id = %(c)s"]
        params: dict[str, Any] = {"c": query.connector_id, "o": query.offset, "l": query.limit}
        possible = "\x00" not in query.connector_id
        if query.event_id is not None:
            where.append("s.event_id = %(e)s")
            params["e"] = query.event_id
            possible = possible and "\x00" not in query.event_id
        if query.item_type is not None:
            where.append("s.item_type = %(t)s")
            params["t"] = query.item_type.value
        possible = possible and self._status_filters(
            where, params, ref_contains=query.ref_contains, state=query.state, since=query.since
        )
        if not possible:
            return Page((), 0, query.offset, query.limit)
        rows, total = self._page_of_statuses(
            "item_statuses", ("s.detail",), "FROM {s}.item_statuses AS s", where, params
        )
        items = tuple(self._conv.structure(row[0], ItemStatus) for row in rows)
        return Page(items, total, query.offset, query.limit)

    def status_counts(self, event_id: str) -> StatusCounts:
        """Return the per-state, per-type overview of an event's statuses."""

        def get(conn: Connection[Any]) -> list[Any]:
            return conn.execute(self._sql["status_counts"], [event_id]).fetchall()

        tally: dict[str, dict[ItemType, int]] = {"done": {}, "error": {}}
        if "\x00" not in event_id:
            for state, item_type, n in self._retried("status_counts", get):
                tally[state][ItemType(item_type)] = int(n)
        return StatusCounts(done=Counts.of(tally["done"]), error=Counts.of(tally["error"]))

    def failed_keys(self, event_id: str) -> Sequence[ItemKey]:
        """Return the ``(type, ref)`` of every item whose status in *event_id* is ``ERROR``."""

        def get(conn: Connection[Any]) -> list[Any]:
            return conn.execute(self._sql["failed_keys"], [event_id]).fetchall()

        if "\x00" in event_id:
            return []
        return [(ItemType(t), ref) for t, ref in self._retried("failed_keys", get)]

    def history(self, query: HistoryQuery) -> Page[HistoryRecord]:
        """Return item statuses across connectors, newest first, with platform and account."""
        if not isinstance(query, HistoryQuery):
            raise InvalidArgumentError("history takes a HistoryQuery", field="query")
        where: list[str] = []
        params: dict[str, Any] = {"o": query.offset, "l": query.limit}
        possible = True
        if query.platform is not None:
            where.append("COALESCE(c.channel, e.channel) = %(platform)s")
            params["platform"] = query.platform
            possible = "\x00" not in query.platform
        if query.account:
            where.append("c.account = %(account)s")  # uses the index; implies the connector
            params["account"] = query.account
            possible = possible and "\x00" not in query.account
        elif query.account is not None:
            where.append("COALESCE(c.account, '') = ''")
        if query.until is not None:
            where.append("s.updated_at < %(until)s")
            params["until"] = query.until
        possible = possible and self._status_filters(
            where, params, ref_contains=query.ref_contains, state=query.state, since=query.since
        )
        if not possible:
            return Page((), 0, query.offset, query.limit)
        rows, total = self._page_of_statuses(
            "history",
            ("s.detail", "COALESCE(c.channel, e.channel)", "COALESCE(c.account, '')"),
            "FROM {s}.item_statuses AS s JOIN {s}.events AS e ON e.id = s.event_id"
            " LEFT JOIN {s}.connectors AS c ON c.id = e.connector_id",
            where,
            params,
        )
        items = tuple(
            HistoryRecord(self._conv.structure(row[0], ItemStatus), row[1], row[2]) for row in rows
        )
        return Page(items, total, query.offset, query.limit)

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self._db.schema!r})"
