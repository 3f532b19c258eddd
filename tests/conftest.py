"""Shared fixtures and the rules for optional services (PostgreSQL, Redis, contracts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The reliability campaigns' --long option, campaign marker and figures summary (hooks).
from _campaign import pytest_addoption, pytest_configure, pytest_terminal_summary  # noqa: F401
from catalogsync.testing import ManualClock


ROOT = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))


def contracts_dir() -> Path:
    """Where the official API contracts live: $CATALOGSYNC_CONTRACTS or ../shared/contracts."""
    env = os.environ.get("CATALOGSYNC_CONTRACTS")
    return Path(env) if env else ROOT.parent / "shared" / "contracts"


def require(available: bool, reason: str) -> None:
    """Skip with *reason* when a prerequisite is missing; under CI, fail instead."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so a missing prerequisite is a failure)")
    pytest.skip(reason)


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at 2026-01-01 12:00 UTC."""
    return ManualClock()
