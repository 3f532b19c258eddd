"""Shared fixtures: a manual clock, and the backends the synchronizer tests run against."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogsync.testing import ManualClock

# The reliability campaigns' --long option, campaign marker and figures summary (hooks).
from _campaign import pytest_addoption, pytest_configure, pytest_terminal_summary  # noqa: F401
from _syncenv import BACKENDS, make_backends


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at 2026-01-01 12:00 UTC."""
    return ManualClock()


@pytest.fixture(params=BACKENDS)
def backends(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> tuple[object, object]:
    """A (queue, store) pair of each backend kind the synchronizer tests run against."""
    return make_backends(request.param, tmp_path, clock, request.addfinalizer)
