"""One bundle per host: the component configs, systemd units and an install script.

A bundle lives under one root directory on its host (a cluster directory, laid out by Layout).
`pgha render hosts` writes bundles for real machines (root /var/lib/pgha/<cluster>); the netns
backend renders the very same bundles with its per-host directories as roots and starts each
unit's ExecStart, as the unit's User, with the unit's Environment. So what operators copy to
machines is what the tests run.
"""

from __future__ import annotations

import importlib.metadata
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from pgha.layout import SERVICE_USER, Layout
from pgha.render import RenderedFile, dcs_files, haproxy_file, patroni_file
from pgha.render.dcs import zookeeper_argv
from pgha.render.patroni import PG_BIN_DIR
from pgha.secrets import Secrets
from pgha.topology import Place, Topology

REAL_PATRONI_BIN = "/opt/pgha/venv/bin/patroni"
# The version pgha itself is tested with.
PATRONI_VERSION = importlib.metadata.version("patroni")


@dataclass(frozen=True)
class HostBundle:
    host: str
    places: tuple[Place, ...]
    root: Path  # where the bundle lives on its host

    @property
    def layout(self) -> Layout:
        return Layout(self.root)


@dataclass(frozen=True)
class Unit:
    name: str  # file name, e.g. "pgha-prod-patroni-node0.service"
    component: str
    description: str
    exec_start: list[str]
    user: str
    environment: dict[str, str] = field(default_factory=dict)
    service_type: str = "simple"
    extra: tuple[str, ...] = ()

    def text(self) -> str:
        env = [f'Environment="{k}={v}"' for k, v in self.environment.items()]
        return "\n".join([
            "[Unit]",
            f"Description={self.description}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            f"Type={self.service_type}",
            f"User={self.user}",
            f"Group={self.user}",
            f"ExecStart={shlex.join(self.exec_start)}",
            *env,
            *self.extra,
            "Restart=on-failure",
            "RestartSec=2",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ])


def parse_unit(text: str) -> tuple[list[str], str, dict[str, str]]:
    """(ExecStart argv, User, Environment) of a unit written by Unit.text."""
    argv: list[str] = []
    user = ""
    env: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = shlex.split(value)
        elif key == "User":
            user = value
        elif key == "Environment":
            k, _, v = shlex.split(value)[0].partition("=")
            env[k] = v
    return argv, user, env


def base_environment(home: Path) -> dict[str, str]:
    # Deliberately no PG* variables: PGPASSWORD would override Patroni's pgpass and break
    # pg_basebackup.
    return {"PATH": f"{PG_BIN_DIR}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONUNBUFFERED": "1", "GOMAXPROCS": "2"}


def unit_for(topo: Topology, bundle: HostBundle, place: Place, patroni_bin: str) -> Unit:
    lay = bundle.layout
    scope = topo.spec.name
    env = base_environment(bundle.root)
    if place.kind == "node":
        return Unit(f"pgha-{scope}-patroni-{place.name}.service", place.name,
                    f"pgha {scope}: Patroni and PostgreSQL 15, member {place.name}",
                    [patroni_bin, str(lay.patroni_config(place.name))], SERVICE_USER, env,
                    # Patroni stops PostgreSQL itself; systemd must not kill the postmaster first.
                    extra=("ExecReload=/bin/kill -HUP $MAINPID", "KillMode=process", "TimeoutStopSec=60"))
    if place.kind == "haproxy":
        return Unit(f"pgha-{scope}-{place.name}.service", place.name, f"pgha {scope}: HAProxy {place.name}",
                    ["/usr/sbin/haproxy", "-Ws", "-f", str(lay.haproxy_config)], SERVICE_USER, env,
                    service_type="notify", extra=("ExecReload=/bin/kill -USR2 $MAINPID", "KillMode=mixed"))
    config = str(lay.dcs_config(place.index))
    if topo.spec.dcs.kind == "etcd":
        argv = ["/usr/bin/etcd", "--config-file", config]
    else:
        argv = zookeeper_argv(config, str(lay.conf / "zookeeper-log4j.properties"))
    return Unit(f"pgha-{scope}-{topo.spec.dcs.kind}-{place.name}.service", place.name,
                f"pgha {scope}: {topo.spec.dcs.kind} member {place.name}", argv, SERVICE_USER, env)


