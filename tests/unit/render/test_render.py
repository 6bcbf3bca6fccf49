from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pgha.backends.local import LocalBackend
from pgha.components.patroni import patroni_config
from pgha.model.spec import Spec, build_spec
from pgha.model.topology import topology
from pgha.render import RenderedFile
from pgha.render.haproxy import render_haproxy
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

SECRETS = Secrets("super-pw-1", "repl-pw-2", "rest-pw-3", "stats-pw-4")
PATRONI = str(Path(sys.executable).parent / "patroni")


def rendered(spec: Spec, layout: Layout) -> list[RenderedFile]:
    """What the local backend writes before it starts anything."""
    return LocalBackend(spec, layout, SECRETS, RunAs(None)).rendered()


def _write(spec: Spec, root: Path) -> Layout:
    layout = Layout(root)
    for f in rendered(spec, layout):
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_text(f.text)
    return layout


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_patroni_config_passes_patronis_own_validator(profile: str, tmp_path: Path) -> None:
    # Nothing runs in a unit test, so the validator cannot reach the DCS; every other rule must pass.
    spec = build_spec(profile, overrides={"base_port": 9432})
    layout = _write(spec, tmp_path)
    for node in spec.node_names:
        result = subprocess.run([PATRONI, "--validate-config", "-i", str(layout.patroni_config(node))],
                                capture_output=True, text=True, check=False)
        problems = [ln for ln in (result.stdout + result.stderr).splitlines()
                    if ln.strip() and "is not reachable" not in ln]
        assert problems == [], problems


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_haproxy_config_passes_haproxy_check(profile: str, tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed: run `make setup`")
    layout = _write(build_spec(profile), tmp_path)
    result = subprocess.run([haproxy, "-c", "-f", str(layout.haproxy_config)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_files_with_passwords_are_owner_only_and_others_hold_none(tmp_path: Path) -> None:
    for profile in ("default", "seed"):
        spec = build_spec(profile)
        for f in rendered(spec, Layout(tmp_path)):
            holds_secret = any(s in f.text for s in (SECRETS.superuser_password, SECRETS.replication_password,
                                                      SECRETS.rest_password, SECRETS.stats_password))
            if holds_secret:
                assert f.mode & 0o077 == 0, f.path
            assert f.mode in (0o600, 0o644, 0o700)


def test_pg_hba_is_scram_only_for_the_clusters_own_addresses(tmp_path: Path) -> None:
    spec = build_spec()
    conf = patroni_config(topology(spec), Layout(tmp_path), SECRETS, "node0")
    hba = conf["postgresql"]["pg_hba"]
    assert all(line.split()[-1] == "scram-sha-256" for line in hba)
    assert not any("trust" in line or "0.0.0.0" in line or "md5" in line for line in hba)
    host_lines = [line for line in hba if line.startswith("host")]
    assert {line.split()[3] for line in host_lines} == {"127.0.0.1/32", "127.0.1.1/32"}
    assert conf["restapi"]["authentication"]["password"] == SECRETS.rest_password
    assert conf["postgresql"]["parameters"]["password_encryption"] == "scram-sha-256"


def test_dynamic_settings_carry_the_profile(tmp_path: Path) -> None:
    spec = build_spec("seed")
    dcs = patroni_config(topology(spec), Layout(tmp_path), SECRETS, "postgresql1")["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (30, 10, 10)
    assert dcs["synchronous_mode"] is True and dcs["failsafe_mode"] is False
    assert dcs["postgresql"]["use_pg_rewind"] is True
    conf = patroni_config(topology(spec), Layout(tmp_path), SECRETS, "postgresql1")
    assert conf["zookeeper"]["hosts"] == ["127.0.1.1:2181"]
    assert conf["restapi"]["listen"] == "127.0.1.1:8009"
    assert "archive_command" in conf["postgresql"]["parameters"]


def test_seed_haproxy_keeps_the_labs_check_and_default_uses_role_endpoints(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    seed = render_haproxy(topology(build_spec("seed")), layout, SECRETS)
    assert "option httpchk\n" in seed and "GET /primary" not in seed
    assert "default-server inter 3000ms fall 3 rise 2 on-marked-down shutdown-sessions" in seed
    assert "listen replicas" not in seed
    default = render_haproxy(topology(build_spec("default")), layout, SECRETS)
    assert "option httpchk GET /primary" in default and "option httpchk GET /replica" in default
    assert "inter 1000ms fastinter 500ms downinter 500ms fall 2 rise 1" in default
    # The stats page is on loopback and asks for a password.
    assert "bind 127.0.0.1:5434" in default and f"stats auth admin:{SECRETS.stats_password}" in default
    # Beside it, HAProxy's Prometheus exporter behind the same password; the lab's has none.
    assert f"user admin insecure-password {SECRETS.stats_password}" in default
    assert ("http-request auth realm metrics if metrics !{ http_auth(stats_users) }\n"
            "    http-request use-service prometheus-exporter if metrics") in default
    assert "prometheus-exporter" not in seed and "userlist" not in seed


def test_dcs_configs_form_ensembles(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    etcd = build_spec()
    files = {f.path.name: f.text for f in rendered(etcd, layout)}
    conf0 = yaml.safe_load(files["dcs-0.conf"])
    assert conf0["initial-cluster"].count("=http://127.0.1.1:") == 3
    assert conf0["enable-grpc-gateway"] is True
    zk = build_spec("default", overrides={"dcs": {"kind": "zookeeper", "members": 3}})
    zfiles = {str(f.path.relative_to(tmp_path)): f.text for f in rendered(zk, layout)}
    assert sum(line.startswith("server.") for line in zfiles["conf/dcs-0.conf"].splitlines()) == 3
    assert zfiles["data/dcs-2/myid"] == "3\n"
    # ZooKeeper's ACLs need client certificates: TLS only, no plaintext client port.
    assert "secureClientPortAddress=127.0.1.1" in zfiles["conf/dcs-1.conf"]
    assert "\nclientPort=" not in zfiles["conf/dcs-1.conf"] and "sslQuorum=true" in zfiles["conf/dcs-1.conf"]
    assert "ssl.clientAuth=need" in zfiles["conf/dcs-1.conf"]
    patroni = yaml.safe_load(zfiles["conf/patroni-node0.yml"])["zookeeper"]
    assert patroni["use_ssl"] is True and patroni["set_acls"] == {"CN=node0": ["ALL"], "CN=node1": ["ALL"],
                                                                   "CN=node2": ["ALL"]}
    open_zk = build_spec("default", overrides={"dcs": {"kind": "zookeeper", "members": 3, "authentication": False}})
    ofiles = {str(f.path.relative_to(tmp_path / "open")): f.text for f in rendered(open_zk, Layout(tmp_path / "open"))}
    assert "\nclientPortAddress=127.0.1.1" in ofiles["conf/dcs-1.conf"] and "ssl." not in ofiles["conf/dcs-1.conf"]
