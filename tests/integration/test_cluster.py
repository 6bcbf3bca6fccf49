"""Real clusters: PostgreSQL 15, Patroni, etcd/ZooKeeper and HAProxy, driven through the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import PGHA, processes_under, run_pgha
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from pgha.cluster import Cluster
from pgha.ops import monitoring
from pgha.render.alert_rules import cluster_rules
from pgha.render.grafana import dashboard_queries
from pgha.waiting import wait_until

pytestmark = pytest.mark.integration
PATRONI = str(Path(sys.executable).parent / "patroni")


def _listening(ports: list[int]) -> list[int]:
    busy = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr}
    return [p for p in ports if p in busy]


def _assert_gone(home: Path, name: str, ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (processes_under(home / name) or _listening(ports)):
        time.sleep(0.2)
    assert processes_under(home / name) == []
    assert _listening(ports) == []


@pytest.fixture
def cluster_factory(pgha_home: Path) -> Iterator[object]:
    started: list[str] = []

    def up(name: str, *args: str) -> Cluster:
        started.append(name)
        run_pgha("up", "--name", name, *args, check=True, timeout=300)
        return Cluster(name)

    yield up
    for name in started:
        run_pgha("down", "--name", name, "--purge", timeout=120)


@pytest.fixture(scope="module")
def two_nodes(pgha_home: Path) -> Iterator[Cluster]:
    """One small cluster for the tests that leave it healthy (it costs ~15 s to bring up)."""
    run_pgha("up", "--name", "pair", "--nodes", "2", "--dcs-members", "1", "--base-port", "14432", check=True,
             timeout=300)
    yield Cluster("pair")
    run_pgha("down", "--name", "pair", "--purge", timeout=120)


def _check(name: str) -> tuple[int, list[dict[str, str]]]:
    result = run_pgha("check", "--name", name, "--json", timeout=120)
    return result.returncode, json.loads(result.stdout)


def test_default_profile_on_etcd(cluster_factory, pgha_home: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory("etcd3", "--base-port", "15432")
    spec = cluster.spec
    assert (spec.nodes, spec.dcs.kind, spec.dcs.members) == (3, "etcd", 3)

    rc, results = _check("etcd3")
    assert rc == 0, results
    # 7: the DCS refuses anonymous writes; 8: the pooler's transactions land on the primary;
    # 9: WAL archived to the repository, which holds the first backup; 10: the fencing guard armed
    assert [r["status"] for r in results] == ["PASS"] * 10

    # pgha.log: one line per decision of `up`, in the order they were taken.
    journal = cluster.layout.journal.read_text().splitlines()
    expected = ["new cluster 'etcd3'", *(f"starting DCS member dcs{i} (etcd)" for i in range(3)),
                "the DCS has a quorum: 3 of 3", "turning on etcd's authentication",
                *(f"starting Patroni node node{i}" for i in range(3)), "starting HAProxy", "starting PgBouncer",
                "starting fencing guard guard", "holds the leader key: it is the primary",
                "every HAProxy routes writes to it"]
    at = 0
    for want in expected:
        found = next((i for i in range(at, len(journal)) if want in journal[i]), None)
        assert found is not None, (want, journal)
        at = found + 1
    assert all(" INFO: " in line and line.endswith("]") for line in journal), journal

    status = run_pgha("status", "--name", "etcd3", "--json", check=True)
    state = json.loads(status.stdout)
    assert state["healthy"] is True
    assert sum(m["role"] == "leader" for m in state["members"]) == 1
    assert {s["status"] for s in state["haproxy"] if s["proxy"] == "primary"} == {"UP", "DOWN"}

    # Prometheus scrapes every Patroni, the HAProxy and every etcd member, and nothing fires.
    monitored = _monitoring_until("etcd3", lambda m: m["targets"] == 3 + 1 + 3 and m["targets_up"] == m["targets"]
                                  and not [a for a in m["alerts"] if a["state"] == "firing"])
    assert monitored["url"].startswith("http://127.0.0.1:"), monitored
    # pgha top: one frame from Prometheus, every member in it, the primary named as such.
    frame = run_pgha("top", "--name", "etcd3", "--once", check=True).stdout
    leader_now = cluster.state().leader
    assert leader_now is not None and all(node in frame for node in spec.node_names), frame
    rows = {node: next((ln for ln in frame.splitlines() if f" {node} " in ln), "") for node in spec.node_names}
    assert "primary" in rows[leader_now.name] and "no alert firing" in frame, frame
    assert all("replica" in row or "sync standby" in row for node, row in rows.items() if node != leader_now.name)
    # Every alert rule's and dashboard panel's expression runs on the real Prometheus, and the
    # dashboard's own panels find series (the cluster's scope, the names it exports).
    password = cluster.secrets.stats_password
    for expr in [r.expr for r in cluster_rules(spec)] + dashboard_queries(spec):
        monitoring.instant(cluster.reach, password, expr)  # raises on a query Prometheus refuses
    empty = [e for e in dashboard_queries(spec)
             if "ALERTS" not in e and not monitoring.instant(cluster.reach, password, e)]
    assert empty == [], empty
    board = pgha_home / "etcd3-dashboard.json"
    run_pgha("render", "grafana", "--name", "etcd3", "--out", str(board), check=True)
    assert json.loads(board.read_text())["uid"] == "pgha-etcd3"

    again = run_pgha("up", "--name", "etcd3", check=True)
    assert "already up and healthy; nothing changed" in again.stdout

    different = run_pgha("up", "--name", "etcd3", "--nodes", "2")
    assert different.returncode == 2 and "different spec" in different.stderr

    # The live config passes Patroni's own validator (-i: its ports are taken by itself).
    for node in spec.node_names:
        v = subprocess.run([PATRONI, "--validate-config", "-i", str(cluster.layout.patroni_config(node))],
                           capture_output=True, text=True, check=False)
        assert v.returncode == 0, v.stdout + v.stderr

    ctl = run_pgha("ctl", "--name", "etcd3", "list", check=True)
    assert "Leader" in ctl.stdout and "etcd3" in ctl.stdout

    # The checks can fail: a stopped replica fails them.
    leader = cluster.state().leader
    assert leader is not None
    replica = next(n for n in spec.node_names if n != leader.name)
    cluster.backend().stop_node(replica)
    rc, results = _check("etcd3")
    assert rc == 1
    assert any(r["status"] == "FAIL" and replica in r["evidence"] for r in results), results
    bad_status = run_pgha("status", "--name", "etcd3")
    assert bad_status.returncode == 1
    # ...and the alert rules see it: the stopped replica's Patroni is silent, Prometheus says so.
    alerting = _monitoring_until("etcd3", lambda m: any(
        a["name"] == "PghaNodeUnreachable" and a["state"] == "firing" and replica in a["summary"] for a in m["alerts"]))
    assert any(replica in down for down in alerting["down"]), alerting

    ports = [p for _, p in spec.ports.all()]
    down = run_pgha("down", "--name", "etcd3", check=True)
    assert "stopped" in down.stdout
    stops = [line for line in cluster.layout.journal.read_text().splitlines() if "stopping " in line]
    assert [s.split(": ", 1)[1].split(":")[0] for s in stops][-3:] == ["stopping dcs0", "stopping dcs1",
                                                                          "stopping dcs2"], stops
    _assert_gone(pgha_home, "etcd3", ports)
    assert (pgha_home / "etcd3" / "data").exists()  # without --purge the data stays


def _monitoring_until(name: str, wanted: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
    """`pgha status --json`'s monitoring once `wanted` holds (the last one seen otherwise, failing)."""
    seen: dict[str, Any] = {}

    def look() -> bool:
        nonlocal seen
        seen = json.loads(run_pgha("status", "--name", name, "--json").stdout)["monitoring"] or {}
        return "targets" in seen and wanted(seen)

    assert wait_until(look, timeout, every=2), seen
    return seen


