"""
`SQLiteStore`: the embedded default `StateStore`, on the standard library's `sqlite3`.

Rule 1: every write is one ``BEGIN IMMEDIATE`` transaction; the checks a write depends on (is an
event active? does the iteration exist?) run inside it, so they hold across threads and
processes. A partial unique index backs "one active event per connector" as well.

Rule 2: a `commit` writes its statuses, sent states, links and iteration counts in one
transaction with one ``executemany`` per statement.

Rule 3: SQL text is constant; values are always bound parameters. ``ref_contains`` is matched
with ``instr()``: literal (``%`` and ``_`` are text) and case-sensitive, like the memory store.

Rule 4: models go in and out through the storage converter (`catalogsync._convert`); times are
integer microseconds since the epoch and come back as aware UTC datetimes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from .._clock import Clock, ensure_utc
from .._convert import dumps, loads
from .._errors import ConflictError, InvalidArgumentError, NotFoundError
from .._ids import new_id
from .._models import (
    ConfigSnapshot,
    Connector,
    ConnectorParams,
    Counts,
    EventStatus,
    GeneralError,
    ItemError,
    ItemKey,
    ItemState,
    ItemStatus,
    ItemType,
    Iteration,
    SyncEvent,
)
from ..typing import (
    EventQuery,
    HistoryQuery,
    HistoryRecord,
    ItemQuery,
    ItemRecord,
    Page,
    SentState,
    StatusCounts,
)
from ._sqlite_db import SQLiteBase, from_us, to_us


def _load_decoder() -> Callable[[str], Any]:
    """The orjson decoder with the `fast` extra installed (several times faster), else json's."""
    try:
        import orjson  # noqa: PLC0415 - optional dependency
    except ImportError:  # pragma: no cover - the test swaps in json.loads instead
        return json.loads
    decode: Callable[[str], Any] = orjson.loads
    return decode


_json_loads = _load_decoder()


__all__ = ["SQLiteStore"]

_TYPES: Final = {t.value: t for t in ItemType}
_ACTIVE: Final = "status IN ('in_progress', 'paused')"  # the partial unique index's predicate

# connectors ---------------------------------------------------------------------------------------
_CONNECTOR_COLS: Final = "id, channel, account, credentials, active, schedule, params"
_SAVE_CONNECTOR: Final = (
    f"INSERT OR REPLACE INTO connectors ({_CONNECTOR_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
)

