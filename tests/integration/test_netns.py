"""A netns cluster: every component a host of its own, partitioned for real.

As root (CI), the cluster comes up, passes the lab's checks, survives the primary being cut off
and the loss of a DCS member, and leaves no namespace or process behind. Without root the
backend must refuse with one line.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from helpers import processes_under, run_pgha

from pgha.checks import tls as tls_probe
from pgha.cluster import Cluster
from pgha.security import pki
from pgha.security.dcs_auth import anonymous_write_refused
from pgha.waiting import wait_until

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
    assert len(_namespaces()) == 3 + 3 + 2 + 1 + 1  # nodes, etcd members, HAProxies, the repository host, switch
    status = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    assert status["healthy"], status["problem"]
    hosts = {m["host"] for m in status["members"]}
    assert len(hosts) == 3 and all(h.startswith("198.18.") for h in hosts)
    assert {s["haproxy"] for s in status["haproxy"]} == {"haproxy", "haproxy1"}
    # Nothing of the cluster's network is in the machine's own namespace.
    own = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "198.18.0." not in own  # the cluster's own network (podman may use 198.18.x too)
    # Prometheus beside the first HAProxy scrapes every Patroni, both HAProxies and every etcd
    # member over HTTPS verified against the cluster's CA (etcd with a client certificate).
    seen: dict[str, object] = {}

    def every_target_up() -> bool:
        nonlocal seen
        seen = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)["monitoring"] or {}
        return seen.get("targets") == 3 + 2 + 3 and seen.get("targets_up") == seen.get("targets")

    assert wait_until(every_target_up, 60, every=2), seen
    assert str(seen["url"]).startswith("https://198.18.0."), seen


def test_lab_checks_pass(netns_cluster: Path) -> None:
    result = run_pgha("check", "--name", NAME, "--json")
    assert result.returncode == 0, result.stdout
    assert {r["status"] for r in json.loads(result.stdout)} == {"PASS"}


def _served(cluster: Cluster) -> dict[str, int]:
    """Serial numbers each kind of TLS port serves right now, verified against the cluster's CA."""
    reach = cluster.reach
    ports = {"postgres node0": (replace(reach.postgres("node0"), tls=reach.tls), True),
             "REST node1": (reach.rest("node1"), False),
             "etcd dcs2": (reach.dcs_client(2), False),
             "stats haproxy1": (replace(reach.haproxy_stats(1), tls=reach.tls), False),
             "pooler pooler1": (replace(reach.pooler(1), tls=reach.tls), True)}
    return {what: tls_probe.served_certificate(ep, postgres=pg).serial_number for what, (ep, pg) in ports.items()}


def test_tls_on_every_hop(netns_cluster: Path) -> None:
    cluster = Cluster(NAME)
    assert cluster.spec.tls
    result = run_pgha("check", "--name", NAME, "--json")
    security = next(r for r in json.loads(result.stdout) if r["number"] == 7)
    assert security["status"] == "PASS" and "TLS on every hop" in security["name"], security
    for phrase in ("ssl=on", "refused cleartext", "replication from", "over TLS", "0 host lines",
                   "etcd dcs0 refused a client without certificate", "REST node2 refused cleartext",
                   "stats haproxy refused cleartext"):
        assert phrase in security["evidence"], (phrase, security["evidence"])
    store = pki.load(cluster.layout.pki)
    served = _served(cluster)
    assert served == {"postgres node0": store.leaf("node0").serial, "REST node1": store.leaf("node1").serial,
                      "etcd dcs2": store.leaf("dcs2").serial, "stats haproxy1": store.leaf("haproxy1").serial,
                      "pooler pooler1": store.leaf("pooler1").serial}
    # HAProxy's Prometheus exporter answers on its stats listener, over HTTPS, behind its password.
    topo = cluster.reach.topology
    url = f"https://{topo.haproxies[0].address}:{topo.haproxy_ports[0].stats}/metrics"
    ca = cluster.backend().host_layout("haproxy").tls_ca  # type: ignore[attr-defined]
    code = f"""
import base64, ssl, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile={str(ca)!r})
def get(auth):
    basic = {{"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}} if auth else {{}}
    req = urllib.request.Request({url!r}, headers=basic)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
print(get(None)[0], get("admin:wrong")[0])
status, body = get({f"admin:{cluster.secrets.stats_password}"!r})
wanted = 'haproxy_backend_active_servers{{proxy="primary"}}'
print(status, [line for line in body.splitlines() if line.startswith(wanted)])
"""
    out = _in_namespace("haproxy1", code)
    assert out.splitlines()[0] == "401 401", out
    assert out.splitlines()[1] == "200 ['haproxy_backend_active_servers{proxy=\"primary\"} 1']", out


