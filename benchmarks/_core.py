"""
What every benchmark shares: the result record, the run context, timing and RSS helpers.

A benchmark is a function ``run(ctx: Context) -> list[Result]``. Each `Result` carries the
measured value and its unit, the floor or reference measured in the same run (never a number
remembered from another run), their ratio, and the target with whether it was met.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self


@dataclass
class Result:
    """One measured figure."""

    benchmark: str  #: e.g. "change-detection"
    name: str  #: what exactly, e.g. "unchanged items, SQLite" (unique within the benchmark)
    value: float
    unit: str
    reference: float | None = None  #: the floor or the reference, measured in the same run
    reference_name: str = ""  #: what the reference is
    ratio: float | None = None  #: value / reference unless `ratio_note` says otherwise
    ratio_note: str = "value / reference"
    target: str = ""  #: human-readable target, "" when the figure is informative only
    met: bool | None = None  #: None when there is no target
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """How big to go. ``quick`` shrinks every size so the whole suite takes under two minutes."""

    quick: bool = False
    tiny: bool = False  #: the smoke test's sizes (seconds, not minutes)
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)

    def size(self, full: int, quick: int, tiny: int) -> int:
        """*full*, *quick* or *tiny* depending on the mode."""
        if self.tiny:
            return tiny
        return quick if self.quick else full


class Timer:
    """Wall and CPU time of a block: ``with Timer() as t: ...; t.wall, t.cpu``."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Self:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    """The smallest wall time of *repeat* calls of *fn* (the least disturbed by a noisy machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb() -> float:
    """
    Peak resident set size of this process in MiB.

    Linux's ``VmHWM`` where there is one: ``ru_maxrss`` survives ``exec``, so a subprocess
    started by a big parent would report the parent's peak. Elsewhere ``ru_maxrss`` (KiB).
    """
    try:
        with Path("/proc/self/status").open(encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for a block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with Path("/proc/meminfo").open(encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                    break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": memory,
    }
