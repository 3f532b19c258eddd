"""The activity register: events, item statuses, history, exports, text."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from catalogsync import (
    ActivityRegister,
    Change,
    Connector,
    EventStatus,
    InvalidArgumentError,
    ItemState,
    Secret,
    Synchronizer,
    SyncOptions,
)
from catalogsync.testing import ManualClock, MemoryChannel

from _syncenv import P, everything, make_sync, shoe_catalog


def test_items_show_the_latest_event_and_paginate(backends, clock):
    """Item statuses default to the latest event, 25 per page, filterable and pageable."""
    queue, store = backends
    catalog = shoe_catalog()
    s = make_sync(queue, store, clock, catalog, MemoryChannel(clock=clock, reject={"P2": "nope"}))
    s.enqueue(everything(catalog))
    first = s.run().event
    clock.advance(60)
    s.enqueue([Change("P2", P)])
    second = s.run().event

    latest = s.register.items("shop")
    assert {st.event_id for st in latest} == {second.id}
    assert s.register.items("shop", event_id=first.id).total == 8
    assert s.register.items("shop", event_id=first.id, limit=3, offset=6).total == 8
    assert len(s.register.items("shop", event_id=first.id, limit=3, offset=6)) == 2
    assert s.register.items("shop", since=first.started_at).total == 9
    assert s.register.items("shop", event_id=first.id, ref="V").total == 3
    assert s.register.items("shop", event_id=first.id, item_type="variant").total == 3
    assert [st.ref for st in s.register.items("shop", event_id=first.id, state="error")] == ["P2"]
    done, pending = s.register.counts(first.id)
    assert done.error.product == 1
    assert done.done.total == 7
    assert pending.total == 0


def test_pending_items_are_listed_while_an_event_runs(backends, clock):
    """A running event's queued items show as PENDING, before the recorded ones."""
    queue, store = backends
    catalog = shoe_catalog()
    s = make_sync(queue, store, clock, catalog, options=SyncOptions(batch_size=3))
    s.enqueue(everything(catalog))
    event = s.run(max_batches=1).event
    page = s.register.items("shop", limit=4)

    assert page.total == 8
    assert [st.state for st in page] == [ItemState.PENDING] * 4
    assert {st.event_id for st in page} == {event.id}
    rest = s.register.items("shop", offset=4, limit=25)
    assert [st.state for st in rest].count(ItemState.DONE) == 3
    only = s.register.items("shop", state="pending", limit=100)
    assert only.total == 5
    assert s.register.event(event.id).pending.total == 5


def test_overview_current_last_and_next(backends, clock):
    """The overview shows the running event, the last finished one and the next scheduled run."""
    queue, store = backends
    catalog = shoe_catalog()
    s = Synchronizer(
        Connector("shop", "memory", schedule=timedelta(minutes=30)),
        catalog=catalog,
        channel=MemoryChannel(clock=clock),
        queue=queue,
        store=store,
        clock=clock,
        options=SyncOptions(batch_size=4),
    )
    s.enqueue(everything(catalog))
    done = s.run().event
    clock.advance(60)
    s.enqueue(
        [
            Change("P1", P),
            Change("P2", P),
            Change("P3", P),
            Change("V1", "variant"),
            Change("V2", "variant"),
        ]
    )
    running = s.run(max_batches=1).event
    view = s.register.overview("shop")

    assert view.current.id == running.id
    assert view.current.status is EventStatus.IN_PROGRESS
    assert view.last.id == done.id
    assert view.next_run_at == running.started_at + timedelta(minutes=30)


def test_history_across_connectors_with_time_ranges(backends):
    """History filters by account, platform and today / this week / this month."""
    queue, store = backends
    clock = ManualClock(datetime(2026, 11, 18, 9, 0, tzinfo=UTC))  # a Wednesday
    catalog = shoe_catalog()
    eu = Synchronizer(
        Connector("eu", "memory", account="acme-eu"),
        catalog=catalog,
        channel=MemoryChannel(clock=clock),
        queue=queue,
        store=store,
        clock=clock,
    )
    eu.enqueue(everything(catalog))
    eu.run()  # Wednesday 18th
    clock.advance(timedelta(days=3))  # Saturday 21st
    us = Synchronizer(
        Connector("us", "memory", account="acme-us"),
        catalog=catalog,
        channel=MemoryChannel(clock=clock),
        queue=queue,
        store=store,
        clock=clock,
    )
    us.enqueue(everything(catalog))
    us.run()
    register = ActivityRegister(store, queue, clock=clock)

    assert register.history(range="today").total == 8
    assert register.history(range="this_week").total == 16
    assert register.history(range="this_month").total == 16
    assert {r.account for r in register.history(account="acme-eu", limit=100)} == {"acme-eu"}
    assert register.history(platform="memory", account="acme-us", range="today").total == 8
    assert register.history(platform="shopify").total == 0
    window = register.history(
        since=datetime(2026, 11, 18, tzinfo=UTC), until=datetime(2026, 11, 19, tzinfo=UTC)
    )
    assert window.total == 8
    assert all(r.platform == "memory" for r in window)
    with pytest.raises(InvalidArgumentError):
        register.history(range="yesterday")
    with pytest.raises(InvalidArgumentError):
        register.history(range="today", since=datetime(2026, 1, 1, tzinfo=UTC))


def test_export_jsonl_and_csv_redact_secrets(backends, clock):
    """Exports hold every item with its errors, and never a secret, even one a channel echoed."""
    queue, store = backends
    catalog = shoe_catalog()
    token = Secret("shpat_live_0123456789abcdef")
    channel = MemoryChannel(clock=clock, reject={"P2": f"invalid token {token.reveal()} for shop"})
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    event = s.run().event

    buffer = io.StringIO()
    assert s.register.export(event.id, buffer, format="jsonl") == 8
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines[0]["record"] == "event"
    assert lines[0]["id"] == event.id
    assert len(lines) == 9
    assert token.reveal() not in buffer.getvalue()
    p2 = next(line for line in lines[1:] if line["ref"] == "P2")
    assert "********" in p2["errors"][0]["message"]

    out = io.StringIO()
    s.register.export(event.id, out, format="csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 8
    assert token.reveal() not in out.getvalue()
    assert {r["state"] for r in rows} == {"done", "error"}
    with pytest.raises(InvalidArgumentError):
        s.register.export(event.id, io.StringIO(), format="xml")


def test_text_rendering_has_every_section(backends, clock):
    """The text rendering shows synchronization, configuration, history, errors and failed items."""
    queue, store = backends
    catalog = shoe_catalog()
    channel = MemoryChannel(
        clock=clock, reject={"P2": "barcode already used"}, deprecation="v1 retires soon"
    )
    s = make_sync(queue, store, clock, catalog, channel)
    s.enqueue(everything(catalog))
    event = s.run().event
    text = s.register.render(event.id)

    for needle in (
        "COMPLETED (with errors)",
        "Synchronization",
        "Configuration",
        "History",
        "deprecation: v1 retires soon",
        "Failed items (1)",
        "product P2",
        "barcode already used",
        "disable deletions no",
        "#1 ",
    ):
        assert needle in text, needle