def test_seed_profile_on_zookeeper_beside_another_cluster(cluster_factory, pgha_home: Path) -> None:  # type: ignore[no-untyped-def]
    lab = cluster_factory("lab", "--profile", "seed", "--base-port", "16432")
    other = cluster_factory("other", "--profile", "default", "--nodes", "2", "--dcs-members", "1",
                            "--base-port", "16532", "--no-fencing")
    assert lab.spec.dcs.kind == "zookeeper" and lab.spec.node_names == ("postgresql0", "postgresql1")
    rc, results = _check("lab")
    assert rc == 0, results
    statuses = {r["number"]: r["status"] for r in results}
    assert statuses == {1: "PASS", 2: "PASS", 3: "PASS", 4: "SKIP", 5: "PASS", 6: "PASS", 7: "SKIP", 8: "SKIP",
                        9: "SKIP", 10: "SKIP"}
    assert "as in the lab" in next(r["evidence"] for r in results if r["number"] == 10)
    rc_other, other_results = _check("other")
    assert rc_other == 0
    # Fencing off: no guard runs, and the check says what that costs.
    no_fence = next(r for r in other_results if r["number"] == 10)
    assert no_fence["status"] == "SKIP" and "fencing.enabled is false" in no_fence["evidence"], no_fence
    assert not other.spec.fencing.enabled and not (pgha_home / "other" / "logs" / "guard.log").exists()
    no_top = run_pgha("top", "--name", "lab", "--once")
    assert no_top.returncode == 2 and "runs no Prometheus" in no_top.stderr, no_top.stderr
    lab_ports = [p for _, p in lab.spec.ports.all()]
    run_pgha("down", "--name", "lab", "--purge", check=True)
    _assert_gone(pgha_home, "lab", lab_ports)
    assert not (pgha_home / "lab").exists()
    # Stopping one cluster leaves the other alone.
    assert run_pgha("status", "--name", "other").returncode == 0
    assert other.state().leader is not None


