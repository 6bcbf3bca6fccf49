"""`pgha render hosts`: bundles for real machines, and the netns backend running the same renderer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import parse_unit, run_pgha

from pgha.backends.netns import NetnsBackend
from pgha.model.spec import build_spec
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

PATRONI = str(Path(sys.executable).parent / "patroni")
INVENTORY = {
    "cluster": {"name": "prod", "profile": "default"},
    "clients": ["10.0.1.0/24"],
    "hosts": [
        {"name": "db1", "address": "10.0.0.11", "runs": ["node", "dcs"]},
        {"name": "db2", "address": "10.0.0.12", "runs": ["node", "dcs"]},
        {"name": "db3", "address": "10.0.0.13", "runs": ["node", "dcs"]},
        {"name": "lb1", "address": "10.0.0.21", "runs": ["haproxy"]},
        {"name": "lb2", "address": "10.0.0.22", "runs": ["haproxy"]},
    ],
}


def _render(tmp_path: Path, inventory: dict[str, object]) -> tuple[Path, object]:
    inv = tmp_path / "hosts.yaml"
    inv.write_text(yaml.safe_dump(inventory))
    out = tmp_path / "out"
    return out, run_pgha("render", "hosts", "--inventory", str(inv), "--out", str(out))


def test_one_bundle_per_host_with_what_it_runs(tmp_path: Path) -> None:
    out, result = _render(tmp_path, INVENTORY)
    assert result.returncode == 0, result.stderr
    db1 = sorted(str(p.relative_to(out / "db1")) for p in (out / "db1").rglob("*") if p.is_file())
    assert db1 == ["conf/dcs-0.conf", "conf/hook-node0.json", "conf/patroni-node0.yml", "conf/pgha-node-hook.py",
                   "conf/pgha-patroni.py", "conf/secure-etcd.sh", "conf/tls/ca.crt",
                   "conf/tls/dcs0.crt", "conf/tls/dcs0.key", "conf/tls/node0-dcs.crt", "conf/tls/node0-dcs.key",
                   "conf/tls/node0.crt", "conf/tls/node0.key", "install.sh",
                   "units/pgha-prod-etcd-dcs0.service", "units/pgha-prod-patroni-node0.service"]
    lb2 = sorted(str(p.relative_to(out / "lb2")) for p in (out / "lb2").rglob("*") if p.is_file())
    # The pooler runs beside every HAProxy.
    assert lb2 == ["conf/haproxy.cfg", "conf/pgbouncer-users.txt", "conf/pgbouncer.ini", "conf/tls/ca.crt",
                   "conf/tls/haproxy1.crt", "conf/tls/haproxy1.key", "conf/tls/haproxy1.pem", "conf/tls/pooler1.crt",
                   "conf/tls/pooler1.key", "install.sh", "units/pgha-prod-haproxy1.service",
                   "units/pgha-prod-pooler1.service"]
    # The CA's key stays beside the bundles, in no host's directory.
    assert (out / "pki" / "ca.key").is_file()
    assert not [p for host in ("db1", "db2", "db3", "lb1", "lb2") for p in (out / host).rglob("ca.key")]
    assert all(p.stat().st_mode & 0o077 == 0 for p in out.rglob("*.key"))
    patroni = yaml.safe_load((out / "db2" / "conf" / "patroni-node1.yml").read_text())
    assert patroni["postgresql"]["listen"] == "10.0.0.12:5432"
    assert patroni["postgresql"]["data_dir"] == "/var/lib/pgha/prod/data/node1"
    hba = patroni["postgresql"]["pg_hba"]
    assert "hostssl all all 10.0.0.21/32 scram-sha-256" in hba and "hostssl all all 10.0.1.0/24 scram-sha-256" in hba
    # Encrypted only, replication only between the database hosts.
    assert not [line for line in hba if line.startswith("host ")]
    assert [line for line in hba if " replication " in line] == [
        f"hostssl replication replicator 10.0.0.1{i}/32 scram-sha-256" for i in (1, 2, 3)]
    assert hba[-1] == "hostnossl all all 0.0.0.0/0 reject"
    assert not any("trust" in line for line in hba)
    assert patroni["postgresql"]["parameters"]["ssl"] == "on"
    assert patroni["postgresql"]["authentication"]["replication"]["sslmode"] == "verify-full"
    assert patroni["restapi"]["certfile"] == "/var/lib/pgha/prod/conf/tls/node1.crt"
    assert patroni["etcd3"]["protocol"] == "https"
    assert patroni["etcd3"]["cert"] == "/var/lib/pgha/prod/conf/tls/node1-dcs.crt"
    argv, user, env = parse_unit((out / "db1" / "units" / "pgha-prod-patroni-node0.service").read_text())
    assert argv == ["/opt/pgha/venv/bin/python", "/var/lib/pgha/prod/conf/pgha-patroni.py",
                    "/var/lib/pgha/prod/conf/patroni-node0.yml"] and user == "pgha"
    assert "PGPASSWORD" not in env
    install = (out / "db1" / "install.sh").read_text()
    assert "etcd-server" in install and "postgresql-15" in install and "haproxy" not in install
    readme = (out / "README.md").read_text()
    assert "10.0.0.21:5432,10.0.0.22:5432" in readme


def test_passwords_stay_in_owner_only_configs(tmp_path: Path) -> None:
    out, result = _render(tmp_path, INVENTORY)
    assert result.returncode == 0, result.stderr
    secrets = yaml.safe_load((out / "secrets.yml").read_text())
    passwords = [str(v) for v in secrets.values()]
    for path in out.rglob("*"):
        if not path.is_file() or path.name == "secrets.yml":
            continue
        text = path.read_text()
        if any(pw in text for pw in passwords):
            assert path.stat().st_mode & 0o077 == 0, f"{path} holds a password but is readable by others"
            assert path.suffix in (".yml", ".cfg", ".json") or path.name in ("secure-etcd.sh", "pgbouncer-users.txt"), \
                path
        if path.suffix in (".key", ".pem"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is a private key readable by others"
    # A second render keeps the passwords.
    _, again = _render(tmp_path, INVENTORY)
    assert again.returncode == 0 and yaml.safe_load((out / "secrets.yml").read_text()) == secrets


def test_a_rerender_keeps_the_certificates_and_renew_replaces_them(tmp_path: Path) -> None:
    out, result = _render(tmp_path, INVENTORY)
    assert result.returncode == 0, result.stderr
    cert = out / "db2" / "conf" / "tls" / "node1.crt"
    ca, first = (out / "pki" / "ca.crt").read_text(), cert.read_text()
    _, again = _render(tmp_path, INVENTORY)
    assert again.returncode == 0 and cert.read_text() == first
    renewed = run_pgha("render", "hosts", "--inventory", str(tmp_path / "hosts.yaml"), "--out", str(out),
                       "--renew-certs")
    assert renewed.returncode == 0, renewed.stderr
    assert cert.read_text() != first and (out / "db2" / "conf" / "tls" / "ca.crt").read_text() == ca
    # Only the first DCS host turns etcd's authentication on; its script passes sh's parser.
    scripts = sorted(str(p.relative_to(out)) for p in out.rglob("secure-etcd.sh"))
    assert scripts == ["db1/conf/secure-etcd.sh"]
    assert subprocess.run(["sh", "-n", str(out / scripts[0])], check=False).returncode == 0


def test_bundle_configs_pass_patroni_and_haproxy_checks(tmp_path: Path) -> None:
    out, result = _render(tmp_path, INVENTORY)
    assert result.returncode == 0, result.stderr
    check = subprocess.run([PATRONI, "--validate-config", "-i", str(out / "db3" / "conf" / "patroni-node2.yml")],
                           capture_output=True, text=True, check=False)
    problems = [ln for ln in (check.stdout + check.stderr).splitlines()
                if ln.strip() and "is not reachable" not in ln and "does not exist" not in ln
                and "is not a directory" not in ln]
    assert not problems, problems
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    cfg = tmp_path / "haproxy.cfg"
    # The stats socket's directory exists only on the host, after install.sh.
    cfg.write_text((out / "lb1" / "conf" / "haproxy.cfg").read_text()
                   .replace("/var/lib/pgha/prod/run", str(tmp_path))
                   .replace("/var/lib/pgha/prod/conf", str(out / "lb1" / "conf")))
    result2 = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False)
    assert result2.returncode == 0, result2.stdout + result2.stderr


@pytest.mark.parametrize(("change", "message"), [
    (lambda inv: inv["hosts"].append({"name": "db1", "address": "10.0.0.99", "runs": ["node"]}),
     "name db1 appears twice"),
    (lambda inv: inv["hosts"].pop(4) and inv["hosts"].pop(3), "no host runs haproxy"),
    (lambda inv: inv["hosts"][0].update(address="db1.example"), "is not an IPv4 address"),
    (lambda inv: inv["hosts"][0].update(runs=["database"]), "inventory: hosts.0.runs.0"),
    (lambda inv: inv["hosts"].pop(2) and None, "dcs.members: must be 1, 3 or 5"),
    (lambda inv: inv["cluster"].update(backup={"enabled": True}), "no host runs backup"),
    (lambda inv: inv["hosts"].append({"name": "bk1", "address": "10.0.0.31", "runs": ["backup"]})
     or inv["cluster"].update(tls=False), "pgBackRest's TLS server needs cluster.tls"),
    (lambda inv: inv["hosts"].extend([{"name": "bk1", "address": "10.0.0.31", "runs": ["backup"]},
                                      {"name": "bk2", "address": "10.0.0.32", "runs": ["backup"]}]),
     "only one host may run backup"),
    (lambda inv: inv["hosts"].append({"name": "bk1", "address": "10.0.0.31", "runs": ["backup"]})
     or inv["cluster"].update(backup={"enabled": False}), "runs backup, but cluster.backup.enabled is false"),
    (lambda inv: inv["hosts"].append({"name": "bk1", "address": "10.0.0.31", "runs": ["backup"]})
     or inv["cluster"].update(backup={"full_schedule": "Sun\nExecStart=/bin/sh"}), "is not a systemd calendar"),
])
def test_bad_inventories_are_one_line(tmp_path: Path, change: object, message: str) -> None:
    inventory = yaml.safe_load(yaml.safe_dump(INVENTORY))
    change(inventory)  # type: ignore[operator]
    out, result = _render(tmp_path, inventory)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def test_netns_backend_runs_the_units_it_renders(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"backend": "netns", "name": "nb"})
    backend = NetnsBackend(spec, Layout(tmp_path), Secrets("a", "b", "c", "d"), RunAs(None))
    files = {f.path: f.text for f in backend.rendered()}
    unit = tmp_path / "hosts" / "node2" / "units" / "pgha-nb-patroni-node2.service"
    argv, _, env = parse_unit(files[unit])
    assert argv[2] == str(tmp_path / "hosts" / "node2" / "conf" / "patroni-node2.yml")
    assert env["HOME"] == str(tmp_path / "hosts" / "node2")
    assert (tmp_path / "hosts" / "haproxy1" / "conf" / "haproxy.cfg") in files
    assert (tmp_path / "hosts" / "dcs0" / "install.sh") in files


@pytest.mark.parametrize(("dcs", "how"), [
    ("etcd", "- etcd: nothing to do, it reads its files at every TLS handshake"),
    ("zookeeper", "- zookeeper: `systemctl restart` its unit, one host at a time"),
])
def test_the_guide_says_how_each_program_takes_a_renewed_certificate(tmp_path: Path, dcs: str, how: str) -> None:
    """What the guide tells comes from each kind's declaration (CertificateReload), so a DCS that
    reads its certificate only at start is restarted, not reloaded."""
    inventory = {**INVENTORY, "cluster": {"name": "prod", "profile": "default", "dcs": {"kind": dcs}}}
    out, result = _render(tmp_path, inventory)
    assert result.returncode == 0, result.stderr
    readme = (out / "README.md").read_text()
    assert how in readme
    assert "- Patroni (and its PostgreSQL): `systemctl reload` its unit" in readme
    assert "- HAProxy: `systemctl reload` its unit (a reload re-reads its certificate)" in readme
    assert "- PgBouncer: `systemctl reload` its unit" in readme


WITH_BACKUP = {**INVENTORY, "hosts": [*INVENTORY["hosts"],  # type: ignore[list-item]
                                      {"name": "bk1", "address": "10.0.0.31", "runs": ["backup"]}]}


def test_a_backup_host_gets_the_repository_its_server_and_the_timers(tmp_path: Path) -> None:
    out, result = _render(tmp_path, WITH_BACKUP)
    assert result.returncode == 0, result.stderr
    root = "/var/lib/pgha/prod"
    bk1 = out / "bk1"
    repo_conf = (bk1 / "conf" / "pgbackrest-repository.conf").read_text()
    assert f"repo1-path={root}/backup/repo" in repo_conf and "tls-server-address=10.0.0.31" in repo_conf
    assert "pg1-host=node0-pgbackrest" in repo_conf and f"pg1-path={root}/data/node0" in repo_conf
    assert f"pg1-host-config={root}/conf/pgbackrest-node0-pgbackrest.conf" in repo_conf
    argv, user, _ = parse_unit((bk1 / "units" / "pgha-prod-backup.service").read_text())
    assert argv == ["/usr/bin/pgbackrest", f"--config={root}/conf/pgbackrest-repository.conf", "server"]
    assert user == "pgha"
    full_timer = (bk1 / "units" / "pgha-prod-backup-full.timer").read_text()
    assert "OnCalendar=Sun *-*-* 01:00:00" in full_timer and "Persistent=true" in full_timer
    diff = (bk1 / "units" / "pgha-prod-backup-diff.service").read_text()
    assert "--type=diff backup" in diff and "stanza-create" in diff and "Type=oneshot" in diff
    install = (bk1 / "install.sh").read_text()
    assert "systemctl enable --now pgha-prod-backup-full.timer" in install
    assert "systemctl enable --now pgha-prod-backup-diff.timer" in install
    assert f"mkdir -p {root}/logs/pgbackrest-backup {root}/run/pgbackrest-backup {root}/backup/repo" in install
    assert "apt-get install -y --no-install-recommends iproute2 pgbackrest" in install
    # Every host names its pgBackRest peers in /etc/hosts (re-running replaces pgha's block).
    for host in ("bk1", "db1"):
        text = (out / host / "install.sh").read_text()
        assert "10.0.0.31\tbackup" in text and "10.0.0.11\tdcs0 node0 node0-pgbackrest" in text
        assert "sed -i '/^# pgha prod begin$/,/^# pgha prod end$/d' /etc/hosts" in text
    # A node archives to the backup host, and runs the server the backups reach it through.
    db1 = out / "db1"
    node_conf = (db1 / "conf" / "pgbackrest-node0.conf").read_text()
    assert "repo1-host=backup" in node_conf and "cipher-pass" not in node_conf
    assert (db1 / "units" / "pgha-prod-node0-pgbackrest.service").exists()
    assert "pgbackrest" in (db1 / "install.sh").read_text().splitlines()[6]  # its package
    patroni = yaml.safe_load((db1 / "conf" / "patroni-node0.yml").read_text())
    assert "archive-push" in patroni["postgresql"]["parameters"]["archive_command"]
    readme = (out / "README.md").read_text()
    assert "## Backups" in readme and "systemctl start pgha-prod-backup-full.service" in readme
    assert "then the backup repository host, then the nodes" in readme
    assert not (out / "lb1" / "units" / "pgha-prod-backup-full.timer").exists()


def test_without_a_backup_host_nothing_archives_and_the_guide_says_how_to_add_one(tmp_path: Path) -> None:
    out, result = _render(tmp_path, INVENTORY)
    assert result.returncode == 0, result.stderr
    assert not list(out.rglob("pgbackrest*"))
    assert "Add `backup` to one host's `runs`" in (out / "README.md").read_text()
