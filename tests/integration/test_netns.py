"""A netns cluster: every component a host of its own, partitioned for real.

As root (CI), the cluster comes up, passes the lab's checks, survives the primary being cut off
and the loss of a DCS member, and leaves no namespace or process behind. Without root the
backend must refuse with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import processes_under, run_pgha

pytestmark = pytest.mark.integration
NAME = "hosts"
OUTAGE_BOUND_S = 90.0  # generous: behaviour, not speed (numbers come from bench/failover.py)


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"pgha-{NAME}-")]


@pytest.fixture(scope="module")
def netns_cluster(pgha_home: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        result = run_pgha("up", "--name", NAME, "--backend", "netns", "--base-port", "21432")
        assert result.returncode == 2 and "needs root" in result.stderr
        pytest.skip("the netns backend needs root; its refusal was checked")
    run_pgha("up", "--name", NAME, "--backend", "netns", "--base-port", "21432", check=True, timeout=300)
    yield pgha_home / NAME
    run_pgha("down", "--name", NAME, "--purge", timeout=180)


def _drill(*args: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = run_pgha("drill", "--name", NAME, "--json", *args, timeout=600)
    runs = json.loads(result.stdout)
    assert len(runs) == 1, result.stdout + result.stderr
    return result.returncode, {r["name"]: r for r in runs[0]["results"]}


def test_every_component_is_a_host_of_its_own(netns_cluster: Path) -> None:
    assert len(_namespaces()) == 3 + 3 + 2 + 1  # nodes, etcd members, HAProxies, the switch
    status = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    assert status["healthy"], status["problem"]
    hosts = {m["host"] for m in status["members"]}
    assert len(hosts) == 3 and all(h.startswith("198.18.") for h in hosts)
    assert {s["haproxy"] for s in status["haproxy"]} == {"haproxy", "haproxy1"}
    # Nothing of the cluster's network is in the machine's own namespace.
    own = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "198.18.0." not in own  # the cluster's own network (podman may use 198.18.x too)


def test_lab_checks_pass(netns_cluster: Path) -> None:
    result = run_pgha("check", "--name", NAME, "--json")
    assert result.returncode == 0, result.stdout
    assert {r["status"] for r in json.loads(result.stdout)} == {"PASS"}


def test_isolated_primary_demotes_itself_and_the_cluster_moves_on(netns_cluster: Path) -> None:
    rc, results = _drill("--fault", "isolate")
    assert rc == 0, results
    outage = results["outage"]["metrics"]
    assert isinstance(outage, dict) and outage["outage_s"] is not None and outage["outage_s"] < OUTAGE_BOUND_S
    lost = results["lost_writes"]["metrics"]
    assert isinstance(lost, dict) and lost["lost"] == 0 and lost["acknowledged"] > 20
    assert results["split_brain"]["passed"] and results["rejoin"]["passed"]
    demotion = results["self_demotion"]
    assert demotion["passed"], demotion["summary"]


def test_losing_one_dcs_member_costs_no_write(netns_cluster: Path) -> None:
    rc, results = _drill("--fault", "dcs-down", "--target", "dcs1")
    assert rc == 0, results
    assert results["outage"]["metrics"]["outage_s"] in (None, 0, 0.0)  # type: ignore[index]
    assert results["lost_writes"]["metrics"]["lost"] == 0  # type: ignore[index]


def test_losing_an_haproxy_host_costs_at_most_a_reconnect(netns_cluster: Path) -> None:
    rc, results = _drill("--fault", "haproxy-kill", "--target", "haproxy", "--via", "multihost")
    assert rc == 0, results
    outage = results["outage"]["metrics"]["outage_s"]  # type: ignore[index]
    assert outage is None or outage < 5, results["outage"]["summary"]


def test_down_removes_namespaces_and_processes(netns_cluster: Path) -> None:
    run_pgha("down", "--name", NAME, check=True, timeout=180)
    assert _namespaces() == []
    assert processes_under(netns_cluster) == []
    # And it comes back on the same data.
    run_pgha("up", "--name", NAME, check=True, timeout=300)
    assert run_pgha("status", "--name", NAME).returncode == 0