def test_three_member_zookeeper_ensemble(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory("zk3", "--dcs", "zookeeper", "--dcs-members", "3", "--nodes", "2",
                              "--base-port", "17432")
    rc, results = _check("zk3")
    by_number = {r["number"]: r for r in results}
    assert all(r["status"] != "FAIL" for n, r in by_number.items() if n != 7), results
    dcs = by_number[6]
    assert dcs["status"] == "PASS"
    assert dcs["evidence"].count("leader") == 1 and dcs["evidence"].count("follower") == 2
    # Patroni's znodes carry an ACL of the nodes' certificates; every hop is TLS.
    assert rc == 0 and by_number[7]["status"] == "PASS" and "NoAuth" in by_number[7]["evidence"], by_number[7]
    _zookeeper_attacks_are_refused(cluster)
    # One member down: the check names it and fails.
    cluster.backend().stop_dcs_member(1)
    rc, results = _check("zk3")
    dcs = next(r for r in results if r["number"] == 6)
    assert rc == 1 and dcs["status"] == "FAIL" and "dcs1" in dcs["evidence"]


def _zookeeper_attacks_are_refused(cluster: Cluster) -> None:
    """Issue 12's three writes against ZooKeeper: without a certificate there is no session at
    all; with one of the cluster's CA that is no node's (pgha's own) each is NoAuth; a node's
    certificate reads the same znode (the control). The cluster is unchanged afterwards."""
    ep, scope = cluster.reach.dcs_client(0), cluster.spec.patroni_scope
    assert ep.tls is not None and ep.tls.cert is not None
    before = cluster.wait_healthy(60).leader
    assert before is not None
    hosts = f"{ep.host}:{ep.port}"
    anonymous = KazooClient(hosts=hosts, timeout=3, connection_retry=KazooRetry(max_tries=0))
    with pytest.raises(KazooTimeoutError):
        anonymous.start(timeout=5)
    anonymous.close()

    def client(cert: str, key: str) -> KazooClient:
        zk = KazooClient(hosts=hosts, timeout=5, use_ssl=True, verify_certs=True, ca=ep.tls.ca,  # type: ignore[union-attr]
                         certfile=cert, keyfile=key)
        zk.start(timeout=10)
        return zk

    outsider = client(ep.tls.cert, ep.tls.key or "")
    try:
        for key, value in (("failover", json.dumps({"leader": before.name, "member": "node1"})),
                           ("leader", "evil"),
                           ("config", json.dumps({"postgresql": {"parameters": {"archive_command": "id"}}}))):
            path = f"/service/{scope}/{key}"
            with pytest.raises(NoAuthError):
                if outsider.exists(path):
                    outsider.set(path, value.encode())
                else:
                    outsider.create(path, value.encode())
    finally:
        outsider.stop()
        outsider.close()
    tls = cluster.backend().host_layout("node0").tls
    node = client(str(tls / "node0.crt"), str(tls / "node0.key"))
    try:
        leader, _ = node.get(f"/service/{scope}/leader")
    finally:
        node.stop()
        node.close()
    assert leader.decode() == before.name
    time.sleep(5)
    after = cluster.wait_healthy(60).leader
    assert after is not None and after.name == before.name


def test_an_occupied_port_is_named_before_anything_starts(pgha_home: Path) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 18432))
        s.listen()
        result = run_pgha("up", "--name", "busy", "--base-port", "18432")
    assert result.returncode == 2
    assert "port 18432 (HAProxy read-write entrypoint) is already in use" in result.stderr
    assert processes_under(pgha_home / "busy") == []
    assert not (pgha_home / "busy" / "spec.json").exists()


