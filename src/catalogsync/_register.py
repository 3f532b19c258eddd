"""
The activity register (DESIGN §5): what users see of their synchronizations, from Python.

Everything here reads; nothing writes. Pending items live in the queue, everything else in the
store, and `ActivityRegister` merges the two so a running event shows its live pending counts
and its pending items next to the finished ones.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any, Final, Literal

from attrs import evolve, frozen

from ._clock import Clock, SystemClock
from ._convert import make_converter
from ._errors import InvalidArgumentError
from ._models import (
    Counts,
    EventStatus,
    ItemError,
    ItemState,
    ItemStatus,
    ItemType,
    SyncEvent,
)
from ._secrets import redact
from .typing import (
    EventQuery,
    HistoryQuery,
    HistoryRecord,
    ItemQuery,
    Page,
    QueueBackend,
    StateStore,
    StatusCounts,
)


__all__ = ["ActivityRegister", "Overview", "TimeRange"]

_converter = make_converter()
_PAGE: Final = 500

TimeRange = Literal["today", "this_week", "this_month"]


@frozen
class Overview:
    """
    The activity register's header for one connector: what runs now, what ran last, what is next.

    .. versionadded:: 0.1.0
    """

    current: SyncEvent | None
    last: SyncEvent | None
    next_run_at: datetime | None


class ActivityRegister:
    """
    Read-only views over events, iterations and item statuses.

    Example:
        >>> from catalogsync import ActivityRegister, MemoryQueue, MemoryStore
        >>> register = ActivityRegister(MemoryStore(), MemoryQueue())
        >>> register.events("shop-eu").total
        0

    Args:
        store: The state store.
        queue: The queue (for live pending counts and pending items); optional.
        clock: For "today", "this week" and "this month".
        tz: The time zone those ranges are computed in (UTC by default).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: StateStore,
        queue: QueueBackend | None = None,
        *,
        clock: Clock | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock or SystemClock()
        self.tz = tz

    # -- events ---------------------------------------------------------------------------------

    def _live(self, event: SyncEvent) -> SyncEvent:
        if self.queue is not None and event.status.active:
            return evolve(event, pending=self.queue.counts(event.connector_id))
        return event

    def event(self, event_id: str) -> SyncEvent:
        """One event with its iterations (and live pending counts while it is active)."""
        return self._live(self.store.get_event(event_id))

    def events(
        self,
        connector_id: str,
        *,
        status: EventStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 25,
    ) -> Page[SyncEvent]:
        """A connector's events, newest first."""
        page = self.store.events(
            EventQuery(
                connector_id=connector_id,
                status=status,
                since=since,
                until=until,
                offset=offset,
                limit=limit,
            )
        )
        return Page(tuple(self._live(e) for e in page), page.total, page.offset, page.limit)

    def overview(self, connector_id: str) -> Overview:
        """The event in progress (or paused), the last finished one, and the next scheduled run."""
        connector = self.store.get_connector(connector_id)
        current = self.store.active_event(connector_id)
        last = None
        offset = 0
        while last is None:
            page = self.store.events(EventQuery(connector_id=connector_id, offset=offset, limit=10))
            last = next((e for e in page if not e.status.active), None)
            if not page.has_more:
                break
            offset += len(page.items)
        next_run = None
        if connector.schedule is not None:
            newest = self.store.events(EventQuery(connector_id=connector_id, limit=1))
            next_run = (
                newest.items[0].started_at + connector.schedule
                if newest.items
                else self.clock.now()
            )
        return Overview(None if current is None else self._live(current), last, next_run)

    # -- items ----------------------------------------------------------------------------------

    def items(
        self,
        connector_id: str,
        *,
        event_id: str | None = None,
        ref: str | None = None,
        state: ItemState | str | None = None,
        item_type: ItemType | str | None = None,
        since: datetime | None = None,
        offset: int = 0,
        limit: int = 25,
    ) -> Page[ItemStatus]:
        """
        Item synchronization statuses, 25 per page by default.

        Without *event_id* and *since*, the latest event is shown (as the vendor's tab does);
        with *since*, every event's statuses recorded since then. ``state="pending"`` lists the
        items still queued (shown under the active event); ``state=None`` lists those first, then
        the recorded ones, most recent first. *ref* matches a substring of the reference, literally.
        """
        query = ItemQuery(
            connector_id,
            event_id=event_id,
            ref_contains=ref,
            state=state,
            item_type=item_type,
            since=since,
            offset=0,
            limit=0,
        )
        if query.event_id is None and query.since is None:
            latest = self.store.events(EventQuery(connector_id=connector_id, limit=1))
            if latest.items:
                query = ItemQuery(
                    connector_id,
                    event_id=latest.items[0].id,
                    ref_contains=ref,
                    state=state,
                    item_type=item_type,
                    since=since,
                    limit=0,
                )
        pending_total = 0
        active = self.store.active_event(connector_id)
        show_pending = (
            self.queue is not None
            and query.state in (None, ItemState.PENDING)
            and active is not None
            and (query.event_id in (None, active.id))
        )
        if show_pending:
            assert self.queue is not None  # noqa: S101
            pending_total = self.queue.entries(
                connector_id, item_type=query.item_type, ref_contains=query.ref_contains, limit=0
            ).total
        items: list[ItemStatus] = []
        if show_pending and offset < pending_total:
            assert self.queue is not None  # noqa: S101
            assert active is not None  # noqa: S101
            entries = self.queue.entries(
                connector_id,
                item_type=query.item_type,
                ref_contains=query.ref_contains,
                offset=offset,
                limit=limit,
            )
            now = self.clock.now()
            items.extend(
                ItemStatus(
                    active.id,
                    connector_id,
                    e.ref,
                    e.item_type,
                    ItemState.PENDING,
                    min(e.enqueued_at, now),
                    message="leased by a worker" if e.leased_until else "queued",
                )
                for e in entries
            )
        if query.state is ItemState.PENDING:
            return Page(tuple(items), pending_total, offset, limit)
        store_offset = max(0, offset - pending_total)
        remaining = limit - len(items)
        stored = self.store.item_statuses(
            evolve(query, offset=store_offset, limit=max(remaining, 0))
        )
        items.extend(stored.items[:remaining] if remaining > 0 else ())
        return Page(tuple(items), pending_total + stored.total, offset, limit)

    def counts(self, event_id: str) -> tuple[StatusCounts, Counts]:
        """An event's overview: done and error counts per type, and pending counts."""
        event = self.event(event_id)
        return self.store.status_counts(event_id), event.pending

    # -- history --------------------------------------------------------------------------------

    def window(self, name: TimeRange) -> tuple[datetime, datetime]:
        """The ``[start, end)`` of "today", "this week" (Monday first) or "this month"."""
        now = self.clock.now().astimezone(self.tz)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if name == "today":
            start, end = midnight, midnight + timedelta(days=1)
        elif name == "this_week":
            start = midnight - timedelta(days=midnight.weekday())
            end = start + timedelta(days=7)
        elif name == "this_month":
            start = midnight.replace(day=1)
            end = (start + timedelta(days=32)).replace(day=1)
        else:
            raise InvalidArgumentError(
                f"range must be 'today', 'this_week' or 'this_month', got {name!r}", field="range"
            )
        return start.astimezone(UTC), end.astimezone(UTC)

    def history(
        self,
        *,
        account: str | None = None,
        platform: str | None = None,
        range: TimeRange | None = None,  # noqa: A002 - the word users look for
        since: datetime | None = None,
        until: datetime | None = None,
        state: ItemState | str | None = None,
        ref: str | None = None,
        offset: int = 0,
        limit: int = 25,
    ) -> Page[HistoryRecord]:
        """
        The sync history across connectors and platforms, newest first.

        Filter by store/account id, platform (channel name), a named *range* ("today",
        "this_week", "this_month") or an explicit ``[since, until)``, state and reference.
        """
        if range is not None:
            if since is not None or until is not None:
                raise InvalidArgumentError("give either range or since/until", field="range")
            since, until = self.window(range)
        return self.store.history(
            HistoryQuery(
                account=account,
                platform=platform,
                since=since,
                until=until,
                state=state,
                ref_contains=ref,
                offset=offset,
                limit=limit,
            )
        )

    # -- exports --------------------------------------------------------------------------------

    def _all_statuses(self, event: SyncEvent) -> Iterator[ItemStatus]:
        offset = 0
        while True:
            page = self.store.item_statuses(
                ItemQuery(event.connector_id, event_id=event.id, offset=offset, limit=_PAGE)
            )
            yield from page.items
            if not page.has_more:
                return
            offset += len(page.items)

    def export(
        self,
        event_id: str,
        target: str | Path | IO[str],
        *,
        format: str = "jsonl",  # noqa: A002
    ) -> int:
        """
        Write an event's log: JSON Lines (the event, then one line per item) or CSV (one row
        per item). Every text is passed through `catalogsync.redact`; no secret is written.

        Returns:
            The number of item rows written.
        """
        if format not in {"jsonl", "csv"}:
            raise InvalidArgumentError("format must be 'jsonl' or 'csv'", field="format")
        event = self.event(event_id)
        if isinstance(target, (str, Path)):
            with Path(target).open("w", encoding="utf-8", newline="") as fh:
                return self._export(event, fh, format)
        return self._export(event, target, format)

    def _export(self, event: SyncEvent, fh: IO[str], fmt: str) -> int:
        rows = 0
        if fmt == "jsonl":
            head = _converter.unstructure(event)
            fh.write(redact(json.dumps({"record": "event", **head}, ensure_ascii=False)) + "\n")
            for status in self._all_statuses(event):
                line = {"record": "item", **_converter.unstructure(status)}
                fh.write(redact(json.dumps(line, ensure_ascii=False)) + "\n")
                rows += 1
            return rows
        writer = csv.writer(fh)
        writer.writerow(_CSV_COLUMNS)
        for status in self._all_statuses(event):
            writer.writerow([redact(_cell(status, c)) for c in _CSV_COLUMNS])
            rows += 1
        return rows

    # -- text -----------------------------------------------------------------------------------

    def render(self, event: SyncEvent | str, *, items: int = 10) -> str:
        """A readable text rendering of an event, for terminals and notebooks."""
        ev = self.event(event) if isinstance(event, str) else self._live(event)
        return render_event(ev, self, items=items)


