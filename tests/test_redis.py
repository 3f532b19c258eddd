"""The Redis queue against a real server: conformance, killed connections, several processes."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from tests._services import OffsetClock, check_deliveries, redis_server, run_processes

from catalogsync import (
    BackendError,
    Change,
    ChangeKind,
    ConflictError,
    Counts,
    InvalidArgumentError,
    ItemType,
)
from catalogsync.testing import ManualClock, QueueConformance

from _support import require


redis = pytest.importorskip("redis")

from catalogsync.backends.redis import RedisQueue  # noqa: E402


pytestmark = pytest.mark.redis

P = ItemType.PRODUCT
TTL = timedelta(seconds=30)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The server's URL; skips (fails under CI) when it is unreachable."""
    url, reason = redis_server()
    require(url is not None, reason)
    assert url is not None
    return url


@pytest.fixture(scope="session")
def client(redis_url):
    """A client the tests own."""
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def _drop(client, prefix: str) -> None:
    keys = list(client.scan_iter(match="{" + prefix + ":*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])


@pytest.fixture(scope="session")
def prefixes(client):
    """Hands out unique key prefixes and deletes their keys at the end of the session."""
    made: list[str] = []

    def new() -> str:
        name = f"cstest-{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield new
    for prefix in made:
        _drop(client, prefix)


@pytest.fixture(scope="session")
def prefix(prefixes) -> str:
    """The prefix shared by the conformance tests (they use fresh connector ids)."""
    return prefixes()


class TestRedisQueue(QueueConformance):
    @pytest.fixture
    def make_queue(self, client, prefix):
        """Queues on the shared client and prefix, on the test's clock."""
        return lambda clock: RedisQueue(client, prefix=prefix, clock=clock)


class TestRedisQueueDecodingClient(QueueConformance):
    @pytest.fixture
    def make_queue(self, redis_url, prefix):
        """Queues on a client with decode_responses=True (str replies instead of bytes)."""
        c = redis.Redis.from_url(redis_url, decode_responses=True)
        yield lambda clock: RedisQueue(c, prefix=prefix, clock=clock)
        c.close()


# -- construction ---------------------------------------------------------------------------------


def test_missing_redis_names_the_extra(monkeypatch):
    """Without redis-py, creating the queue raises an ImportError that names the extra."""
    monkeypatch.setitem(__import__("sys").modules, "redis", None)
    with pytest.raises(ImportError, match=r"catalogsync\[redis\]"):
        RedisQueue("redis://nowhere")


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", None])
def test_prefix_is_checked(bad):
    """A prefix with braces would break the hash tag: it is refused, naming the field."""
    with pytest.raises(InvalidArgumentError) as info:
        RedisQueue("redis://nowhere", prefix=bad)
    assert info.value.field == "prefix"


def test_client_is_checked():
    """Anything but a URL or a redis client is a typed error."""
    with pytest.raises(InvalidArgumentError) as info:
        RedisQueue(42)
    assert info.value.field == "url_or_client"


def test_repr_never_shows_the_url():
    """The repr names the prefix only: a URL may carry a password."""
    with RedisQueue("redis://:hunter2@127.0.0.1:1/0", prefix="shop") as q:
        assert "hunter2" not in repr(q)
        assert repr(q) == "RedisQueue(prefix='shop')"


def test_owned_client_is_closed_and_a_passed_client_is_not(redis_url, client, prefixes):
    """A queue made from a URL closes its client; a client the caller passed stays usable."""
    name = prefixes()
    with RedisQueue(redis_url, prefix=name) as owned:
        owned.enqueue("c", [Change("A", P)])
    borrowed = RedisQueue(client, prefix=name)
    borrowed.close()
    assert borrowed.counts("c") == Counts(product=1)


def test_unreachable_server_is_a_retryable_error():
    """A server that cannot be reached gives a retryable BackendError, not a redis exception."""
    with RedisQueue("redis://127.0.0.1:1/0") as q, pytest.raises(BackendError) as info:
        q.counts("c")
    assert info.value.retryable


# -- layout ---------------------------------------------------------------------------------------


def _connector_keys(client, prefix, cid):
    return list(client.scan_iter(match="{" + prefix + ":" + cid + "}*", count=1000))


def test_all_keys_of_a_connector_share_one_slot(client, prefix):
    """Every key a connector uses hashes to one cluster slot, even with braces in its id."""
    from redis.crc import key_slot

    for cid in (f"c-{uuid.uuid4().hex}", f"odd}}{{id-{uuid.uuid4().hex}"):
        q = RedisQueue(client, prefix=prefix, clock=ManualClock())
        q.enqueue(cid, [Change(f"R{i}", P) for i in range(10)])
        leases = q.lease(cid, owner="w", limit=5, ttl=TTL)
        q.ack(cid, leases[:2])

        def staged(cid=cid):
            yield Change("X", P)
            assert len({key_slot(k) for k in _connector_keys(client, prefix, cid)}) == 1
            yield Change("Y", P)

        q.replace_all(cid, staged())
        keys = _connector_keys(client, prefix, cid)
        assert len(keys) >= 4
        assert len({key_slot(k) for k in keys}) == 1


def test_counters_match_the_sets(client, prefix):
    """The per-type counters, the hash and the sorted set always agree."""
    import random

    clock = ManualClock()
    q = RedisQueue(client, prefix=prefix, clock=clock)
    cid = f"c-{uuid.uuid4().hex}"
    rng = random.Random(7)
    held = []
    for step in range(300):
        op = rng.random()
        if op < 0.4:
            q.enqueue(cid, [Change(f"r{rng.randrange(30)}", rng.choice(list(ItemType)))])
        elif op < 0.6:
            held += q.lease(cid, owner="w", limit=3, ttl=TTL)
        elif op < 0.8 and held:
            q.ack(cid, [held.pop()])
        elif op < 0.85:
            q.replace_all(cid, [Change(f"r{rng.randrange(30)}", P) for _ in range(5)])
        elif held:
            q.release(cid, [held.pop()])
        if step % 37 == 0:
            clock.advance(TTL)
        base = "{" + prefix + ":" + cid + "}:"
        assert q.counts(cid).total == client.hlen(base + "q") == client.zcard(base + "z")


# -- replace_all ----------------------------------------------------------------------------------


def test_changes_enqueued_during_replace_all_survive_the_swap(client, prefix):
    """A change enqueued while a replace_all streams is in the queue after the swap."""
    q = RedisQueue(client, prefix=prefix, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("old", P)])

    def fresh():
        yield Change("new", P)
        q.enqueue(cid, [Change("meanwhile", P), Change("new", P, "delete")])
        # readers still see the old set, plus the changes enqueued to it
        assert sorted(e.ref for e in q.entries(cid)) == ["meanwhile", "new", "old"]
        yield Change("last", P)

    assert q.replace_all(cid, fresh()) == 2
    entries = {e.ref: e for e in q.entries(cid, limit=10)}
    assert sorted(entries) == ["last", "meanwhile", "new"]
    assert not entries["new"].force  # the user's change is newer than the refresh: it stays
    assert entries["new"].kind is ChangeKind.DELETE
    assert entries["last"].force


def test_failed_replace_all_leaves_the_old_set(client, prefix):
    """A replace_all whose iterable fails changes nothing; its staging keys expire."""
    q = RedisQueue(client, prefix=prefix, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("old", P)])

    def broken():
        yield from (Change(f"n{i}", P) for i in range(1500))
        raise RuntimeError("catalog went away")

    with pytest.raises(RuntimeError):
        q.replace_all(cid, broken())
    assert [e.ref for e in q.entries(cid)] == ["old"]
    base = "{" + prefix + ":" + cid + "}:"
    assert 0 < client.pttl(base + "sq") <= 15 * 60 * 1000
    assert 0 < client.pttl(base + "st") <= 15 * 60 * 1000
    assert q.replace_all(cid, [Change("new", P)]) == 1
    assert [e.ref for e in q.entries(cid)] == ["new"]
    assert not client.exists(base + "sq", base + "st")


