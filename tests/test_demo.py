"""The demo: it runs end to end on SQLite and tells a consistent story."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from catalogsync import ItemType
from catalogsync.__main__ import main
from catalogsync._demo import edit_catalog, sample_catalog


def test_sample_catalog_is_deterministic_and_realistic():
    """The same seed gives the same catalog: 6 categories, 2-6 variants per product."""
    a, b = sample_catalog(40), sample_catalog(40)
    products = a.items(ItemType.PRODUCT)

    assert [i.fields for i in a.items(ItemType.VARIANT)] == [
        i.fields for i in b.items(ItemType.VARIANT)
    ]
    assert len(a.items(ItemType.CATEGORY)) == 6
    assert len(products) == 40
    kids = a.children(ItemType.VARIANT, [p.ref for p in products])
    assert all(2 <= len(v) <= 6 for v in kids.values())
    assert set(products[0].fields["title"]) == {"en", "es"}


def test_demo_json_tells_the_two_event_story(tmp_path):
    """The demo's JSON: a first full sync with the deliberate errors, then an incremental one."""
    out = io.StringIO()
    from catalogsync._demo import run_demo

    run_demo(channel="memory", db=tmp_path / "demo.db", products=120, out=out, as_json=True)
    doc = json.loads(out.getvalue())
    first, second = doc["events"]

    assert first["status"] == second["status"] == "completed"
    assert first["has_errors"]
    assert {e["ref"] for e in first["item_errors"]} == {"P0011", "P0023", "P0071", "P0083"}
    assert sum(first["counts"]["synchronized"].values()) > 500
    assert sum(second["counts"]["synchronized"].values()) < 100
    assert second["configuration"]["params"]["language"] == "en"
    assert (tmp_path / "demo.db").exists()


def test_demo_edits_are_real_changes():
    """The edits between the events change prices, rename a category, delete and add products."""
    catalog = sample_catalog(200)
    changes = edit_catalog(catalog)

    assert (ItemType.PRODUCT, "P0004") not in catalog
    assert (ItemType.PRODUCT, "P9001") in catalog
    assert (
        catalog.get(ItemType.CATEGORY, ["cat-hats"])["cat-hats"].fields["title"]["en"]
        == "Hats & Caps"
    )
    assert len(changes) == 16


def test_demo_command_line(tmp_path, capsys):
    """Python -m catalogsync demo prints the register and exits 0."""
    assert (
        main(["demo", "--channel", "memory", "--products", "30", "--db", str(tmp_path / "x.db")])
        == 0
    )
    text = capsys.readouterr().out
    assert "1) first synchronization: completed" in text
    assert "Configuration" in text
    assert "Failed items" in text


def test_demo_runs_as_a_module(tmp_path):
    """The module entry point works in a fresh interpreter."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "catalogsync",
            "demo",
            "--channel",
            "memory",
            "--products",
            "20",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(done.stdout)["channel"] == "memory"
