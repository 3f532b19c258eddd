"""A channel that echoes a credential in its errors cannot put it in the store."""

from __future__ import annotations

import pytest

from catalogsync import ItemState, Secret
from catalogsync.testing import MemoryChannel

from _syncenv import everything, make_backends, make_sync, shoe_catalog


SECRET = "echoed-credential-7f00d1e5"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_echoed_secrets_are_redacted_before_statuses_are_stored(request, kind, tmp_path, clock):
    """Error messages, codes and notes a channel returns are redacted before the commit: the
    stored status says ``********`` and the database file never holds the secret.
    """
    Secret(SECRET)  # the channel's credential, as the library knows it
    channel = MemoryChannel(clock=clock, reject={"P1": f"token {SECRET} is not allowed here"})
    queue, store = make_backends(kind, tmp_path, clock, request.addfinalizer)
    catalog = shoe_catalog()
    sync = make_sync(queue, store, clock, catalog, channel)
    sync.enqueue(everything(catalog))

    result = sync.run()

    failed = [s for s in sync.register.items("shop", event_id=result.event.id) if s.errors]
    assert [s.ref for s in failed] == ["P1"]
    assert failed[0].state is ItemState.ERROR
    assert failed[0].errors[0].message == "token ******** is not allowed here"
    if kind == "sqlite":
        store.close()
        queue.close()
        for path in tmp_path.iterdir():
            assert SECRET.encode() not in path.read_bytes(), path.name