def test_concurrent_replace_all_supersedes(client, prefix):
    """A replace_all overtaken by another of its connector raises ConflictError; the later wins."""
    q = RedisQueue(client, prefix=prefix, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"

    def slow():
        yield Change("first", P)
        q.replace_all(cid, [Change("second", P)])
        yield Change("first2", P)

    with pytest.raises(ConflictError):
        q.replace_all(cid, slow())
    assert [e.ref for e in q.entries(cid)] == ["second"]


# -- lost replies and killed connections ----------------------------------------------------------


def _lose_first_reply(monkeypatch, q, name):
    """The first call of script *name* runs on the server, then its reply is lost."""
    real = getattr(q, name)
    state = {"first": True}

    def flaky(keys, args):
        out = real(keys=keys, args=args)
        if state["first"]:
            state["first"] = False
            raise redis.ConnectionError("reply lost")
        return out

    monkeypatch.setattr(q, name, flaky)


def test_lease_whose_reply_is_lost_is_replayed(client, prefix, monkeypatch):
    """A lease repeated after a lost reply returns the same leases; nothing is stranded."""
    q = RedisQueue(client, prefix=prefix, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("A", P), Change("B", P), Change("C", P)])
    _lose_first_reply(monkeypatch, q, "_lease")
    leases = q.lease(cid, owner="w", limit=2, ttl=TTL)

    assert [(lease.ref, lease.attempts) for lease in leases] == [("A", 1), ("B", 1)]
    assert [lease.ref for lease in q.lease(cid, owner="x", limit=10, ttl=TTL)] == ["C"]
    assert q.ack(cid, leases) == 2