def units_dir(root: Path) -> Path:
    return root / "units"


def render_bundle(topo: Topology, bundle: HostBundle, secrets: Secrets, patroni_bin: str) -> list[RenderedFile]:
    lay = bundle.layout
    files: list[RenderedFile] = []
    for place in bundle.places:
        if place.kind == "node":
            new = [patroni_file(topo, lay, secrets, place.name)]
        elif place.kind == "haproxy":
            new = [haproxy_file(topo, lay, secrets, place.index)]
        else:
            new = dcs_files(topo, lay, place.index)
        unit = unit_for(topo, bundle, place, patroni_bin)
        new.append(RenderedFile(units_dir(bundle.root) / unit.name, unit.text(), 0o644))
        files += [f for f in new if f not in files]
    units = [unit_for(topo, bundle, p, patroni_bin) for p in bundle.places]
    files.append(RenderedFile(bundle.root / "install.sh", install_script(topo, bundle, units), 0o700))
    return files


def install_script(topo: Topology, bundle: HostBundle, units: list[Unit]) -> str:
    """Debian/Ubuntu: packages, the service account, the venv, the files, the units."""
    kinds = {p.kind for p in bundle.places}
    packages = ["iproute2"]
    if "node" in kinds:
        packages += ["postgresql-15", "postgresql-client-15", "python3-venv"]
    if "haproxy" in kinds:
        packages.append("haproxy")
    if "dcs" in kinds:
        packages += ["etcd-server"] if topo.spec.dcs.kind == "etcd" else ["zookeeper", "default-jre-headless"]
    extra = "etcd3" if topo.spec.dcs.kind == "etcd" else "zookeeper"
    root = bundle.root
    lines = [
        "#!/bin/sh",
        f"# pgha bundle for host {bundle.host} of cluster {topo.spec.name}: "
        f"{', '.join(p.name for p in bundle.places)}.",
        "# Run as root from this directory on the host itself.",
        "set -eu",
        'here="$(cd "$(dirname "$0")" && pwd)"',
        "export DEBIAN_FRONTEND=noninteractive",
        f"apt-get install -y --no-install-recommends {' '.join(packages)}",
        f"id -u {SERVICE_USER} >/dev/null 2>&1 || useradd --system --home-dir {root} --shell /usr/sbin/nologin "
        f"{SERVICE_USER}",
    ]
    if "node" in kinds:
        lines += [
            "# The Debian package's own cluster is not used: Patroni runs initdb itself.",
            "systemctl disable --now postgresql 2>/dev/null || true",
            "test -x /opt/pgha/venv/bin/patroni || {",
            "  python3 -m venv /opt/pgha/venv",
            f"  /opt/pgha/venv/bin/pip install 'patroni[{extra}]=={PATRONI_VERSION}' 'psycopg[binary]>=3.1'",
            "}",
        ]
    if "dcs" in kinds and topo.spec.dcs.kind == "etcd":
        lines.append("systemctl disable --now etcd 2>/dev/null || true")
    if "haproxy" in kinds:
        lines.append("systemctl disable --now haproxy 2>/dev/null || true")
    lines += [
        f"mkdir -p {root}",
        f'cp -a "$here"/. {root}/',
        f"rm -f {root}/install.sh",
        f"for d in conf data logs run; do mkdir -p {root}/$d; done",
        f"chown -R {SERVICE_USER}:{SERVICE_USER} {root}",
        f"chmod 700 {root}/data",
        f"cp {units_dir(root)}/*.service /etc/systemd/system/",
        "systemctl daemon-reload",
        *(f"systemctl enable --now {u.name}" for u in units),
        "",
    ]
    return "\n".join(lines)
