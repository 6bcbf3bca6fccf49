"""pgBackRest's configuration and Patroni's archive and restore settings, as rendered per backend."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pgha.backends.local import LocalBackend
from pgha.backends.netns import NetnsBackend
from pgha.components.patroni import patroni_config
from pgha.deploy.compose_project import render_compose
from pgha.deploy.inventory import inventory_spec, load_inventory
from pgha.model.spec import Spec, SpecError, build_spec
from pgha.model.topology import topology
from pgha.render import RenderedFile
from pgha.render.backup import RESTORE_METHOD
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

SECRETS = Secrets("super-pw-1", "repl-pw-2", "rest-pw-3", "stats-pw-4", backup_cipher_password="cipher-key-5")
PATRONI = str(Path(sys.executable).parent / "patroni")
RESTORED = {"cluster": "src", "repo": "/var/lib/pgha/src/backup/repo", "target": "time",
            "to": "2026-12-07 17:51:34.631547+00:00"}


def rendered(spec: Spec, root: Path) -> dict[Path, RenderedFile]:
    backend = (NetnsBackend if spec.backend == "netns" else LocalBackend)(spec, Layout(root), SECRETS, RunAs(None))
    return {f.path: f for f in backend.rendered()}


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_the_default_profile_backs_up_where_the_backend_keeps_a_repository() -> None:
    assert build_spec("default").backup.enabled
    assert build_spec("default", overrides={"backend": "netns"}).backup.enabled
    assert not build_spec("default", overrides={"backend": "compose"}).backup.enabled
    assert not build_spec("seed").backup.enabled
    assert not build_spec("default", {"backup": {"enabled": False}}).backup.enabled


def test_backups_are_refused_where_no_repository_is_kept() -> None:
    with pytest.raises(SpecError, match=r"backup\.enabled: the compose backend keeps no backup repository"):
        build_spec("default", {"backup": {"enabled": True}}, {"backend": "compose"})
    with pytest.raises(SpecError, match="archive_mode"):
        build_spec("seed", {"backup": {"enabled": True}})


def test_each_node_archives_through_its_own_pgbackrest_configuration(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"name": "shop", "base_port": 9432})
    files = rendered(spec, tmp_path)
    layout = Layout(tmp_path)
    for i, node in enumerate(spec.node_names):
        conf = _ini(files[layout.pgbackrest_config(node)].text)
        assert conf["global"]["repo1-path"] == str(layout.backup_repo)
        assert conf["global"]["repo1-cipher-type"] == "aes-256-cbc"
        assert conf["global"]["repo1-cipher-pass"] == "cipher-key-5"
        assert conf["shop"]["pg1-path"] == str(layout.pgdata(node))
        assert conf["shop"]["pg1-port"] == str(spec.ports.postgres[i])
        assert files[layout.pgbackrest_config(node)].mode == 0o600
        assert files[layout.pgbackrest_pgpass(node)].mode == 0o600
        assert files[layout.pgbackrest_pgpass(node)].text == f"*:{spec.ports.postgres[i]}:*:postgres:super-pw-1\n"
        pg = yaml.safe_load(files[layout.patroni_config(node)].text)
        params = pg["postgresql"]["parameters"]
        assert params["archive_command"] == (f"/usr/bin/pgbackrest --config={layout.pgbackrest_config(node)} "
                                             f"--stanza=shop archive-push \"%p\"")
        assert pg["postgresql"]["recovery_conf"]["restore_command"].endswith("--stanza=shop archive-get %f \"%p\"")
        dynamic = pg["bootstrap"]["dcs"]["postgresql"]["parameters"]
        assert dynamic["archive_mode"] == "on"
        assert dynamic["archive_timeout"] == "60s"
        assert "method" not in pg["bootstrap"]
        # New replicas from the repository's newest backup, pg_basebackup when there is none yet.
        assert pg["postgresql"]["create_replica_methods"] == ["pgbackrest", "basebackup"]
        assert pg["postgresql"]["pgbackrest"] == {
            "command": f"/usr/bin/pgbackrest --config={layout.pgbackrest_config(node)} --stanza=shop "
                       f"--type=standby restore", "keep_data": True, "no_params": True}


def test_netns_nodes_without_tls_share_one_repository_outside_their_hosts(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"name": "shop", "backend": "netns", "base_port": 9432, "tls": False})
    assert not topology(spec).repository
    files = rendered(spec, tmp_path)
    repos = {_ini(f.text)["global"]["repo1-path"] for f in files.values() if f.path.name.startswith("pgbackrest-")
             and f.path.suffix == ".conf"}
    assert repos == {str(Layout(tmp_path).backup_repo)}


def stanza_of(text: str) -> configparser.SectionProxy:
    return _ini(text.replace("tls-server-auth=", "#"))["shop"]


def _lines(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_netns_with_tls_keeps_the_repository_on_a_host_of_its_own(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"name": "shop", "backend": "netns", "base_port": 9432})
    topo = topology(spec)
    (repo_host,) = topo.repository
    assert repo_host.name == "backup" and repo_host.address == "198.18.0.50" and repo_host in topo.hosts
    assert [(a.name, a.address, a.netns) for a in topo.backup_agents] == [
        (f"{n.name}-pgbackrest", n.address, n.netns) for n in topo.nodes]
    files = rendered(spec, tmp_path)
    hosts = tmp_path / "hosts"

    repo_conf = files[hosts / "backup" / "conf" / "pgbackrest-repository.conf"].text
    glob = _ini(repo_conf.replace("tls-server-auth=", "#"))["global"]
    assert glob["repo1-path"] == str(Layout(tmp_path).backup_repo)
    assert glob["repo1-cipher-pass"] == "cipher-key-5"  # only the repository host holds the key
    assert glob["tls-server-address"] == "198.18.0.50" and glob["tls-server-port"] == "8432"
    assert _lines(repo_conf, "tls-server-auth") == ["node0=shop", "node1=shop", "node2=shop"]
    stanza = _ini(repo_conf.replace("tls-server-auth=", "#"))["shop"]
    assert stanza["backup-standby"] == "y"  # files copied from a replica, not from the primary
    for i, node in enumerate(topo.nodes, start=1):
        node_lay = Layout(hosts / node.name)
        assert stanza[f"pg{i}-host"] == f"{node.name}-pgbackrest" and stanza[f"pg{i}-host-type"] == "tls"
        assert stanza[f"pg{i}-path"] == str(node_lay.pgdata(node.name))
        assert stanza[f"pg{i}-socket-path"] == str(node_lay.socket_dir)
        assert stanza[f"pg{i}-host-cert-file"] == str(Layout(hosts / "backup").tls_cert("backup"))

    for node in topo.nodes:
        lay = Layout(hosts / node.name)
        conf = _ini(files[lay.pgbackrest_config(node.name)].text)
        assert conf["global"]["repo1-host"] == "backup" and conf["global"]["repo1-host-type"] == "tls"
        assert conf["global"]["repo1-host-cert-file"] == str(lay.tls_cert(node.name))
        assert "repo1-cipher-pass" not in conf["global"] and "repo1-path" not in conf["global"]
        agent = f"{node.name}-pgbackrest"
        agent_lay = Layout(hosts / node.name)  # on its node's host, among the node's files
        agent_conf_path = agent_lay.conf / f"pgbackrest-{agent}.conf"
        assert stanza_of(repo_conf)[f"pg{node.index + 1}-host-config"] == str(agent_conf_path)
        assert conf["global"]["repo1-host-config"] == str(hosts / "backup" / "conf" / "pgbackrest-repository.conf")
        agent_conf = files[agent_lay.conf / f"pgbackrest-{agent}.conf"].text
        assert _lines(agent_conf, "tls-server-auth") == ["backup=shop"]
        assert _lines(agent_conf, "tls-server-address") == [node.address]
        assert files[agent_lay.conf / f"pgpass-{agent}"].mode == 0o600
    # The agent connects to its node's PostgreSQL with the superuser's pgpass, never a variable.
    backend = NetnsBackend(spec, Layout(tmp_path), SECRETS, RunAs(None))
    unit = backend.unit("node0-pgbackrest")
    assert unit.exec_start[-1] == "server" and unit.environment["PGPASSFILE"].endswith("pgpass-node0-pgbackrest")
    assert not [k for k in unit.environment if k == "PGPASSWORD"]


def test_pgbackrests_servers_stop_after_the_nodes_and_before_the_dcs() -> None:
    from pgha.model.topology import stop_order

    spec = build_spec("default", overrides={"name": "shop", "backend": "netns", "base_port": 9432})
    steps = [[p.name for p in s.places] for s in stop_order(topology(spec), "node0")]
    servers = steps.index(["node0-pgbackrest", "node1-pgbackrest", "node2-pgbackrest", "backup"])
    assert steps.index(["node0"]) < servers < steps.index(["dcs0"])


def test_without_backups_nothing_archives(tmp_path: Path) -> None:
    spec = build_spec("default", {"backup": {"enabled": False}}, {"base_port": 9432})
    files = rendered(spec, tmp_path)
    assert not [p for p in files if p.name.startswith("pgbackrest")]
    pg = yaml.safe_load(files[Layout(tmp_path).patroni_config("node0")].text)
    assert "archive_command" not in pg["postgresql"]["parameters"]
    assert "create_replica_methods" not in pg["postgresql"]
    assert "archive_mode" not in pg["bootstrap"]["dcs"]["postgresql"]["parameters"]


def test_compose_renders_no_archive_yet_and_bundles_need_a_backup_host(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"backend": "compose", "tls": False})
    assert not [f for f in render_compose(spec, SECRETS) if "pgbackrest" in f.text]
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"cluster": {"name": "fleet", "backup": {"enabled": True}},
                                         "hosts": [{"name": "a", "address": "198.18.9.1",
                                                    "runs": ["node", "dcs", "haproxy"]}]}))
    with pytest.raises(SpecError, match="no host runs backup"):
        inventory_spec(load_inventory(inventory))


def test_a_restored_cluster_bootstraps_from_the_source_repository(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"name": "copy", "base_port": 9432, "restore_from": RESTORED})
    files = rendered(spec, tmp_path)
    layout = Layout(tmp_path)
    source = _ini(files[layout.pgbackrest_source_config("node0")].text)
    assert source["global"]["repo1-path"] == RESTORED["repo"]
    assert source["src"]["pg1-path"] == str(layout.pgdata("node0"))
    pg = yaml.safe_load(files[layout.patroni_config("node0")].text)
    boot = pg["bootstrap"]
    assert boot["method"] == RESTORE_METHOD
    method = boot[RESTORE_METHOD]
    assert method["command"].split() == ["/usr/bin/pgbackrest", f"--config={layout.pgbackrest_source_config('node0')}",
                                         "--stanza=src", "--type=none", "--no-delta", "restore"]
    assert method["no_params"] is True
    recovery = method["recovery_conf"]
    assert recovery["recovery_target_time"] == RESTORED["to"]
    assert recovery["recovery_target_action"] == "promote"
    assert "--stanza=src archive-get" in recovery["restore_command"]
    # After the bootstrap, the new cluster's own repository: never the source's.
    assert "--stanza=copy archive-push" in pg["postgresql"]["parameters"]["archive_command"]
    assert "--stanza=copy archive-get" in pg["postgresql"]["recovery_conf"]["restore_command"]
    # Replicas of a restore in progress are cloned from its new primary, never from a backup of
    # the timeline it branches from.
    assert pg["postgresql"]["create_replica_methods"] == ["basebackup"]


def test_a_cluster_restored_in_place_bootstraps_from_its_own_repository(tmp_path: Path) -> None:
    own = {**RESTORED, "cluster": "copy", "repo": str(Layout(tmp_path).backup_repo), "target": "latest", "to": None}
    spec = build_spec("default", overrides={"name": "copy", "base_port": 9432, "restore_from": own})
    files = rendered(spec, tmp_path)
    layout = Layout(tmp_path)
    source = _ini(files[layout.pgbackrest_source_config("node0")].text)
    assert source["global"]["repo1-path"] == str(layout.backup_repo)
    boot = yaml.safe_load(files[layout.patroni_config("node0")].text)["bootstrap"]
    assert "--stanza=copy" in boot[RESTORE_METHOD]["command"].split()
    assert "recovery_target_time" not in boot[RESTORE_METHOD]["recovery_conf"]


def test_a_restored_clusters_patroni_config_passes_patronis_validator(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"name": "copy", "base_port": 9432, "restore_from": RESTORED})
    for f in rendered(spec, tmp_path).values():
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_text(f.text)
    result = subprocess.run([PATRONI, "--validate-config", "-i", str(Layout(tmp_path).patroni_config("node0"))],
                            capture_output=True, text=True, check=False)
    problems = [ln for ln in (result.stdout + result.stderr).splitlines()
                if ln.strip() and "is not reachable" not in ln]
    assert problems == [], problems


@pytest.mark.parametrize(("restore", "message"), [
    ({**RESTORED, "to": "yesterday"}, "is not a time"),
    ({**RESTORED, "target": "lsn", "to": "0/ZZ"}, "is not an LSN"),
    ({**RESTORED, "target": "latest"}, "none for target latest"),
    ({**RESTORED, "repo": "relative/repo"}, "plain absolute path"),
    ({**RESTORED, "repo": "/var/lib/pgha/../etc"}, "plain absolute path"),
    ({**RESTORED, "cluster": "Bad Name"}, "restore_from.cluster"),
])
def test_a_bad_restore_source_is_refused(restore: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_spec("default", overrides={"name": "copy", "restore_from": restore})


def test_a_restored_cluster_keeps_no_unrestored_dynamic_settings() -> None:
    spec = build_spec("default", overrides={"name": "copy", "restore_from": RESTORED})
    cfg = patroni_config(topology(spec), Layout(Path("/x")), SECRETS, "node0")
    assert "method" not in cfg["bootstrap"]  # no pgBackRest configuration given: nothing to restore with
