"""
The optional servers of the scale-out tests, and the worker processes of the multi-process tests.

Imported by tests as ``tests._services``; run as a script it is one worker process:
``python tests/_services.py '<json config>'`` prints one JSON line with what it did.

PostgreSQL: ``CATALOGSYNC_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``, then the
same as user ``root``). Redis: ``CATALOGSYNC_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from catalogsync import SystemClock


PG_DEFAULTS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


@functools.cache
def postgres() -> tuple[str | None, str]:
    """Return ``(dsn, "")`` for a reachable server, else ``(None, reason)``."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 'catalogsync[postgres]')"
    env = os.environ.get("CATALOGSYNC_PG_DSN")
    errors = []
    for dsn in [env] if env else PG_DEFAULTS:
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            errors.append(f"{dsn.split('@')[-1]}: {str(exc).strip().splitlines()[0]}")
            continue
        return dsn, ""
    return None, "PostgreSQL is unreachable (set CATALOGSYNC_PG_DSN): " + "; ".join(errors)


@functools.cache
def redis_server() -> tuple[str | None, str]:
    """Return ``(url, "")`` for a reachable server, else ``(None, reason)``."""
    try:
        import redis
    except ImportError:
        return None, "redis-py is not installed (pip install 'catalogsync[redis]')"
    url = os.environ.get("CATALOGSYNC_REDIS_URL", REDIS_DEFAULT)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return None, f"Redis is unreachable at {url} (set CATALOGSYNC_REDIS_URL): {exc}"
    return url, ""


def spawn(config: dict) -> list[str]:
    """The command line of one worker process."""
    return [sys.executable, str(Path(__file__).resolve()), json.dumps(config)]


# -- shared by the PostgreSQL and Redis tests ------------------------------------------------------


class OffsetClock:
    """The system clock, shifted: lets a test look past lease deadlines without waiting."""

    def __init__(self, offset: timedelta) -> None:
        self._clock = SystemClock()
        self.offset = offset

    def now(self):
        return self._clock.now() + self.offset

    def monotonic(self):
        return self._clock.monotonic()

    def sleep(self, seconds):
        self._clock.sleep(seconds)


def run_processes(base: dict, *, workers: int, refs: list[str], monitor) -> list[dict]:
    """One producer and *workers* lease+ack processes; *monitor* is called while they run."""
    with tempfile.TemporaryDirectory() as tmp:
        done = str(Path(tmp) / "produced")
        start_at = time.time() + 3.0
        common = {**base, "done_file": done, "start_at": start_at}
        producer = {**common, "role": "produce", "refs": refs, "batch": 50, "pause": 0.005}
        configs = [producer] + [
            {**common, "role": "work", "owner": f"w{i}", "limit": 20, "ttl": 120}
            for i in range(workers)
        ]
        procs = [
            subprocess.Popen(spawn(c), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in configs
        ]
        try:
            while any(p.poll() is None for p in procs):
                monitor()
                time.sleep(0.05)
            outs = [p.communicate(timeout=60) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    assert [p.returncode for p in procs] == [0] * len(procs), [err for _, err in outs]
    return [json.loads(out) for out, _ in outs]


def check_deliveries(results: list[dict], refs: list[str]) -> None:
    """Every change delivered, no (ref, version) delivered twice, the last version of each acked."""
    deliveries: dict[tuple[str, int], int] = {}
    last: dict[str, tuple[int, int]] = {}
    for result in results[1:]:
        for ref, version, acked in result["records"]:
            deliveries[(ref, version)] = deliveries.get((ref, version), 0) + 1
            assert acked in (0, 1)
            if ref not in last or version > last[ref][0]:
                last[ref] = (version, acked)
    assert max(deliveries.values()) == 1  # no version handed to two workers, none acked twice
    assert set(last) == set(refs)
    assert all(acked == 1 for _, acked in last.values())  # the newest version was acked


# -- worker processes ----------------------------------------------------------------------------


def _queue(config: dict):
    if config["backend"] == "postgres":
        from catalogsync.backends.postgres import PostgresQueue

        return PostgresQueue(config["dsn"], schema=config["schema"], max_size=1)
    from catalogsync.backends.redis import RedisQueue

    return RedisQueue(config["url"], prefix=config["prefix"])


def _wait_for(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def _produce(config: dict) -> dict:
    from catalogsync import Change, ItemType

    refs = config["refs"]
    batch = config["batch"]
    written = 0
    with _queue(config) as queue:
        _wait_for(config["start_at"])
        for i in range(0, len(refs), batch):
            written += queue.enqueue(
                config["cid"], [Change(r, ItemType.PRODUCT) for r in refs[i : i + batch]]
            )
            time.sleep(config.get("pause", 0.0))
    Path(config["done_file"]).write_text(str(written))
    return {"written": written}


def _work(config: dict) -> dict:
    """Lease and ack one by one, recording each (ref, version, acked) until the queue drains."""
    from catalogsync import BackendError

    done_file = Path(config["done_file"])
    ttl = timedelta(seconds=config["ttl"])
    records = []
    idle = 0
    with _queue(config) as queue:
        _wait_for(config["start_at"])
        while True:
            try:
                leases = queue.lease(
                    config["cid"], owner=config["owner"], limit=config["limit"], ttl=ttl
                )
            except BackendError as exc:
                if not exc.retryable:
                    raise
                continue
            if not leases:
                if done_file.exists():
                    idle += 1
                    if idle > 3:
                        break
                time.sleep(0.01)
                continue
            idle = 0
            for lease in leases:
                acked = queue.ack(config["cid"], [lease])
                records.append([lease.ref, lease.version, acked])
    return {"records": records}


def _migrate(config: dict) -> dict:
    from catalogsync.backends.postgres import migrate

    _wait_for(config["start_at"])
    return {"version": migrate(config["dsn"], schema=config["schema"])}


def main(argv: list[str]) -> None:
    """Run the role named in the JSON config and print its result as one JSON line."""
    config = json.loads(argv[1])
    role = {"produce": _produce, "work": _work, "migrate": _migrate}[config["role"]]
    print(json.dumps(role(config)))


if __name__ == "__main__":
    main(sys.argv)
