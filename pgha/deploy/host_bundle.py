"""One bundle per host: the component configs, systemd units and an install script.

A bundle lives under one root directory on its host (a cluster directory, laid out by Layout).
`pgha render hosts` writes bundles for real machines (root /var/lib/pgha/<cluster>); the netns
backend renders the very same bundles with its per-host directories as roots and starts each
unit's ExecStart, as the unit's User, with the unit's Environment. So what operators copy to
machines is what the tests run. What each component needs is its kind's (pgha.components).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pgha.components.base import NodeFence, Programs, Site, Unit
from pgha.components.dcs import dcs_component
from pgha.components.kinds import HAPROXY, PATRONI, POOLER, component_for, components
from pgha.components.render import render_component
from pgha.deploy.backup_timers import backup_timer_units
from pgha.model.topology import Place, Topology
from pgha.render import RenderedFile
from pgha.render.netns_hosts import hosts_file
from pgha.security.pki import Pki
from pgha.state.layout import SERVICE_USER, Layout
from pgha.state.secrets import Secrets

REAL_PATRONI_BIN = "/opt/pgha/venv/bin/patroni"
# A real machine's programs: Debian's paths and the venv install.sh makes.
REAL_MACHINE = Programs(REAL_PATRONI_BIN)


@dataclass(frozen=True)
class HostBundle:
    host: str
    places: tuple[Place, ...]
    root: Path  # where the bundle lives on its host

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    def site(self, topo: Topology, place: Place, secrets: Secrets, programs: Programs,
             pki: Pki | None = None, haproxy_sockets: tuple[str, ...] = (), backup_repo: Path | None = None,
             peers: tuple[tuple[str, Layout], ...] = (), fences: tuple[NodeFence, ...] = ()) -> Site:
        return Site(topo, place, self.layout, secrets, programs, pki, haproxy_sockets, backup_repo, peers, fences)


def units_dir(root: Path) -> Path:
    return root / "units"


def render_bundle(topo: Topology, bundle: HostBundle, secrets: Secrets, programs: Programs,
                  pki: Pki | None = None, haproxy_sockets: tuple[str, ...] = (),
                  backup_repo: Path | None = None, peers: tuple[tuple[str, Layout], ...] = (),
                  fences: tuple[NodeFence, ...] = ()) -> list[RenderedFile]:
    """A host's files; with the cluster's certificates (pki) it gets its own and the CA's
    certificate, never the CA's key. `haproxy_sockets`: those its processes can open (netns:
    every host is on this machine); `backup_repo`: pgBackRest's repository as its nodes see it;
    `peers`: other places' directories as its processes name them (none: this bundle's root);
    `fences`: how a fencing guard here fences each node."""
    files: list[RenderedFile] = []
    units: list[Unit] = []
    for place in bundle.places:
        site = bundle.site(topo, place, secrets, programs, pki, haproxy_sockets, backup_repo, peers, fences)
        new, unit = render_component(site)
        new.append(RenderedFile(units_dir(bundle.root) / unit.name, unit.text(), 0o644))
        files += [f for f in new if f not in files]
        units.append(unit)
    timers: list[str] = []
    if any(p.kind == "repository" for p in bundle.places):
        for name, text in backup_timer_units(topo, bundle.layout, SERVICE_USER):
            files.append(RenderedFile(units_dir(bundle.root) / name, text, 0o644))
            timers += [name] if name.endswith(".timer") else []
    files.append(RenderedFile(bundle.root / "install.sh", install_script(topo, bundle, units, tuple(timers)), 0o700))
    return files


def install_script(topo: Topology, bundle: HostBundle, units: list[Unit], timers: tuple[str, ...] = ()) -> str:
    """Debian/Ubuntu: packages, the service account, the venv, the files, the units (and the
    repository host's backup timers); with a repository host, the cluster's names in /etc/hosts."""
    present = [component_for(topo.spec, p) for p in bundle.places]
    dcs = dcs_component(topo.spec)
    packages = ["iproute2", *(pkg for c in components(topo.spec) if c in present for pkg in c.packages)]
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
    # The node's setup first (its venv), then the distribution's own services are switched off.
    for c in (PATRONI, dcs, HAPROXY, POOLER):
        if c in present:
            lines += c.install_lines(dcs.patroni_key)
    lines += [
        f"mkdir -p {root}",
        f'cp -a "$here"/. {root}/',
        f"rm -f {root}/install.sh",
        f"for d in conf data logs run; do mkdir -p {root}/$d; done",
        *_backup_dirs(topo, bundle),
        f"chown -R {SERVICE_USER}:{SERVICE_USER} {root}",
        f"chmod 700 {root}/data",
        *([f"chmod 700 {bundle.layout.backup}"] if any(p.kind == "repository" for p in bundle.places) else []),
        f"cp {units_dir(root)}/*.service{f' {units_dir(root)}/*.timer' if timers else ''} /etc/systemd/system/",
        "systemctl daemon-reload",
        *(f"systemctl enable --now {u.name}" for u in units),
        *(f"systemctl enable --now {t}" for t in timers),
        "",
    ]
    if topo.repository:
        lines[-1:-1] = hosts_lines(topo)
    return "\n".join(lines)


def _backup_dirs(topo: Topology, bundle: HostBundle) -> list[str]:
    """pgBackRest's log and lock directories for each of its users on the host, and the repository."""
    if not topo.repository:
        return []
    lay = bundle.layout
    users = [p.name for p in bundle.places if p.kind in ("node", "repository", "backup-agent")]
    dirs = [d for name in users for d in (lay.logs / f"pgbackrest-{name}", lay.pgbackrest_run(name))]
    if any(p.kind == "repository" for p in bundle.places):
        dirs.append(lay.backup_repo)
    return [f"mkdir -p {' '.join(str(d) for d in dirs)}"] if dirs else []


def hosts_lines(topo: Topology) -> list[str]:
    """install.sh lines that put the cluster's names in /etc/hosts between pgha's markers (run
    again, they replace them): pgBackRest verifies its TLS peers by DNS name, never by address."""
    begin, end = f"# pgha {topo.spec.name} begin", f"# pgha {topo.spec.name} end"
    entries = hosts_file(topo).splitlines()[2:]  # not the marker, not localhost
    return [f"sed -i '/^{begin}$/,/^{end}$/d' /etc/hosts",
            "cat >> /etc/hosts <<'PGHA_HOSTS'", begin, *entries, end, "PGHA_HOSTS"]
