"""A drill that must FAIL: with asynchronous replication, stalling the primary's WAL senders and
then losing the primary loses acknowledged writes. If `pgha drill` passed this, its lost-writes
checker could not see a loss, and every green drill would mean nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_pgha

pytestmark = pytest.mark.integration
NAME = "asyncdrill"
# Ports below Linux's ephemeral range (32768-60999): a client socket of another test can hold one
# of those for a moment, and `up` would then find it taken.


@pytest.fixture(scope="module")
def async_cluster(pgha_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    config = tmp_path_factory.mktemp("async") / "async.yaml"
    config.write_text("patroni:\n  synchronous_mode: false\n")
    run_pgha("up", "--name", NAME, "--config", str(config), "--base-port", "12432", check=True)
    yield pgha_home / NAME
    run_pgha("down", "--name", NAME, "--purge", timeout=120)


def test_async_stall_then_kill_loses_writes_and_the_drill_says_so(async_cluster: Path) -> None:
    result = run_pgha("drill", "--name", NAME, "--json", "--fault", "stall-then-kill", timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    (run,) = json.loads(result.stdout)
    results = {r["name"]: r for r in run["results"]}
    lost = results["lost_writes"]
    assert not lost["passed"], lost
    assert lost["metrics"]["lost"] > 0 and lost["metrics"]["acknowledged"] > lost["metrics"]["lost"]

    # The fault's time is when the primary was lost (after the stall), not when the stall began:
    # the first write that did not succeed comes right after it, not STALL_SECONDS (3 s) later.
    events = [json.loads(line) for line in (Path(run["run"]) / "history.jsonl").read_text().splitlines()]
    fault_time = next(e["time"] for e in events if e["process"] == "nemesis" and e["op"] == "fault")
    unsuccessful = sorted(e["time"] for e in events if e["op"] == "write" and e["type"] in ("fail", "info"))
    assert unsuccessful and fault_time - 0.5 <= unsuccessful[0] < fault_time + 2.5, (fault_time, unsuccessful[:3])
