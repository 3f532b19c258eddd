"""Development sessions: ``nox -s tests lint typecheck docs bench``."""

from __future__ import annotations

import nox


nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = ".[postgres,redis,testing,jsonschema,fast]"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (PostgreSQL/Redis tests skip without the servers, fail under CI)."""
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "tests"))
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "typing"))
    session.run("mypy", "src")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation offline, warnings as errors (``-- serve`` to preview)."""
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "docs"))
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve")
    else:
        session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite: ``nox -s bench -- --quick --json out.json``."""
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "-m", "benchmarks", *session.posargs)