def test_ctrl_c_during_up_leaves_nothing_running(pgha_home: Path) -> None:
    proc = subprocess.Popen([PGHA, "up", "--name", "intr", "--base-port", "19432"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        # Interrupt once Patroni is starting: the DCS is up and nodes are being spawned.
        while time.monotonic() < deadline and not any("patroni" in c for c in processes_under(pgha_home / "intr")):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, out + err
        _assert_gone(pgha_home, "intr", [19432])
    finally:
        if proc.poll() is None:
            proc.kill()
        run_pgha("down", "--name", "intr", "--purge")


def _pids(cluster: Cluster) -> dict[str, tuple[int, ...]]:
    return {c.name: c.pids for c in cluster.backend().components()}


def test_up_on_an_unhealthy_cluster_stops_only_what_it_started(two_nodes: Cluster) -> None:
    cluster = two_nodes
    backend = cluster.backend()
    haproxy = psutil.Process(next(c.pids[0] for c in backend.components() if c.name == "haproxy"))
    haproxy.suspend()  # running, but its admin socket never answers: the cluster is not healthy
    try:
        before = _pids(cluster)
        started = time.monotonic()
        result = run_pgha("up", "--name", "pair", "--timeout", "5", timeout=120)
        assert time.monotonic() - started < 60  # --timeout 5 is honoured (the default is 180 s)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "nothing was stopped" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert _pids(cluster) == before  # every component it did not start still runs, untouched

        # A replica stopped meanwhile: up starts it, and on failure stops that one only.
        leader = cluster.state().leader
        assert leader is not None
        replica = next(n for n in cluster.spec.node_names if n != leader.name)
        backend.stop_node(replica)
        others = {k: v for k, v in _pids(cluster).items() if k != replica}
        result = run_pgha("up", "--name", "pair", "--timeout", "5", timeout=120)
        assert result.returncode == 2
        after = _pids(cluster)
        assert after[replica] == ()
        assert {k: v for k, v in after.items() if k != replica} == others
    finally:
        haproxy.resume()
    run_pgha("up", "--name", "pair", check=True)
    assert run_pgha("status", "--name", "pair").returncode == 0


def test_clients_connect_as_the_application_role(two_nodes: Cluster) -> None:
    cluster = two_nodes
    out = run_pgha("connect", "--name", "pair", check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("PGPASSFILE=")]
    # HAProxy, the pooler, the multi-host URI
    assert len(lines) == 3 and all("user=app" in ln or "postgresql://app@" in ln for ln in lines), out
    assert f"port={cluster.spec.ports.pooler[0]} " in lines[1]
    assert "target_session_attrs=read-write" in lines[2]
    ro = run_pgha("connect", "--name", "pair", "--ro", check=True).stdout
    assert "target_session_attrs=prefer-standby" in ro and "read-write" not in ro
    # What connect prints works as printed, with the pgpass file it names.
    env = {**os.environ, "PGPASSFILE": str(cluster.client_pgpass), "PGCONNECT_TIMEOUT": "5"}
    # The pooler's line works as printed too (the pgpass file has its port).
    pooled = subprocess.run(["psql", "-XAtq", lines[1].split("psql ", 1)[1].strip("'"), "-c", "SELECT current_user"],
                            capture_output=True, text=True, env=env, check=False)
    assert pooled.stdout.strip() == "app", pooled.stderr
    uri = lines[2].split("psql ", 1)[1].strip("'")
    psql = ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", uri]
    who = subprocess.run([*psql, "-c", "SELECT current_user, current_database(), rolsuper FROM pg_roles "
                                       "WHERE rolname = current_user"], capture_output=True, text=True, env=env,
                         check=False)
    assert who.stdout.strip() == "app|app|f", who.stderr
    made = subprocess.run([*psql, "-c", "CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)"],
                          capture_output=True, text=True, env=env, check=False)
    assert made.returncode == 0, made.stderr
    # Least privilege: no superuser powers, no administrative database.
    for sql in ("CREATE ROLE intruder", "CREATE DATABASE other", "SELECT * FROM pg_authid"):
        denied = subprocess.run([*psql, "-c", sql], capture_output=True, text=True, env=env, check=False)
        assert denied.returncode != 0 and "permission denied" in denied.stderr, (sql, denied.stderr)
    admin_db = subprocess.run([*psql[:-1], uri.replace("/app?", "/postgres?"), "-c", "SELECT 1"],
                              capture_output=True, text=True, env=env, check=False)
    assert admin_db.returncode != 0 and "permission denied for database" in admin_db.stderr
    # Patroni's post_bootstrap made the role (pgha's own check after `up` found it there), as it
    # does on a fleet installed from bundles, where pgha does not run.
    logs = "".join(p.read_text() for p in (cluster.layout.logs).glob("node*.log"))
    assert "pgha-node-hook: the application role app and its database app exist" in logs
