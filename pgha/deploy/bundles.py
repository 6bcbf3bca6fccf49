"""`pgha render hosts`: write the bundles for real machines to a directory (side effects only;
what goes into them is rendered by pgha.deploy.host_bundle)."""

from __future__ import annotations

from pathlib import Path

from pgha.components.backup import REPOSITORY_HOST
from pgha.components.base import CertificateReload, Component
from pgha.components.dcs import dcs_component
from pgha.components.kinds import components
from pgha.deploy.backup_timers import timer_name
from pgha.deploy.compose_files import write_files
from pgha.deploy.host_bundle import REAL_MACHINE, render_bundle
from pgha.deploy.inventory import host_bundles, inventory_spec, inventory_topology, load_inventory
from pgha.errors import PghaError
from pgha.model.names import PLAIN_ABSOLUTE_PATH
from pgha.model.spec import Spec
from pgha.model.topology import Topology
from pgha.render import RenderedFile
from pgha.security import pki
from pgha.security.dcs_auth import SECURE_SCRIPT
from pgha.state import secrets as secrets_store
from pgha.state.layout import SERVICE_USER, Layout


def write_host_bundles(inventory_path: Path, out_dir: Path, root: Path | None,
                       renew_certs: bool = False) -> dict[str, list[Path]]:
    inv = load_inventory(inventory_path)
    spec = inventory_spec(inv)
    topo = inventory_topology(spec, inv)
    root = root or Path("/var/lib/pgha") / spec.name
    # The root lands in systemd units and in install.sh, a shell script run as root.
    if not root.is_absolute() or not PLAIN_ABSOLUTE_PATH.fullmatch(str(root)) or ".." in root.parts:
        raise PghaError(f"root: {str(root)!r} must be an absolute path of letters, digits, '.', '_', '-' and '/'")
    if out_dir.exists() and not out_dir.is_dir():
        raise PghaError(f"out: {out_dir} exists and is not a directory")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "secrets.yml").exists():
        raise PghaError(f"out: {out_dir} is not empty and holds no earlier bundle; pick an empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    # The same passwords on every host, kept beside the bundles so a re-render keeps them.
    secrets = secrets_store.load_or_create(out_dir / "secrets.yml")
    # The CA and every certificate stay beside the bundles (pki/, the CA's key with them, never
    # in a host's directory), so a re-render keeps them and `pgha render hosts` can renew them.
    certificates = None
    if spec.tls:
        store = out_dir / "pki"
        certificates = pki.renew(store, topo) if renew_certs and (store / "ca.crt").exists() \
            else pki.ensure(store, topo)
    written: dict[str, list[Path]] = {}
    for bundle in host_bundles(topo, inv, root):
        relative = [RenderedFile(f.path.relative_to(root), f.text, f.mode)
                    for f in render_bundle(topo, bundle, secrets, REAL_MACHINE, certificates,
                                           backup_repo=Layout(root).backup_repo if spec.backup.enabled else None)]
        written[bundle.host] = write_files(out_dir / bundle.host, relative)
    (out_dir / "README.md").write_text(operators_readme(topo, inv_hosts(topo), root))
    return written


def inv_hosts(topo: Topology) -> list[tuple[str, str]]:
    return [(p.name, p.address) for p in topo.places]


def operators_readme(topo: Topology, places: list[tuple[str, str]], root: Path) -> str:
    spec = topo.spec
    haproxies = list(topo.haproxies)
    uri_hosts = ",".join(f"{p.address}:{topo.haproxy_ports[p.index].rw}" for p in haproxies)
    lines = [
        f"# pgha cluster `{spec.name}` ({spec.profile} profile): bundles for real machines",
        "",
        "One directory per host. On each host, as root, from a copy of its directory:",
        "",
        "    sh install.sh",
        "",
        f"It installs the Debian/Ubuntu packages the host needs, creates the `pgha` system user, copies the "
        f"files to `{root}`, installs the systemd units and starts them. Start the DCS hosts first, then the "
        f"{'backup repository host, then the ' if topo.repository else ''}"
        f"nodes, then HAProxy. The netns backend of pgha (`pgha up --backend netns`) runs these very bundles, "
        f"one host per component, so the drills in pgha's tests exercise what you install.",
        "",
        "## What runs where",
        "",
        "| component | address |",
        "|---|---|",
        *(f"| {name} | {address} |" for name, address in places),
        "",
        "## Ports to open between the hosts",
        "",
        "- PostgreSQL 5432 and the Patroni REST API 8008 on every node (from the other nodes and HAProxy).",
        f"- {spec.dcs.kind}: {dcs_component(spec).open_ports} on every DCS host.",
        "- HAProxy 5432 (read-write)" + (", 5433 (read-only)" if spec.haproxy.readonly_port else "")
        + " for clients, 7000 (stats, password in secrets.yml) for operators.",
        *(["- PgBouncer 6432 on every HAProxy host: for clients, and for the nodes, whose Patroni hooks pause it "
           "when the primary stops and resume it once another node takes writes."] if topo.poolers else []),
        *(["- pgBackRest's TLS server 8432 on the backup host (from the nodes) and on every node (from the "
           "backup host)."] if topo.repository else []),
        "",
        *_backups_section(topo, root),
        "## Clients",
        "",
        "Give clients every HAProxy host, so losing one costs one reconnect:",
        "",
        f"    postgresql://postgres@{uri_hosts}/postgres?target_session_attrs=read-write",
        "",
        *([f"or, for transactions that should wait out a planned hand-over instead of failing, the pooler "
           f"beside any HAProxy, as the application role: `postgresql://app@{topo.poolers[0].address}:6432/app`. "
           "The node that initialises the cluster creates that role (LOGIN only, its own database `app`) "
           "through Patroni's post_bootstrap; its password is in secrets.yml.",
           ""] if topo.poolers else []),
        "## Secrets",
        "",
        "The Patroni, HAProxy and PgBouncer configs and the nodes' hook configs hold the cluster's passwords "
        "(files of mode 0600); `secrets.yml` "
        "beside this README keeps them for a re-render. Treat this directory as a secret.",
        "",
        *_security_section(topo, root),
    ]
    return "\n".join(lines)


def _backups_section(topo: Topology, root: Path) -> list[str]:
    if not topo.repository:
        return ["## Backups", "",
                "None: no host runs `backup`. Add `backup` to one host's `runs` in the inventory and render again "
                "for WAL archiving and scheduled backups with pgBackRest.", ""]
    spec, host = topo.spec, topo.repository[0]
    b = spec.backup
    conf = REPOSITORY_HOST.config_path(Layout(root), host)
    return [
        "## Backups",
        "",
        f"The backup host ({host.address}) keeps the cluster's pgBackRest repository in `{root}/backup/repo`, "
        "encrypted with the key in secrets.yml (`backup_cipher_password`; only that host's configuration holds "
        "it). The nodes archive their WAL to it through its TLS server; it takes the backups through the "
        f"pgBackRest server beside each node, from a standby when one answers. install.sh puts the cluster's "
        "names in /etc/hosts (between `# pgha` markers), because pgBackRest checks its peers' certificates by "
        "name.",
        "",
        f"Timers on the backup host: a full backup `{b.full_schedule}` (`{timer_name(spec.name, 'full')}`), a "
        f"differential one `{b.diff_schedule}` (`{timer_name(spec.name, 'diff')}`); `backup.full_schedule` and "
        f"`backup.diff_schedule` in the inventory's cluster settings change them. Once the nodes run, take the "
        "first backup (it creates the stanza) and see the repository:",
        "",
        f"    systemctl start pgha-{spec.name}-backup-full.service",
        f"    sudo -u {SERVICE_USER} pgbackrest --config={conf} --stanza={spec.name} info",
        "",
    ]


def _security_section(topo: Topology, root: Path) -> list[str]:
    spec = topo.spec
    lines: list[str] = []
    if spec.dcs.authentication and dcs_component(spec).secured_by_pgha:
        first = topo.dcs[0]
        lines += [
            "## Turning the DCS's authentication on",
            "",
            f"Once every DCS host runs, on the host of {first.name} ({first.address}), as root, once:",
            "",
            f"    sh {root}/conf/{SECURE_SCRIPT}",
            "",
            "Afterwards only Patroni, with its password, may write the cluster's keys. Running it again is "
            "harmless.",
            "",
        ]
    if spec.tls:
        lines += [
            "## Certificates",
            "",
            "Every hop is TLS, with a CA of the cluster's own: `pki/` beside this README holds the CA (with its "
            "key) and every certificate; a host's directory holds only the CA's certificate and its own "
            "certificate and key (`conf/tls/`). Keep `pki/` off the hosts. Copy each host's directory to it "
            "over a channel you trust, run `install.sh`, and delete the copy. Certificates last a year: "
            "`pgha render hosts --renew-certs` into this directory issues new ones; copy `conf/tls/` to "
            "each host, then have each program take its new certificate:",
            "",
            *(f"- {_program(c, spec)}: {_ON_A_HOST[c.certificate_reload]}" for c in components(spec)),
            "",
        ]
    return lines


# How a program on a systemd host takes up a renewed certificate, by what its kind declares
# (pgha.components.base.CertificateReload; the process backends do the same without systemd).
_ON_A_HOST = {
    CertificateReload.PER_HANDSHAKE: "nothing to do, it reads its files at every TLS handshake",
    CertificateReload.SIGHUP: "`systemctl reload` its unit",
    CertificateReload.RUNTIME_API: "`systemctl reload` its unit (a reload re-reads its certificate)",
    CertificateReload.RESTART: "`systemctl restart` its unit, one host at a time (it reads its certificate "
                               "only at start), a DCS member back in the quorum before the next",
}


def _program(component: Component, spec: Spec) -> str:
    return {"node": "Patroni (and its PostgreSQL)", "haproxy": "HAProxy", "pooler": "PgBouncer",
            "dcs": spec.dcs.kind, "repository": "pgBackRest's server on the backup host",
            "backup-agent": "pgBackRest's server beside each node", "guard": "the fencing guard"}[component.kind]
