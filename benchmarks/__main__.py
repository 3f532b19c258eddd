"""
The benchmark suite: ``python -m benchmarks [--quick] [--json PATH] [--only NAME ...]``.

Every benchmark reports its value and unit, the floor or reference measured in the same run,
their ratio and its target. ``--quick`` shrinks the sizes so the whole suite finishes in under two
minutes on a 2-core machine; ``--tiny`` (the smoke test's) in seconds. ``--markdown PATH`` writes
the results table used by ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._core import Context, Result, machine


#: name -> "module:function"; each function takes a `Context` and returns a list of `Result`.
BENCHMARKS: dict[str, str] = {
    "hash": "benchmarks.hashing:run",
    "change-detection": "benchmarks.change_detection:run",
    "queue-sqlite": "benchmarks.queues:run_sqlite",
    "queue-postgres": "benchmarks.queues:run_postgres",
    "queue-redis": "benchmarks.queues:run_redis",
    "first-sync": "benchmarks.first_sync:run",
    "pacing": "benchmarks.pacing:run",
    "memory": "benchmarks.memory:run",
    "api-calls": "benchmarks.api_calls:run",
}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| benchmark | measure | value | unit | floor / reference | ratio | target | met |",
        "|---|---|---:|---|---|---:|---|---|",
    ]
    for r in results:
        ref = f"{_fmt(r.reference)} ({r.reference_name})" if r.reference is not None else "-"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.benchmark} | {r.name} | {_fmt(r.value)} | {r.unit} | {ref} | "
            f"{_fmt(r.ratio)} | {r.target or '-'} | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under two minutes")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes: seconds")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--markdown", type=Path, help="write the results table (Markdown)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--postgres", default=Context.postgres_dsn, help="PostgreSQL DSN")
    parser.add_argument("--redis", default=Context.redis_url, help="Redis URL")
    args = parser.parse_args(argv)
    ctx = Context(
        quick=args.quick or args.tiny,
        tiny=args.tiny,
        postgres_dsn=args.postgres,
        redis_url=args.redis,
    )
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    results: list[Result] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name in args.only or list(BENCHMARKS):
        module_name, _, function = BENCHMARKS[name].partition(":")
        ctx.log(f"== {name} ({mode})")
        t0 = time.perf_counter()
        try:
            run = getattr(importlib.import_module(module_name), function)
            produced: list[Result] = run(ctx)
        except Exception as exc:  # one benchmark's failure must not hide the others
            failures[name] = f"{type(exc).__name__}: {exc}"
            ctx.log(f"   FAILED: {failures[name]}")
            continue
        finally:
            timings[name] = round(time.perf_counter() - t0, 1)
        for r in produced:
            ctx.log(f"   {r.name}: {_fmt(r.value)} {r.unit} (ratio {_fmt(r.ratio)}; {r.target})")
        results.extend(produced)
    text = table(results)
    print(text)
    document: dict[str, Any] = {
        "mode": mode,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "timings": timings,
        "results": [r.as_dict() for r in results],
        "failures": failures,
    }
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