def test_ack_whose_reply_is_lost_removes_once(client, prefix, monkeypatch):
    """An ack repeated after a lost reply removes the entry once (the repeat reports 0)."""
    q = RedisQueue(client, prefix=prefix, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("A", P)])
    leases = q.lease(cid, owner="w", limit=1, ttl=TTL)
    _lose_first_reply(monkeypatch, q, "_ack")

    assert q.ack(cid, leases) == 0
    assert q.counts(cid) == Counts()
    assert q.lease(cid, owner="w", limit=1, ttl=TTL) == []


def test_swap_whose_reply_is_lost_is_replayed(client, prefix, monkeypatch):
    """A replace_all whose final swap reply is lost still reports success, swapped once."""
    q = RedisQueue(client, prefix=prefix, clock=ManualClock())
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, [Change("old", P)])
    _lose_first_reply(monkeypatch, q, "_swap")

    assert q.replace_all(cid, [Change("new", P)]) == 1
    assert [e.ref for e in q.entries(cid)] == ["new"]


def _own_client(redis_url):
    """A client without redis-py's own retries, tagged with a unique name so it can be killed."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    name = f"cstest-{uuid.uuid4().hex[:8]}"
    return redis.Redis.from_url(redis_url, client_name=name, retry=Retry(NoBackoff(), 0)), name


def _kill(admin, name) -> int:
    killed = 0
    for info in admin.client_list():
        if info.get("name") == name:
            killed += admin.client_kill_filter(_id=info["id"])
    return killed


def test_killed_idle_connection_is_replaced(redis_url, client, prefix):
    """After CLIENT KILL of the queue's connection, the next operations work."""
    c, name = _own_client(redis_url)
    try:
        q = RedisQueue(c, prefix=prefix, clock=ManualClock())
        cid = f"c-{uuid.uuid4().hex}"
        q.enqueue(cid, [Change("A", P), Change("B", P)])
        assert _kill(client, name) == 1
        leases = q.lease(cid, owner="w", limit=10, ttl=TTL)
        assert [lease.ref for lease in leases] == ["A", "B"]
        _kill(client, name)
        assert q.ack(cid, leases) == 2
        _kill(client, name)
        assert q.counts(cid) == Counts()
    finally:
        c.close()


