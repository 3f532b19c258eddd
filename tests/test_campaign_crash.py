"""
Crash campaign: workers SIGKILLed at chosen and random points, over many seeds, lose nothing.

Each case serves an emulator on a loopback port (the channel's state outlives the workers),
queues a catalog in a SQLite file, and runs worker processes (``_campaignworker.py``) that die:
during a lease, just before the channel call, inside it (after the n-th write was answered),
between the channel's answer and the state commit, between the commit and the queue ack, after
the ack, in the connection check, or at a random moment. A last worker completes the event and
`CrashRig.verify` checks the invariant (see ``_campaigncrash.py``).

Sizes grow with ``pytest --long``; the figures go to ``tests/.campaign-figures.json``.
"""

from __future__ import annotations

import random

import pytest

from _campaignchannels import duplicated, lost, tamper
from _campaigncrash import HOOKS, PER_BATCH, CrashRig

from _campaign import FIGURES, backends, size, timed


pytestmark = pytest.mark.campaign

PRODUCTS = size(24, 80)
KILLS = size(3, 5)
SEEDS = {"kv": size(4, 20), "shopify": size(2, 8), "takealot": size(2, 8)}
REFRESH_SEEDS = {"kv": size(2, 8), "shopify": size(1, 4), "takealot": size(1, 4)}


def cases(seeds: dict[str, int]) -> list[object]:
    """``(backend, channel kind, seed)`` for every backend and the seeds of each kind."""
    return [
        pytest.param(backend, kind, seed, id=f"{backend}-{kind}-{seed}")
        for backend in backends(durability=True)
        for kind, count in seeds.items()
        for seed in range(count)
    ]


def record(rig: CrashRig, problems: list[str], scenario: str) -> None:
    """Add a case's figures to the campaign's."""
    FIGURES.add(
        "crash",
        cases=1,
        worker_runs=rig.rounds + 1,
        kills_survived=rig.kills,
        kill_points_not_reached=rig.missed,
        items=len(rig.catalog),
        items_lost=lost(problems),
        items_duplicated=duplicated(problems),
        violations=len(problems),
        **{f"{scenario}_{rig.kind}_cases": 1},
    )


@pytest.mark.parametrize(("backend", "kind", "seed"), cases(SEEDS))
def test_killed_workers_lose_and_duplicate_nothing(tmp_path, backend, kind, seed):
    """Workers killed at several points of one event (seeded), then a last one: the channel
    equals the exportable catalog, nothing was created twice, every item has a final status,
    and the one event completed with counts that match its statuses.
    """
    rig = CrashRig(tmp_path, kind=kind, backend=backend, products=PRODUCTS, seed=seed)
    with timed("crash"), rig.serving():
        rig.enqueue_all()
        for _ in range(KILLS):
            rig.kill_at(rig.rng.choice(HOOKS))
        rig.finish()
        problems = rig.verify(events=1)
    record(rig, problems, "incremental")

    assert problems == [], rig.log
    assert rig.kills >= 1, f"no worker was killed: {rig.log}"


@pytest.mark.parametrize(("backend", "kind", "seed"), cases(REFRESH_SEEDS))
def test_killed_force_refresh_repairs_the_channel(tmp_path, backend, kind, seed):
    """A force refresh (after the channel was edited behind catalogsync's back) whose workers
    are killed in its connection check and at any point of its batches still repairs every
    edited item, creates nothing twice, and completes with a final status for every item.
    """
    rig = CrashRig(tmp_path, kind=kind, backend=backend, products=PRODUCTS, seed=seed)
    with timed("crash"), rig.serving():
        total = rig.enqueue_all()
        assert rig.run_here() == "completed"
        assert tamper(kind, rig.emulator, random.Random(seed), count=8)
        assert rig.verify(events=1) != [], "the tampering is visible"
        hooks = ["check"] if rig.rng.random() < 0.5 else []
        hooks += [rig.rng.choice((*PER_BATCH, "http", "random")) for _ in range(KILLS - 1)]
        for hook in hooks:
            rig.kill_at(hook, action="refresh", refresh_items=total)
        rig.finish(action="refresh")
        problems = rig.verify(events=2)
    record(rig, problems, "refresh")

    assert problems == [], rig.log


@pytest.mark.parametrize("backend", backends())
def test_force_refresh_killed_while_streaming_a_large_catalog(tmp_path, backend):
    """A worker killed while force_refresh streams a large catalog (over 1,000 changes, the
    staged path) into the queue: the refresh is still carried out by the next worker.
    """
    rig = CrashRig(tmp_path, kind="kv", backend=backend, products=size(250, 600), seed=1)
    with timed("crash"), rig.serving():
        total = rig.enqueue_all()
        assert total > 1000
        assert rig.run_here() == "completed"
        tamper("kv", rig.emulator, random.Random(1), count=20)
        rig.kill_at("replace", action="refresh", refresh_items=total)
        assert rig.kills == 1
        rig.finish(action="refresh")
        problems = rig.verify(events=2)

    assert problems == [], problems[:10]
