"""Command line: ``python -m catalogsync demo [--channel NAME] [--db PATH] [--json]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from ._demo import CHANNELS, DEFAULT_CHANNEL, run_demo  # noqa: PLC0415 - keep --help fast

    parser = argparse.ArgumentParser(prog="python -m catalogsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="synchronize a bundled sample catalog twice and print the activity register"
    )
    demo.add_argument(
        "--channel",
        default=DEFAULT_CHANNEL,
        choices=sorted(CHANNELS),
        help=f"where to synchronize (default: {DEFAULT_CHANNEL})",
    )
    demo.add_argument(
        "--db",
        type=Path,
        default=None,
        help="SQLite file to keep the state in (default: a temporary file)",
    )
    demo.add_argument("--products", type=int, default=300, help="sample catalog size")
    demo.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            result = run_demo(
                channel=args.channel, db=args.db, products=args.products, as_json=args.json
            )
        except BrokenPipeError:
            # `demo | head`: the reader left. Point stdout at devnull so the interpreter's own
            # final flush does not fail too (the recipe in the signal module's documentation).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        return 0 if all(e.status.value == "completed" for e in result.events) else 1
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