# events -------------------------------------------------------------------------------------------
_EVENT_COLS: Final = (
    "id, connector_id, trigger, status, started_at, finished_at, snapshot, "
    "pending_category, pending_product, pending_variant, errors, retry_of, superseded_by"
)
_INSERT_EVENT: Final = (
    f"INSERT INTO events (channel, {_EVENT_COLS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_EVENT: Final = f"SELECT {_EVENT_COLS} FROM events"  # noqa: S608
_TRANSITION: Final = """
    UPDATE events SET
        status = ?1,
        finished_at = ?2,
        superseded_by = coalesce(?3, superseded_by),
        pending_category = CASE WHEN ?4 THEN 0 ELSE pending_category END,
        pending_product = CASE WHEN ?4 THEN 0 ELSE pending_product END,
        pending_variant = CASE WHEN ?4 THEN 0 ELSE pending_variant END
    WHERE id = ?5 AND status IN (SELECT value FROM json_each(?6))
"""

# iterations ---------------------------------------------------------------------------------------
_COUNT_GROUPS: Final = ("synchronized", "failed", "unchanged", "skipped")
_COUNT_COLS: Final = tuple(f"{g}_{t.value}" for g in _COUNT_GROUPS for t in ItemType)
_ITERATION_COLS: Final = "id, event_id, number, worker, started_at, finished_at, " + ", ".join(
    _COUNT_COLS
)
_SELECT_ITERATIONS: Final = f"SELECT {_ITERATION_COLS} FROM iterations"  # noqa: S608
_ADD_COUNTS: Final = (
    "UPDATE iterations SET "  # noqa: S608
    + ", ".join(f"{c} = {c} + ?" for c in _COUNT_COLS)
    + " WHERE id = ?"
)

# statuses -----------------------------------------------------------------------------------------
_STATUS_COLS: Final = (
    "event_id, item_type, ref, connector_id, state, action, errors, warnings, endpoint, "
    "request_id, channel_id, channel_url, message, updated_at"
)
_UPSERT_STATUS: Final = f"""
    INSERT INTO item_statuses ({_STATUS_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (event_id, item_type, ref) DO UPDATE SET
        connector_id = excluded.connector_id, state = excluded.state, action = excluded.action,
        errors = excluded.errors, warnings = excluded.warnings, endpoint = excluded.endpoint,
        request_id = excluded.request_id, channel_id = excluded.channel_id,
        channel_url = excluded.channel_url, message = excluded.message,
        updated_at = excluded.updated_at
"""  # noqa: S608
_STATUS_ORDER: Final = "ORDER BY s.updated_at DESC, s.event_id, s.item_type, s.ref"
_S_STATUS_COLS: Final = ", ".join(f"s.{c.strip()}" for c in _STATUS_COLS.split(","))

# sent states and links ----------------------------------------------------------------------------
_STATE_COLS: Final = (
    "connector_id, item_type, ref, hash, channel_id, channel_url, parents, memo, event_id, "
    "updated_at"
)
_UPSERT_STATE: Final = (
    f"INSERT OR REPLACE INTO sent_states ({_STATE_COLS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FORGET_STATE: Final = (
    "DELETE FROM sent_states WHERE connector_id = ? AND item_type = ? AND ref = ?"
)
_UNLINK: Final = (
    "DELETE FROM sent_links WHERE connector_id = ? AND child_type = ? AND child_ref = ?"
)
_LINK: Final = (
    "INSERT OR IGNORE INTO sent_links (connector_id, child_type, parent_ref, child_ref) "
    "VALUES (?, ?, ?, ?)"
)

_ITEM_ERRORS = tuple[ItemError, ...]
_GENERAL_ERRORS = tuple[GeneralError, ...]


class SQLiteStore(SQLiteBase):
    """
    A `catalogsync.typing.StateStore` in a local SQLite file: the default store.

    Several threads and processes on one host may share the file, and it may also hold the
    `SQLiteQueue` (one file for both is the default deployment). WAL mode does not work on
    network file systems: keep the file local.

    Example:
        >>> import tempfile, os
        >>> from catalogsync import Connector
        >>> path = os.path.join(tempfile.mkdtemp(), "catalogsync.db")
        >>> with SQLiteStore(path) as store:
        ...     store.save_connector(Connector("shop-eu", "shopify", account="acme-eu"))
        ...     store.get_connector("shop-eu").account
        'acme-eu'

    Args:
        path: The database file (created, with its ``-wal`` and ``-shm`` companions, if
            missing). ``":memory:"`` is rejected: every thread has its own connection.
        clock: The source of time (kept for symmetry; callers pass explicit times).
        synchronous: ``"NORMAL"`` (default) survives process crashes but may lose the last
            commits on power loss; ``"FULL"`` syncs the log on every commit and survives both.
        busy_timeout: Seconds a write waits for the write lock before failing with a retryable
            `BackendError`.

    Raises:
        InvalidArgumentError: A bad argument (nothing is opened by the constructor).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(path, clock=clock, synchronous=synchronous, busy_timeout=busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    # connectors -----------------------------------------------------------------------------------

    def save_connector(self, connector: Connector) -> None:
        """Insert or replace a connector (never starts a synchronization, rule R03)."""
        if not isinstance(connector, Connector):
            raise InvalidArgumentError("save_connector takes a Connector", field="connector")
        row = (
            connector.id,
            connector.channel,
            connector.account,
            connector.credentials,
            int(connector.active),
            None if connector.schedule is None else connector.schedule.total_seconds(),
            dumps(connector.params),
        )
        with self._write("save_connector") as conn:
            conn.execute(_SAVE_CONNECTOR, row)

    def get_connector(self, connector_id: str) -> Connector:
        """Return a connector. Raises `NotFoundError`."""
        with self._read("get_connector") as conn:
            row = conn.execute(
                f"SELECT {_CONNECTOR_COLS} FROM connectors WHERE id = ?",  # noqa: S608
                (connector_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no connector {connector_id!r}")
        return _connector(row)

    def list_connectors(self) -> Sequence[Connector]:
        """Return every connector, by id."""
        with self._read("list_connectors") as conn:
            rows = conn.execute(
                f"SELECT {_CONNECTOR_COLS} FROM connectors ORDER BY id"  # noqa: S608
            ).fetchall()
        return [_connector(r) for r in rows]

    # events ---------------------------------------------------------------------------------------

    def open_event(self, event: SyncEvent) -> tuple[SyncEvent, bool]:
        """Insert *event* unless the connector already has an active event (atomic)."""
        if not isinstance(event, SyncEvent):
            raise InvalidArgumentError("open_event takes a SyncEvent", field="event")
        row = _event_row(event)
        with self._write("open_event") as conn:
            if event.status.active:
                current = conn.execute(
                    f"{_SELECT_EVENT} WHERE connector_id = ? AND {_ACTIVE}",
                    (event.connector_id,),
                ).fetchone()
                if current is not None:
                    return _with_iterations(conn, [current])[0], False
            try:
                conn.execute(_INSERT_EVENT, row)
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"cannot insert event {event.id!r}: {exc}") from None
        return event, True

    def get_event(self, event_id: str) -> SyncEvent:
        """Return an event with its iterations. Raises `NotFoundError`."""
        with self._read("get_event", snapshot=True) as conn:
            row = conn.execute(f"{_SELECT_EVENT} WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no event {event_id!r}")
            return _with_iterations(conn, [row])[0]

    def event_status(self, event_id: str) -> EventStatus:
        """Return an event's status without loading it. Raises `NotFoundError`."""
        with self._read("event_status") as conn:
            row = conn.execute("SELECT status FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no event {event_id!r}")
        return EventStatus(row[0])

    def active_event(self, connector_id: str) -> SyncEvent | None:
        """Return the connector's in-progress or paused event, if any."""
        with self._read("active_event", snapshot=True) as conn:
            row = conn.execute(
                f"{_SELECT_EVENT} WHERE connector_id = ? AND {_ACTIVE}", (connector_id,)
            ).fetchone()
            return None if row is None else _with_iterations(conn, [row])[0]

    def events(self, query: EventQuery) -> Page[SyncEvent]:
        """Return events, newest first (iterations included)."""
        if not isinstance(query, EventQuery):
            raise InvalidArgumentError("events takes an EventQuery", field="query")
        where: list[str] = ["1"]
        params: list[object] = []
        if query.connector_id is not None:
            where.append("connector_id = ?")
            params.append(query.connector_id)
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status.value)
        if query.since is not None:
            where.append("started_at >= ?")
            params.append(to_us(query.since))
        if query.until is not None:
            where.append("started_at < ?")
            params.append(to_us(query.until))
        clause = " AND ".join(where)
        with self._read("events", snapshot=True) as conn:
            (total,) = conn.execute(
                f"SELECT count(*) FROM events WHERE {clause}",  # noqa: S608
                params,
            ).fetchone()
            rows = conn.execute(
                f"{_SELECT_EVENT} WHERE {clause} ORDER BY started_at DESC, id DESC "
                "LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall()
            items = _with_iterations(conn, rows)
        return Page(tuple(items), total, query.offset, query.limit)

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
        Set the event's status if it is currently one of *expected* (compare-and-set).

        Raises:
            NotFoundError: No such event.
            ConflictError: The new status would make a second active event for the connector.
        """
        try:
            wanted = sorted({EventStatus(s).value for s in expected})
            new = EventStatus(status)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                "expected and status must be EventStatus values", field="status"
            ) from None
        at_us = to_us(ensure_utc(at, field="at"))
        params = (
            new.value,
            at_us if finished else None,
            superseded_by,
            int(bool(finished)),
            event_id,
            json.dumps(wanted),
        )
        with self._write("transition") as conn:
            try:
                changed = conn.execute(_TRANSITION, params).rowcount
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"event {event_id!r} cannot become {new.value}: its connector already has "
                    "an active event"
                ) from None
            if not changed:
                _require_event(conn, event_id)
        return bool(changed)

    def add_errors(self, event_id: str, errors: Sequence[GeneralError]) -> None:
        """Append general errors to an event."""
        new = tuple(errors)
        if not all(isinstance(e, GeneralError) for e in new):
            raise InvalidArgumentError("add_errors takes GeneralError values", field="errors")
        with self._write("add_errors") as conn:
            row = conn.execute("SELECT errors FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no event {event_id!r}")
            old: tuple[GeneralError, ...] = loads(row[0], _GENERAL_ERRORS)
            conn.execute(
                "UPDATE events SET errors = ? WHERE id = ?", (dumps((*old, *new)), event_id)
            )

    def set_pending(self, event_id: str, pending: Counts) -> None:
        """Record the latest pending counts of an event."""
        if not isinstance(pending, Counts):
            raise InvalidArgumentError("pending must be Counts", field="pending")
        with self._write("set_pending") as conn:
            changed = conn.execute(
                "UPDATE events SET pending_category = ?, pending_product = ?, "
                "pending_variant = ? WHERE id = ?",
                (pending.category, pending.product, pending.variant, event_id),
            ).rowcount
            if not changed:
                raise NotFoundError(f"no event {event_id!r}")

    # iterations and batches -----------------------------------------------------------------------

    def start_iteration(self, event_id: str, *, worker: str, at: datetime) -> Iteration:
        """Open a new iteration of *event_id* numbered after the existing ones."""
        at = ensure_utc(at, field="at")
        if not isinstance(worker, str):
            raise InvalidArgumentError("worker must be a str", field="worker")
        with self._write("start_iteration") as conn:
            _require_event(conn, event_id)
            (last,) = conn.execute(
                "SELECT coalesce(max(number), 0) FROM iterations WHERE event_id = ?", (event_id,)
            ).fetchone()
            iteration = Iteration(new_id(at), event_id, int(last) + 1, worker, at)
            conn.execute(
                "INSERT INTO iterations (id, event_id, number, worker, started_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (iteration.id, event_id, iteration.number, worker, to_us(at)),
            )
        return iteration

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
        """Atomically upsert *records* and add the count deltas to *iteration*."""
        if not isinstance(iteration, Iteration):
            raise InvalidArgumentError("commit takes an Iteration", field="iteration")
        deltas: list[int] = []
        for name, counts in (
            ("synchronized", synchronized),
            ("failed", failed),
            ("unchanged", unchanged),
            ("skipped", skipped),
        ):
            if not isinstance(counts, Counts):
                raise InvalidArgumentError(f"{name} must be Counts", field=name)
            deltas.extend((counts.category, counts.product, counts.variant))
        statuses, last_state = _prepare(records)
        with self._write("commit") as conn:
            if not conn.execute(_ADD_COUNTS, (*deltas, iteration.id)).rowcount:
                raise NotFoundError(f"no iteration {iteration.id!r}")
            conn.executemany(_UPSERT_STATUS, statuses)
            if last_state:
                # Each key's last record that touches its state decides it: forget, or replace.
                keys = list(last_state)
                conn.executemany(_UNLINK, keys)
                conn.executemany(_FORGET_STATE, [k for k, s in last_state.items() if s is None])
                kept = [(k, s) for k, s in last_state.items() if s is not None]
                conn.executemany(_UPSERT_STATE, [_state_row(k, s) for k, s in kept])
                conn.executemany(
                    _LINK, [(k[0], k[1], p, k[2]) for k, s in kept for p in set(s.parents)]
                )

    def finish_iteration(self, iteration: Iteration, *, at: datetime) -> None:
        """Close an iteration."""
        if not isinstance(iteration, Iteration):
            raise InvalidArgumentError("finish_iteration takes an Iteration", field="iteration")
        at_us = to_us(ensure_utc(at, field="at"))
        with self._write("finish_iteration") as conn:
            changed = conn.execute(
                "UPDATE iterations SET finished_at = ? WHERE id = ?", (at_us, iteration.id)
            ).rowcount
            if not changed:
                raise NotFoundError(f"no iteration {iteration.id!r}")

    def sent_states(
        self, connector_id: str, item_type: ItemType, refs: Collection[str]
    ) -> Mapping[str, SentState]:
        """Return the sent states of *refs* (absent: never delivered or forgotten)."""
        t = _item_type(item_type)
        wanted = _json_refs(refs)
        with self._read("sent_states") as conn:
            rows = conn.execute(
                f"SELECT {_STATE_COLS} FROM sent_states "  # noqa: S608
                "WHERE connector_id = ? AND item_type = ? "
                "AND ref IN (SELECT value FROM json_each(?))",
                (connector_id, t.value, wanted),
            ).fetchall()
        return {row[2]: _sent_state(row) for row in rows}

    def sent_children(
        self, connector_id: str, child_type: ItemType, parent_refs: Collection[str]
    ) -> Mapping[str, tuple[str, ...]]:
        """Return, per parent ref, the refs of delivered *child_type* items that name it."""
        t = _item_type(child_type)
        wanted = _json_refs(parent_refs)
        with self._read("sent_children") as conn:
            rows = conn.execute(
                "SELECT parent_ref, child_ref FROM sent_links "
                "WHERE connector_id = ? AND child_type = ? "
                "AND parent_ref IN (SELECT value FROM json_each(?)) "
                "ORDER BY parent_ref, child_ref",
                (connector_id, t.value, wanted),
            ).fetchall()
        found: dict[str, list[str]] = {}
        for parent, child in rows:
            found.setdefault(parent, []).append(child)
        return {p: tuple(found.get(p, ())) for p in parent_refs}

    # queries --------------------------------------------------------------------------------------

    def item_statuses(self, query: ItemQuery) -> Page[ItemStatus]:
        """Return item statuses, most recent first."""
        if not isinstance(query, ItemQuery):
            raise InvalidArgumentError("item_statuses takes an ItemQuery", field="query")
        where: list[str] = ["s.connector_id = ?"]
        params: list[object] = [query.connector_id]
        if query.event_id is not None:
            where.append("s.event_id = ?")
            params.append(query.event_id)
        _status_filters(where, params, query.state, query.ref_contains)
        if query.item_type is not None:
            where.append("s.item_type = ?")
            params.append(query.item_type.value)
        if query.since is not None:
            where.append("s.updated_at >= ?")
            params.append(to_us(query.since))
        clause = " AND ".join(where)
        with self._read("item_statuses", snapshot=True) as conn:
            (total,) = conn.execute(
                f"SELECT count(*) FROM item_statuses s WHERE {clause}",  # noqa: S608
                params,
            ).fetchall()[0]
            rows = conn.execute(
                f"SELECT {_S_STATUS_COLS} FROM item_statuses s WHERE {clause} "  # noqa: S608
                f"{_STATUS_ORDER} LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall()
        return Page(tuple(_status(r) for r in rows), total, query.offset, query.limit)

    def status_counts(self, event_id: str) -> StatusCounts:
        """Return the per-state, per-type overview of an event's statuses."""
        with self._read("status_counts") as conn:
            rows = conn.execute(
                "SELECT state, item_type, count(*) FROM item_statuses "
                "WHERE event_id = ? AND state IN ('done', 'error') GROUP BY state, item_type",
                (event_id,),
            ).fetchall()
        done: dict[ItemType, int] = {}
        error: dict[ItemType, int] = {}
        for state, t, n in rows:
            (done if state == ItemState.DONE.value else error)[_TYPES[t]] = n
        return StatusCounts(done=Counts.of(done), error=Counts.of(error))

    def failed_keys(self, event_id: str) -> Sequence[ItemKey]:
        """Return the ``(type, ref)`` of every item whose status in *event_id* is ``ERROR``."""
        with self._read("failed_keys") as conn:
            rows = conn.execute(
                "SELECT item_type, ref FROM item_statuses "
                "WHERE event_id = ? AND state = 'error' ORDER BY item_type, ref",
                (event_id,),
            ).fetchall()
        return [(_TYPES[t], ref) for t, ref in rows]

    def history(self, query: HistoryQuery) -> Page[HistoryRecord]:
        """Return item statuses across connectors, newest first, with platform and account."""
        if not isinstance(query, HistoryQuery):
            raise InvalidArgumentError("history takes a HistoryQuery", field="query")
        platform = "coalesce(c.channel, e.channel)"
        account = "coalesce(c.account, '')"
        where: list[str] = ["1"]
        params: list[object] = []
        if query.platform is not None:
            where.append(f"{platform} = ?")
            params.append(query.platform)
        if query.account is not None:
            where.append(f"{account} = ?")
            params.append(query.account)
            if query.account:
                # Implied by the line above (a connector that was never saved has no account),
                # and it lets SQLite start from the account's events instead of every status.
                where.append("e.connector_id IN (SELECT id FROM connectors WHERE account = ?)")
                params.append(query.account)
        if query.since is not None:
            where.append("s.updated_at >= ?")
            params.append(to_us(query.since))
        if query.until is not None:
            where.append("s.updated_at < ?")
            params.append(to_us(query.until))
        _status_filters(where, params, query.state, query.ref_contains)
        source = (
            "FROM item_statuses s JOIN events e ON e.id = s.event_id "
            "LEFT JOIN connectors c ON c.id = e.connector_id WHERE " + " AND ".join(where)
        )
        with self._read("history", snapshot=True) as conn:
            (total,) = conn.execute(f"SELECT count(*) {source}", params).fetchone()
            rows = conn.execute(
                f"SELECT {_S_STATUS_COLS}, {platform}, {account} {source} "
                f"{_STATUS_ORDER} LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall()
        items = tuple(HistoryRecord(_status(r[:-2]), r[-2], r[-1]) for r in rows)
        return Page(items, total, query.offset, query.limit)


# rows <-> models ----------------------------------------------------------------------------------


def _connector(row: Sequence[Any]) -> Connector:
    cid, channel, account, credentials, active, schedule, params = row
    return Connector(
        cid,
        channel,
        account=account,
        credentials=credentials,
        active=bool(active),
        schedule=schedule,
        params=loads(params, ConnectorParams),
    )


def _event_row(event: SyncEvent) -> tuple[object, ...]:
    return (
        event.snapshot.channel,
        event.id,
        event.connector_id,
        event.trigger.value,
        event.status.value,
        to_us(event.started_at),
        None if event.finished_at is None else to_us(event.finished_at),
        dumps(event.snapshot),
        event.pending.category,
        event.pending.product,
        event.pending.variant,
        dumps(event.errors),
        event.retry_of,
        event.superseded_by,
    )


def _event(row: Sequence[Any], iterations: Sequence[Iteration]) -> SyncEvent:
    (eid, cid, trigger, status, started, finished, snapshot, pc, pp, pv, errors, retry_of, sup) = (
        row
    )
    return SyncEvent(
        eid,
        cid,
        trigger,
        status,
        from_us(started),
        loads(snapshot, ConfigSnapshot),
        finished_at=None if finished is None else from_us(finished),
        pending=Counts(category=pc, product=pp, variant=pv),
        errors=loads(errors, _GENERAL_ERRORS),
        iterations=iterations,
        retry_of=retry_of,
        superseded_by=sup,
    )


def _with_iterations(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[SyncEvent]:
    if not rows:
        return []
    ids = json.dumps([r[0] for r in rows])
    by_event: dict[str, list[Iteration]] = {}
    for it_row in conn.execute(
        f"{_SELECT_ITERATIONS} WHERE event_id IN (SELECT value FROM json_each(?)) "  # noqa: S608
        "ORDER BY event_id, number",
        (ids,),
    ):
        it = _iteration(it_row)
        by_event.setdefault(it.event_id, []).append(it)
    return [_event(r, by_event.get(r[0], ())) for r in rows]


def _iteration(row: Sequence[Any]) -> Iteration:
    iid, eid, number, worker, started, finished, *n = row
    return Iteration(
        iid,
        eid,
        number,
        worker,
        from_us(started),
        None if finished is None else from_us(finished),
        synchronized=Counts(category=n[0], product=n[1], variant=n[2]),
        failed=Counts(category=n[3], product=n[4], variant=n[5]),
        unchanged=Counts(category=n[6], product=n[7], variant=n[8]),
        skipped=Counts(category=n[9], product=n[10], variant=n[11]),
    )


def _require_event(conn: sqlite3.Connection, event_id: str) -> None:
    if conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
        raise NotFoundError(f"no event {event_id!r}")


def _status_row(s: ItemStatus) -> tuple[object, ...]:
    return (
        s.event_id,
        s.type.value,
        s.ref,
        s.connector_id,
        s.state.value,
        None if s.action is None else s.action.value,
        dumps(s.errors) if s.errors else None,
        dumps(s.warnings) if s.warnings else None,
        None if s.endpoint is None else s.endpoint.value,
        s.request_id,
        s.channel_id,
        s.channel_url,
        s.message,
        to_us(s.updated_at),
    )


def _status(row: Sequence[Any]) -> ItemStatus:
    (eid, t, ref, cid, state, action, errors, warnings, endpoint, rid, ch_id, url, msg, at) = row
    return ItemStatus(
        eid,
        cid,
        ref,
        t,
        state,
        from_us(at),
        action=action,
        errors=loads(errors, _ITEM_ERRORS) if errors else (),
        warnings=loads(warnings, _ITEM_ERRORS) if warnings else (),
        endpoint=endpoint,
        request_id=rid,
        channel_id=ch_id,
        channel_url=url,
        message=msg,
    )


_StateKey = tuple[str, str, str]  # (connector_id, item_type, ref)


def _prepare(
    records: Sequence[ItemRecord],
) -> tuple[list[tuple[object, ...]], dict[_StateKey, SentState | None]]:
    statuses: list[tuple[object, ...]] = []
    last_state: dict[_StateKey, SentState | None] = {}
    for record in records:
        if not isinstance(record, ItemRecord) or not isinstance(record.status, ItemStatus):
            raise InvalidArgumentError("commit takes ItemRecord values", field="records")
        status = record.status
        statuses.append(_status_row(status))
        state = record.state
        if state is not None and not record.forget:
            if not isinstance(state, SentState) or state.key != status.key:
                raise InvalidArgumentError(
                    f"the sent state of {status.key!r} must be a SentState of the same item",
                    field="records",
                )
            ensure_utc(state.updated_at, field="SentState.updated_at")
        if record.forget or state is not None:
            key = (status.connector_id, status.type.value, status.ref)
            last_state.pop(key, None)  # keep the dict in order of last touch
            last_state[key] = None if record.forget else state
    return statuses, last_state


def _state_row(key: _StateKey, s: SentState) -> tuple[object, ...]:
    return (
        *key,
        s.hash,
        s.channel_id,
        s.channel_url,
        json.dumps(list(s.parents), ensure_ascii=False),
        json.dumps(dict(s.memo), ensure_ascii=False, sort_keys=True),
        s.event_id,
        to_us(s.updated_at),
    )


def _sent_state(row: Sequence[Any]) -> SentState:
    _, t, ref, digest, ch_id, url, parents, memo, eid, at = row
    # Most rows carry no memo and at most one parent: skip the JSON decoder for those (it is a
    # fifth of an unchanged item's cost in the change-detection benchmark).
    return SentState(
        _TYPES[t], ref, digest, ch_id, url, _decode_refs(parents), eid, from_us(at),
        memo={} if memo == "{}" else _json_loads(memo),
    )  # fmt: skip


def _decode_refs(text: str) -> tuple[str, ...]:
    """`json.loads` of a stored ref list, without the decoder for ``[]`` and plain ``["ref"]``."""
    if text == "[]":
        return ()
    plain = text.count('"') == 2 and "\\" not in text  # noqa: PLR2004 - one ref's quotes
    if plain and text.startswith('["') and text.endswith('"]'):
        return (text[2:-2],)
    return tuple(_json_loads(text))


def _status_filters(
    where: list[str], params: list[Any], state: ItemState | None, ref_contains: str | None
) -> None:
    if state is not None:
        where.append("s.state = ?")
        params.append(state.value)
    if ref_contains:
        where.append("instr(s.ref, ?) > 0")
        params.append(ref_contains)


def _item_type(value: ItemType | str) -> ItemType:
    try:
        return ItemType(value)
    except ValueError:
        raise InvalidArgumentError(
            f"item_type must be an ItemType, got {value!r}", field="item_type"
        ) from None


def _json_refs(refs: Collection[str]) -> str:
    if isinstance(refs, str):
        raise InvalidArgumentError("refs must be a collection of str, not a str", field="refs")
    return json.dumps(list(refs), ensure_ascii=False)
