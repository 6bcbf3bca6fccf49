"""The compose deployment on a real engine (rootful Podman, podman-compose): up, the lab's checks,
a stop drill and a kill drill, and a teardown that leaves no container, network or volume.

Run by `make test-containers` (after scripts/container-engine.sh), not by `make test`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PGHA, run_pgha

pytestmark = pytest.mark.containers
NAME = "ctest"
BASE_PORT = "31000"
NETWORK = "198.18.31.0/24"
OUTAGE_BOUND_S = 60.0  # generous: behaviour, not speed (numbers come from bench/failover.py)


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def _leftovers() -> dict[str, list[str]]:
    """Containers, volumes and networks of this cluster still known to the engine."""
    return {
        "containers": _podman("ps", "-a", "--filter", f"label=io.pgha.cluster={NAME}", "--format",
                              "{{.Names}}").split(),
        "volumes": [v for v in _podman("volume", "ls", "--format", "{{.Name}}").split()
                    if v.startswith(f"pgha-{NAME}_")],
        "networks": [n for n in _podman("network", "ls", "--format", "{{.Name}}").split()
                     if n.startswith(f"pgha-{NAME}_")],
    }


@pytest.fixture(scope="module")
def cluster(pgha_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    config = tmp_path_factory.mktemp("spec") / "pgha.yaml"
    config.write_text(f"network: {NETWORK}\n")
    result = run_pgha("up", "--backend", "compose", "--name", NAME, "--base-port", BASE_PORT, "--config",
                      str(config), timeout=1500)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield pgha_home / NAME
    finally:
        if (pgha_home / NAME).exists():
            run_pgha("down", "--name", NAME, "--purge", timeout=300)


def test_check_passes_and_only_loopback_is_published(cluster: Path) -> None:
    result = run_pgha("check", "--name", NAME, "--json")
    checks = json.loads(result.stdout)
    assert result.returncode == 0, checks
    assert [c["status"] for c in checks] == ["PASS"] * len(checks)
    # Containers are hosts of their own: every hop between them is TLS, proved from outside.
    security = next(c for c in checks if c["number"] == 7)
    assert "TLS on every hop" in security["name"], security
    for phrase in ("ssl=on", "refused cleartext", "replication from", "etcd dcs0 refused a client without certificate"):
        assert phrase in security["evidence"], (phrase, security["evidence"])
    published = []
    for container in _leftovers()["containers"]:
        ports = json.loads(_podman("inspect", "--format", "{{json .NetworkSettings.Ports}}", container))
        for inside, bindings in (ports or {}).items():
            published += [(container, inside, b["HostIp"]) for b in bindings or []]
    assert published, "nothing published"
    assert {ip for _, _, ip in published} == {"127.0.0.1"}
    assert not [p for p in published if p[1].startswith(("8008", "2379", "2380"))], published


def _drill(fault: str) -> tuple[int, dict[str, dict[str, object]], dict[str, object]]:
    result = run_pgha("drill", "--name", NAME, "--json", "--fault", fault, timeout=600)
    runs = json.loads(result.stdout)
    assert len(runs) == 1, result.stdout + result.stderr
    results = {r["name"]: r for r in runs[0]["results"]}
    meta = json.loads((Path(runs[0]["run"]) / "meta.json").read_text())
    return result.returncode, results, meta


def _restarts(node: str) -> int:
    return int(_podman("inspect", "--format", "{{.RestartCount}}", f"pgha-{NAME}-{node}").strip())


def _assert_no_loss_and_rejoined(rc: int, results: dict[str, dict[str, object]]) -> None:
    assert rc == 0, results
    outage = results["outage"]["metrics"]
    assert isinstance(outage, dict) and outage["outage_s"] is not None and 0 <= outage["outage_s"] < OUTAGE_BOUND_S
    lost = results["lost_writes"]["metrics"]
    assert isinstance(lost, dict) and lost["lost"] == 0 and lost["acknowledged"] > 20
    assert results["split_brain"]["passed"]
    assert results["rejoin"]["passed"], results["rejoin"]


def test_stop_drill_fails_over_and_the_old_primary_rejoins(cluster: Path) -> None:
    rc, results, meta = _drill("stop")
    _assert_no_loss_and_rejoined(rc, results)
    assert meta["new_primary"] != meta["old_primary"]


def test_kill_drill_the_restart_policy_brings_the_node_back(cluster: Path) -> None:
    state = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    primary = next(m["name"] for m in state["members"] if m["role"] == "leader")
    before = _restarts(primary)
    rc, results, meta = _drill("kill")
    _assert_no_loss_and_rejoined(rc, results)
    assert meta["old_primary"] == primary
    # Not pgha: the engine restarted the container after its init was SIGKILLed.
    assert _restarts(primary) == before + 1
    assert run_pgha("check", "--name", NAME).returncode == 0


def test_logs_are_written_per_component(cluster: Path) -> None:
    logs = cluster / "logs"
    for name in ("dcs0", "node0", "postgresql-node0", "haproxy"):
        assert (logs / f"{name}.log").stat().st_size > 0, name
    assert "database system is ready" in (logs / "postgresql-node0.log").read_text()


def test_without_podman_up_is_one_clear_line(pgha_home: Path) -> None:
    venv_bin = str(Path(PGHA).parent)
    result = subprocess.run([PGHA, "up", "--backend", "compose", "--name", "nopodman", "--base-port", "31500"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{venv_bin}:/nonexistent"})
    assert result.returncode == 2
    assert "podman not found" in result.stderr and "Traceback" not in result.stderr
    assert not (pgha_home / "nopodman").exists()


def test_down_purge_leaves_no_container_network_or_volume(cluster: Path) -> None:
    # Last in this module: the teardown itself is what is tested.
    result = run_pgha("down", "--name", NAME, "--purge", timeout=300)
    assert result.returncode == 0, result.stderr
    assert _leftovers() == {"containers": [], "volumes": [], "networks": []}
    assert not cluster.exists()
