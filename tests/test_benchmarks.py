"""
Smoke test of the benchmark suite: ``python -m benchmarks --tiny`` runs every benchmark on tiny
sizes and writes a JSON document with the fields the docs' table is built from. Figures are not
checked here (the suite is not a timed test); that every benchmark runs and reports is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _services import postgres, redis_server
from _support import require


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.__main__ import BENCHMARKS  # noqa: E402


FIELDS = {
    "benchmark",
    "name",
    "value",
    "unit",
    "reference",
    "reference_name",
    "ratio",
    "target",
    "met",
    "details",
}


@pytest.mark.timeout(600)
def test_every_benchmark_runs_on_tiny_sizes_and_reports_its_figures(tmp_path):
    dsn, pg_reason = postgres()
    url, redis_reason = redis_server()
    require(dsn is not None, pg_reason)
    require(url is not None, redis_reason)
    out = tmp_path / "bench.json"
    table = tmp_path / "bench.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--json",
            str(out),
            "--markdown",
            str(table),
            "--postgres",
            str(dsn),
            "--redis",
            str(url),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["mode"] == "tiny"
    assert not document["failures"]
    assert {"python", "cpu", "cpus"} <= set(document["machine"])
    seen = {r["benchmark"] for r in document["results"]}
    assert seen == set(BENCHMARKS), set(BENCHMARKS) ^ seen
    for result in document["results"]:
        assert set(result) >= FIELDS, result
        assert result["value"] > 0, result
        assert result["unit"], result
        assert (result["reference"] or 0) > 0, result
        assert (result["ratio"] or 0) > 0, result
        # a figure with a target says whether it was met; an informative one says so
        assert isinstance(result["met"], bool) or result["target"] in {"", "informative"}, result
    # the Markdown table lists every result
    rows = [
        line for line in table.read_text(encoding="utf-8").splitlines() if line.startswith("| ")
    ]
    assert len(rows) == 1 + len(document["results"])


def test_a_failing_benchmark_is_reported_and_fails_the_run(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--tiny",
            "--only",
            "queue-postgres",
            "--postgres",
            "postgresql://nobody@127.0.0.1:1/none",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    document = json.loads(out.read_text(encoding="utf-8"))
    assert "queue-postgres" in document["failures"]
    assert document["results"] == []