_CSV_COLUMNS: Final = (
    "event_id",
    "connector_id",
    "type",
    "ref",
    "state",
    "action",
    "endpoint",
    "request_id",
    "channel_id",
    "channel_url",
    "updated_at",
    "message",
    "errors",
    "warnings",
)


def _errors_text(errors: tuple[ItemError, ...]) -> str:
    return " | ".join(
        ":".join(p for p in (e.kind.value, e.code or "", e.field or "") if p) + f" {e.message}"
        for e in errors
    )


def _cell(status: ItemStatus, column: str) -> str:
    if column == "errors":
        return _errors_text(status.errors)
    if column == "warnings":
        return _errors_text(status.warnings)
    value: Any = getattr(status, column)
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(getattr(value, "value", value))


def _fmt_time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def _fmt_counts(c: Counts) -> str:
    return f"{c.category} categories, {c.product} products, {c.variant} variants"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render_event(
    event: SyncEvent, register: ActivityRegister | None = None, *, items: int = 10
) -> str:
    """Render *event* as text: synchronization, configuration, history, errors, failed items."""
    lines: list[str] = []
    flag = " (with errors)" if event.has_errors else ""
    lines.append(
        f"Event {event.id}  {event.status.value.upper()}{flag}  {event.trigger.value}  "
        f"connector {event.connector_id}"
    )
    lines.append(
        f"  started {_fmt_time(event.started_at)}   finished {_fmt_time(event.finished_at)}"
    )
    if event.superseded_by:
        lines.append(f"  superseded by force refresh {event.superseded_by}")
    if event.retry_of:
        lines.append(f"  retries the failed items of {event.retry_of}")
    lines.append("Synchronization")
    lines.append(f"  pending:      {_fmt_counts(event.pending)}")
    lines.append(f"  synchronized: {_fmt_counts(event.synchronized)}")
    lines.append(f"  unchanged:    {_fmt_counts(event.unchanged)}")
    lines.append(f"  skipped:      {_fmt_counts(event.skipped)}")
    lines.append(f"  failed:       {_fmt_counts(event.failed)}")
    snap = event.snapshot
    p = snap.params
    lines.append("Configuration")
    version = snap.api_version or "-"
    if snap.served_version and snap.served_version != snap.api_version:
        version += f" (served {snap.served_version})"
    lines.append(f"  channel {snap.channel}, API version {version}")
    if snap.deprecation:
        lines.append(f"  ! deprecation: {snap.deprecation}")
    lines.append(
        f"  disable deletions {_yes(p.disable_deletions)}, overwrite stock "
        f"{_yes(p.overwrite_stock)}, include empty categories {_yes(p.include_empty_categories)}, "
        f"language {p.language}"
    )
    filters = [
        f"export {p.export_status.value}",
        f"map status {_yes(p.map_status)}",
        f"mode {p.mode.value}",
        f"deletion {p.deletion.value}",
    ]
    if p.tags:
        filters.append("tags " + ",".join(sorted(p.tags)))
    if p.families:
        filters.append("families " + ",".join(sorted(p.families)))
    if p.refs:
        filters.append(f"{len(p.refs)} selected refs")
    lines.append("  " + ", ".join(filters))
    lines.append("History")
    if not event.iterations:
        lines.append("  (no iterations yet)")
    for it in event.iterations:
        end = _fmt_time(it.finished_at) if it.finished_at else "running"
        lines.append(
            f"  #{it.number} {_fmt_time(it.started_at)} -> {end}: synchronized "
            f"{it.synchronized.category}/{it.synchronized.product}/{it.synchronized.variant}, "
            f"failed {it.failed.total}, unchanged {it.unchanged.total}, skipped {it.skipped.total}"
        )
    if event.errors:
        lines.append("General errors")
        lines.extend(f"  - [{e.code or 'error'}] {redact(e.message)}" for e in event.errors)
    if register is not None and items > 0 and event.failed.total:
        failed = register.items(
            event.connector_id, event_id=event.id, state=ItemState.ERROR, limit=items
        )
        lines.append(f"Failed items ({failed.total})")
        for s in failed:
            where = f" [{s.endpoint.value}]" if s.endpoint else ""
            rid = f" request {s.request_id}" if s.request_id else ""
            lines.append(f"  {s.type.value} {s.ref}{where}{rid}")
            lines.extend(
                f"    - {e.kind.value}{'/' + e.code if e.code else ''}"
                f"{' @ ' + e.field if e.field else ''}: {redact(e.message)}"
                for e in s.errors
            )
        if failed.has_more:
            lines.append(f"  ... and {failed.total - len(failed)} more")
    return "\n".join(lines)
