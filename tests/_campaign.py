"""
Plumbing shared by the reliability campaigns (``tests/test_campaign_*.py``).

* Sizes: every campaign reads its size from `size` (the normal suite) or, with ``pytest --long``,
  the bigger figure, so the same tests run as a quick check or as a long campaign.
* Figures: campaigns add what they did to `FIGURES` (kills survived, faults injected, inputs
  tried, items lost); at the end of the session the figures are printed and written to
  ``tests/.campaign-figures.json`` (git-ignored) so a ``--long`` run can be quoted in
  ``docs/reliability.md``.
* Backends: `backends` names the backend kinds a campaign runs against; `backend_spec` describes
  one as JSON (so a worker process can open it) and `open_backends` opens it. PostgreSQL is one
  more entry here when its backends land.

The pytest hooks at the bottom are imported by ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest


HERE = Path(__file__).resolve().parent
FIGURES_FILE = HERE / ".campaign-figures.json"


_long = False
_started = time.monotonic()


def long_run() -> bool:
    """Whether ``pytest --long`` asked for the full-size campaigns."""
    return _long or bool(os.environ.get("CATALOGSYNC_LONG"))


def backends(*, durability: bool = False) -> list[str]:
    """
    The backend kinds the campaigns run against; PostgreSQL joins when its backends exist.

    With *durability*, long runs add ``sqlite-full`` (SQLite with ``synchronous="FULL"``): it
    matters for power loss, not for killed processes, and the crash campaign shows both
    settings survive kills.
    """
    return ["sqlite", "sqlite-full"] if durability and long_run() else ["sqlite"]


def size(normal: int, long: int) -> int:
    """*normal* in the ordinary suite, *long* under ``pytest --long``."""
    return long if long_run() else normal


# -- figures ------------------------------------------------------------------------------------


class Figures:
    """Thread-safe counters per campaign: ``FIGURES.add("crash", kills=3, seeds=1)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.data: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, campaign: str, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self.data[campaign][name] += int(value)

    def took(self, campaign: str, seconds: float) -> None:
        with self._lock:
            self.seconds[campaign] += seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                name: {**dict(sorted(counts.items())), "seconds": round(self.seconds[name], 1)}
                for name, counts in sorted(self.data.items())
            }


FIGURES = Figures()


class timed:  # noqa: N801 - reads as a context-manager verb
    """``with timed("crash"):`` adds the block's wall-clock time to the campaign's figures."""

    def __init__(self, campaign: str) -> None:
        self.campaign = campaign

    def __enter__(self) -> Self:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        FIGURES.took(self.campaign, time.monotonic() - self.start)


# -- backends -----------------------------------------------------------------------------------


def backend_spec(kind: str, tmp_path: Path) -> dict[str, Any]:
    """A JSON-able description of a fresh backend of *kind* (opened by `open_backends`)."""
    if kind in {"sqlite", "sqlite-full"}:
        synchronous = "FULL" if kind == "sqlite-full" else "NORMAL"
        return {"kind": "sqlite", "path": str(tmp_path / "campaign.db"), "synchronous": synchronous}
    raise ValueError(f"unknown backend kind {kind!r}")


def open_backends(spec: dict[str, Any], **kwargs: Any) -> tuple[Any, Any]:
    """The ``(queue, store)`` a spec describes (keyword arguments go to both constructors)."""
    if spec["kind"] == "sqlite":
        from catalogsync import SQLiteQueue, SQLiteStore

        kwargs.setdefault("synchronous", spec.get("synchronous", "NORMAL"))
        return SQLiteQueue(spec["path"], **kwargs), SQLiteStore(spec["path"], **kwargs)
    raise ValueError(f"unknown backend kind {spec['kind']!r}")


def close_backends(queue: Any, store: Any) -> None:
    """Close both, if they can be closed."""
    for backend in (queue, store):
        close = getattr(backend, "close", None)
        if close is not None:
            close()


# -- crash points -------------------------------------------------------------------------------


