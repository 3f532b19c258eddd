"""The package surface, its version, and the README's commands."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import catalogsync
import catalogsync.testing
import catalogsync.typing


ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete():
    """__all__ is sorted, and every name in it is importable."""
    for module in (catalogsync, catalogsync.testing):
        assert list(module.__all__) == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_version_comes_from_the_metadata():
    """__version__ is the installed distribution's version."""
    assert catalogsync.__version__ == importlib.metadata.version("catalogsync")


def test_typed_marker_is_shipped():
    """The package ships py.typed."""
    assert (Path(catalogsync.__file__).parent / "py.typed").exists()


def test_readme_test_command_is_what_ci_runs():
    """.ci/run runs the README's test command verbatim."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```console\n(.+?)\n```", readme)
    assert len(commands) == 2, "the README has exactly two set-up commands"
    demo, tests = commands
    assert "python -m catalogsync demo" in demo
    assert "pytest" in tests
    assert tests in ci.splitlines()