def test_an_attack_from_another_host_is_refused(netns_cluster: Path) -> None:
    """From the HAProxy host (in the cluster's network, not a database host) as an unprivileged
    user: no client certificate, no TLS handshake; plain HTTP, no answer."""
    cluster = Cluster(NAME)
    scope, dcs0 = cluster.spec.patroni_scope, cluster.reach.dcs_client(0)
    before = cluster.wait_healthy(60).leader
    ns = cluster.reach.topology.haproxies[0].netns
    assert ns is not None and before is not None
    attacks = {"failover": json.dumps({"leader": before.name, "member": "node1"}), "leader": "evil",
               "config": json.dumps({"postgresql": {"parameters": {"archive_command": "id"}}})}
    for (key, value), scheme in itertools.product(attacks.items(), ("https", "http")):
        etcdctl = ["etcdctl", f"--endpoints={scheme}://{dcs0.host}:{dcs0.port}", "--insecure-skip-tls-verify",
                   "--dial-timeout=3s", "--command-timeout=5s", "put", f"/service/{scope}/{key}", value]
        result = subprocess.run(["ip", "netns", "exec", ns, "runuser", "-u", "nobody", "--", "env", "ETCDCTL_API=3",
                                 *etcdctl], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode != 0 and "OK" not in result.stdout, (key, scheme, result.stdout, result.stderr)
    # With a certificate of the cluster's CA but no password (pgha's own): etcd's auth refuses.
    refused, evidence = anonymous_write_refused(cluster.spec, dcs0)
    assert refused, evidence
    time.sleep(5)
    after = cluster.wait_healthy(60).leader
    assert after is not None and after.name == before.name
    with cluster.clients.entrypoint().connect(connect_timeout=5) as conn:
        row = conn.execute("SHOW archive_command").fetchone()
    assert row is not None and row[0] != "id"


def test_certificates_rotate_under_a_live_writer(netns_cluster: Path) -> None:
    cluster = Cluster(NAME)
    before = _served(cluster)
    stop, failures, acked = threading.Event(), [], []

    def write() -> None:
        while not stop.is_set():
            try:
                with cluster.clients.entrypoint().connect(connect_timeout=5, autocommit=True) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS rotation (at timestamptz DEFAULT now())")
                    conn.execute("INSERT INTO rotation DEFAULT VALUES")
                acked.append(1)
            except psycopg.Error as e:
                failures.append(str(e).strip())
            time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(2)
        result = run_pgha("rotate-certs", "--name", NAME, timeout=300)
        time.sleep(5)  # HAProxy's checks (1 s apart) would have caught a REST listener that broke
    finally:
        stop.set()
        writer.join(30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert failures == [] and len(acked) > 20, failures[:3]
    after = _served(cluster)
    store = pki.load(cluster.layout.pki)
    assert all(after[what] != before[what] for what in before), (before, after)
    assert after["postgres node0"] == store.leaf("node0").serial
    status = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    assert status["healthy"] and 360 < status["tls"]["days_left"] <= 365, status["tls"]


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
    # Its replicas confirmed it silent: a guard fenced it, so no replica had to wait out the ttl.
    assert outage["outage_s"] < 10, results["outage"]["summary"]


def test_a_guard_cut_off_from_a_healthy_primary_fences_nothing(netns_cluster: Path) -> None:
    # The active guard's host (HAProxy's too) loses the primary; the replicas still stream from it.
    rc, results = _drill("--fault", "isolate-guard", "--via", "multihost")
    assert rc == 0, results
    assert results["not_fenced"]["passed"], results["not_fenced"]["summary"]
    assert results["lost_writes"]["metrics"]["lost"] == 0  # type: ignore[index]
    status = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    assert status["fencing"]["armed"], status["fencing"]


def test_a_primary_lost_with_the_active_guard_is_fenced_by_the_standby(netns_cluster: Path, pgha_home: Path) -> None:
    reports = Cluster(NAME, pgha_home).backend().guard_reports()
    active = [r.name for r in reports if (r.state or {}).get("active")]
    assert len(active) == 1 and len(reports) == 2, reports
    standby = next(r.name for r in reports if r.name != active[0])
    result = run_pgha("drill", "--name", NAME, "--json", "--fault", "node-and-guard-loss", timeout=600)
    run = json.loads(result.stdout)[0]
    results = {r["name"]: r for r in run["results"]}
    assert result.returncode == 0, results
    assert results["lost_writes"]["metrics"]["lost"] == 0 and results["split_brain"]["passed"]
    run_dir = Path(run["run"])
    meta = json.loads((run_dir / "meta.json").read_text())
    final = json.loads((run_dir / "final.json").read_text())
    assert [node for node, _ in final["fences"]] == [meta["old_primary"]], final["fences"]
    # Two guards saw the same silence: the standby did nothing while the killed guard's lease
    # lasted, then took the guards' key and fenced, before the old leader's key would have expired.
    report = (run_dir / "report.md").read_text()
    assert (f"| {standby} | guard | the primary {meta['old_primary']} does not answer, but this guard does not "
            "hold the guards' key") in report
    assert f"| {standby} | guard | this guard holds the guards' key: it is the active one |" in report
    assert f"| {standby} | fenced | deleted the leader key of {meta['old_primary']}" in report
    outage = results["outage"]["metrics"]["outage_s"]
    assert isinstance(outage, float) and outage < meta["ttl"], outage
    assert results["rejoin"]["passed"] and meta["new_primary"] != meta["old_primary"]


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


def _created_using(log: Path) -> list[str]:
    return [ln.rsplit(" ", 1)[-1] for ln in log.read_text().splitlines() if "replica has been created using" in ln]


def _in_namespace(host: str, code: str) -> str:
    result = subprocess.run(["ip", "netns", "exec", f"pgha-{NAME}-{host}", "/usr/bin/python3", "-c", code],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.stdout + result.stderr


def test_backups_go_to_a_repository_host_of_its_own_over_tls(netns_cluster: Path) -> None:
    backups = json.loads(run_pgha("backups", "--name", NAME, "--json", check=True).stdout)
    assert [b["type"] for b in backups["backups"]][:1] == ["full"] and backups["problem"] is None, backups
    # pgBackRest took it on the repository host, through the server beside the primary.
    repo_log = netns_cluster / "hosts" / "backup" / "logs" / "pgbackrest-backup" / f"{NAME}-backup.log"
    assert "backup command end: completed successfully" in repo_log.read_text()
    # From a standby: pgBackRest waited for the replica to replay up to the backup's start.
    assert "replay on the standby reached" in repo_log.read_text()
    node_conf = (netns_cluster / "hosts" / "node0" / "conf" / "pgbackrest-node0.conf").read_text()
    assert "repo1-host=backup" in node_conf and "repo1-host-type=tls" in node_conf
    assert "cipher-pass" not in node_conf  # only the repository host holds the key
    # A certificate of the cluster's CA that the repository host does not admit gets nothing.
    tls = netns_cluster / "hosts" / "node0" / "conf" / "tls"

    def probe(cert: str) -> str:
        return _in_namespace("node0", "\n".join([
            "import socket, ssl",
            f"ctx = ssl.create_default_context(cafile='{tls / 'ca.crt'}')",
            "ctx.check_hostname = False",
            f"ctx.load_cert_chain('{tls / (cert + '.crt')}', '{tls / (cert + '.key')}')",
            "s = ctx.wrap_socket(socket.create_connection(('backup', 8432), 5))",
            "print('answer', s.recv(200))"]))

    assert '"name":"pgBackRest"' in probe("node0"), "the node's own certificate is not served"
    assert "answer b''" in probe("node0-dcs"), "a DCS client certificate got an answer"


def test_a_replica_is_rebuilt_from_the_repository_host(netns_cluster: Path) -> None:
    cluster = Cluster(NAME)
    replica = next(m.name for m in cluster.state().members if not m.is_leader)
    log = cluster.backend().log_files()[replica]
    before = _created_using(log)
    result = run_pgha("ctl", "--name", NAME, "reinit", NAME, replica, "--force", "--wait", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    deadline = time.monotonic() + 180
    while len(_created_using(log)) == len(before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _created_using(log)[len(before):] == ["pgbackrest"], log.read_text()[-3000:]
    cluster.wait_healthy(120)
    verified = run_pgha("verify-backup", "--name", NAME, timeout=600)
    assert verified.returncode == 0 and "no corruption" in " ".join(verified.stdout.split()), verified.stdout


def test_with_no_replica_to_copy_from_the_backup_comes_from_the_primary(netns_cluster: Path) -> None:
    cluster = Cluster(NAME)
    backend = cluster.backend()
    replicas = [m.name for m in cluster.state().members if not m.is_leader]
    for node in replicas:
        backend.stop_node(node)  # type: ignore[attr-defined]
    try:
        result = run_pgha("backup", "--name", NAME, "--type", "incr", timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        said = [ln for ln in cluster.layout.journal.read_text().splitlines() if "no standby could be backed up" in ln]
        assert said and "unable to find standby" in said[-1] and "from the primary" in said[-1], said
    finally:
        for node in replicas:
            backend.start_node(node)  # type: ignore[attr-defined]
    cluster.wait_healthy(180)


def test_a_lost_cluster_comes_back_from_the_repository_host(netns_cluster: Path) -> None:
    rc, results = _drill("--fault", "disaster")
    assert rc == 0, results
    assert list(results) == ["outage", "rpo", "split_brain", "rejoin"]
    # Restored in place, the nodes' configurations name the repository for new replicas again.
    cluster = Cluster(NAME)
    patroni = (netns_cluster / "hosts" / "node1" / "conf" / "patroni-node1.yml").read_text()
    assert "- pgbackrest" in patroni and "pgbackrest_restore" not in patroni
    assert not list((netns_cluster / "scratch").iterdir())
    assert cluster.spec.restore_from is None


def test_down_removes_namespaces_and_processes(netns_cluster: Path) -> None:
    run_pgha("down", "--name", NAME, check=True, timeout=180)
    assert _namespaces() == []
    assert processes_under(netns_cluster) == []
    assert not list(Path("/etc/netns").glob(f"pgha-{NAME}-*"))  # the hosts files it wrote
    # And it comes back on the same data.
    run_pgha("up", "--name", NAME, check=True, timeout=300)
    assert run_pgha("status", "--name", NAME).returncode == 0