def test_connections_killed_during_a_run_lose_nothing(redis_url, client, prefix):
    """CLIENT KILL every 5 ms under a worker: retryable errors only, no loss, no double ack."""
    c, name = _own_client(redis_url)
    q = RedisQueue(c, prefix=prefix)
    cid = f"c-{uuid.uuid4().hex}"
    refs = [f"R{i:04d}" for i in range(600)]
    q.enqueue(cid, [Change(r, P) for r in refs])
    acked: dict[str, int] = {}
    leased_after_ack: list[str] = []
    seen: set[str] = set()
    errors: list[BackendError] = []
    kills: list[int] = []
    stop = threading.Event()

    def work(queue, until_empty):
        idle = 0
        while not (until_empty and idle > 2) and not (not until_empty and stop.is_set()):
            try:
                leases = queue.lease(cid, owner="w", limit=20, ttl=TTL)
                if not leases:
                    idle += 1
                    time.sleep(0.01)
                    continue
                for lease in leases:
                    seen.add(lease.ref)
                    if acked.get(lease.ref):
                        leased_after_ack.append(lease.ref)
                    acked[lease.ref] = acked.get(lease.ref, 0) + queue.ack(cid, [lease])
            except BackendError as exc:
                errors.append(exc)

    def kill():
        while not stop.is_set():
            kills.append(_kill(client, name))
            time.sleep(0.005)

    try:
        killer = threading.Thread(target=kill)
        worker = threading.Thread(target=work, args=(q, False))
        killer.start()
        worker.start()
        time.sleep(1.5)
        stop.set()
        killer.join()
        worker.join()
        # Leases whose both attempts failed are stranded until their deadline: look past it.
        work(RedisQueue(c, prefix=prefix, clock=OffsetClock(TTL * 2)), True)
    finally:
        c.close()

    assert sum(kills) > 20
    assert all(e.retryable for e in errors), errors
    assert not leased_after_ack
    assert max(acked.values()) == 1
    assert seen == set(refs)
    assert q.counts(cid).total == 0


# -- several processes ----------------------------------------------------------------------------


def test_four_worker_processes_and_a_producer(redis_url, prefix):
    """4 workers and a producer: every change delivered once, counts consistent, queue drained."""
    cid = f"c-{uuid.uuid4().hex}"
    refs = [f"R{i:04d}" for i in range(1200)]
    produced = refs + refs[:300]
    q = RedisQueue(redis_url, prefix=prefix)
    totals: list[int] = []

    def monitor():
        counts = q.counts(cid)
        assert counts.product == counts.total
        totals.append(counts.total)

    try:
        results = run_processes(
            {"backend": "redis", "url": redis_url, "prefix": prefix, "cid": cid},
            workers=4,
            refs=produced,
            monitor=monitor,
        )
        assert results[0] == {"written": len(produced)}
        check_deliveries(results, refs)
        assert all(0 <= t <= len(refs) for t in totals)
        assert q.counts(cid) == Counts()
        assert q.entries(cid).total == 0
    finally:
        q.close()


def test_large_batches_cross_the_script_chunks(client, prefix):
    """Leases, acks and releases of more than one script chunk (1000) behave like small ones."""
    clock = ManualClock()
    q = RedisQueue(client, prefix=prefix, clock=clock)
    cid = f"c-{uuid.uuid4().hex}"
    q.enqueue(cid, (Change(f"R{i:05d}", P) for i in range(2600)))
    leases = q.lease(cid, owner="w", limit=2500, ttl=TTL)

    assert [lease.ref for lease in leases] == [f"R{i:05d}" for i in range(2500)]
    assert q.extend(cid, leases, ttl=TTL * 2) == 2500
    assert q.release(cid, leases[2000:]) == 500
    q.enqueue(cid, [Change("R00007", P)])  # a newer version of one leased entry
    assert q.ack(cid, leases[:2000]) == 1999
    assert q.counts(cid) == Counts(product=601)
    assert q.lease(cid, owner="x", limit=10, ttl=TTL)[0].ref == "R00007"
