"""
A worker process for the crash campaign: ``python _campaignworker.py SPEC`` (JSON).

The plain crash and many-worker tests use ``_crashworker.py`` instead.

The worker runs a real `Synchronizer` on real backends against a channel whose state lives in
another process (an emulator served by the test), so it can be killed at any point and another
worker can take over.

Kill points: ``CATALOGSYNC_CRASH_AT="<hook>:<n>"`` makes the worker SIGKILL itself the *n*-th time
it reaches *hook*:

* ``check``: in the channel's connection check (force refresh and event opening);
* ``lease``: right after a lease was granted, before anything is decided;
* ``push.before``: just before the channel's ``push``;
* ``http``: after the *n*-th write request got its answer, inside ``push`` (mid-batch);
* ``push.after``: after the channel answered, before the state is committed;
* ``commit.after``: after the state commit, before the queue ack;
* ``ack.after``: after the queue ack;
* ``replace``: after the *n*-th change streamed into ``queue.replace_all`` (force refresh).

The worker prints one JSON line: why it returned, the event id, and how often each hook was hit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).parent))

from _campaignchannels import connector_params, make_catalog, make_channel
from catalogsync import Connector, Synchronizer, SyncOptions, Trigger
from catalogsync.testing import ManualClock

from _campaign import Trap, TrapChannel, TrapQueue, TrapStore, open_backends


ENV = "CATALOGSYNC_CRASH_AT"


def build(spec: dict[str, Any], trap: Trap) -> Synchronizer:
    """The synchronizer a spec describes, with every part wrapped by *trap*."""
    kind = spec["channel"]

    def on_response(response: Any) -> None:
        if response.request.method != "GET":
            trap.hit("http")

    channel = make_channel(
        kind,
        url=spec["url"],
        clock=ManualClock(),  # backoff and batch polls cost no real time; leases do
        seed=spec.get("seed", 7),
        on_response=on_response,
    )
    queue, store = open_backends(spec["backend"])
    options = {"batch_size": 7, "lease_ttl": 0.8, "poll_interval": 0.05, "max_attempts": 50}
    options |= spec.get("options", {})
    return Synchronizer(
        Connector(spec.get("connector", "crash"), channel.name, params=connector_params(kind)),
        catalog=make_catalog(kind, spec["products"], spec.get("seed", 7)),
        channel=TrapChannel(channel, trap),
        queue=TrapQueue(queue, trap),
        store=TrapStore(store, trap),
        options=SyncOptions(**options),
    )


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    """Run one worker; print what happened as JSON."""
    spec: dict[str, Any] = json.loads(sys.argv[1])
    trap = Trap(os.environ.get(ENV), action=_die)
    sync = build(spec, trap)
    if spec.get("action") == "refresh":
        # A caller whose force_refresh() call left no event behind calls it again; one that
        # left an event runs it (the queue says what is left).
        events = sync.register.events(sync.connector_id, limit=100)
        if not any(e.trigger is Trigger.FORCE_REFRESH for e in events.items):
            sync.force_refresh()
    result = sync.run()
    event = result.event.id if result.event else "-"
    print(json.dumps({"reason": result.reason, "event": event, "hits": trap.hits}), flush=True)


if __name__ == "__main__":
    main()