class Crash(BaseException):
    """Raised by an in-process `Trap`: the worker "dies" here (nothing catches it)."""


def _crash() -> None:
    raise Crash


class Trap:
    """
    Counts hits of named points in a worker and fires *action* at the armed one.

    *armed* is ``"<hook>:<n>"`` (fire at the *n*-th hit of *hook*) or ``None``. The crash worker's
    action is a SIGKILL of its own process; in-process tests raise `Crash`.
    """

    def __init__(self, armed: str | None, action: Callable[[], None] = _crash) -> None:
        self.hits: Counter[str] = Counter()
        hook, _, n = (armed or "").partition(":")
        self.hook, self.at = hook, int(n or 0)
        self.action = action

    def arm(self, armed: str | None) -> None:
        """Aim at another point (hit counts start again)."""
        self.hits.clear()
        hook, _, n = (armed or "").partition(":")
        self.hook, self.at = hook, int(n or 0)

    def hit(self, hook: str) -> None:
        self.hits[hook] += 1
        if hook == self.hook and self.hits[hook] == self.at:
            self.action()


class TrapQueue:
    """A queue that reports its lease, ack and replace-all stream to the trap."""

    def __init__(self, inner: Any, trap: Trap) -> None:
        self._inner, self._trap = inner, trap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def lease(self, *args: Any, **kwargs: Any) -> Any:
        leases = self._inner.lease(*args, **kwargs)
        if leases:
            self._trap.hit("lease")
        return leases

    def ack(self, *args: Any, **kwargs: Any) -> Any:
        acked = self._inner.ack(*args, **kwargs)
        self._trap.hit("ack.after")
        return acked

    def replace_all(self, connector_id: str, changes: Iterable[Any], *, force: bool = True) -> Any:
        return self._inner.replace_all(connector_id, self._stream(changes), force=force)

    def _stream(self, changes: Iterable[Any]) -> Iterator[Any]:
        for change in changes:
            yield change
            self._trap.hit("replace")


class TrapStore:
    """A store that reports its commits to the trap."""

    def __init__(self, inner: Any, trap: Trap) -> None:
        self._inner, self._trap = inner, trap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        self._inner.commit(*args, **kwargs)
        self._trap.hit("commit.after")


class TrapChannel:
    """A channel that reports its connection checks and pushes to the trap."""

    def __init__(self, inner: Any, trap: Trap) -> None:
        self._inner, self._trap = inner, trap
        self.name = inner.name
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def check_connection(self, params: Any) -> Any:
        self._trap.hit("check")
        return self._inner.check_connection(params)

    def push(self, operations: Any, params: Any) -> Any:
        self._trap.hit("push.before")
        outcomes = self._inner.push(operations, params)
        self._trap.hit("push.after")
        return outcomes


# -- pytest hooks (imported by conftest.py) -----------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--long``: run the reliability campaigns at full size."""
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run the reliability campaigns at full size (more seeds, larger catalogs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``campaign`` marker and remember ``--long``."""
    global _long
    _long = bool(config.getoption("--long", default=False))
    if _long:  # worker and producer processes size themselves the same way
        os.environ["CATALOGSYNC_LONG"] = "1"
    config.addinivalue_line(
        "markers", "campaign: a reliability campaign (crash, faults, bad input, secrets, load)"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the campaign figures and write them to ``tests/.campaign-figures.json``."""
    figures = FIGURES.snapshot()
    if not figures:
        return
    document = {
        "mode": "long" if long_run() else "normal",
        "exitstatus": int(exitstatus),
        "session_seconds": round(time.monotonic() - _started, 1),
        "campaigns": figures,
    }
    with contextlib.suppress(OSError):  # a read-only checkout: the summary still shows them
        FIGURES_FILE.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    terminalreporter.section("reliability campaign figures")
    for name, counts in figures.items():
        text = ", ".join(f"{k}={v}" for k, v in counts.items())
        terminalreporter.write_line(f"{name}: {text}")
