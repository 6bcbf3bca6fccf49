"""Spec -> a self-contained compose deployment (Docker Compose or podman-compose).

The files, as data: a Containerfile (PostgreSQL 15 + Patroni + the DCS + HAProxy in one image,
each service picking its command), `compose.yaml`, one Patroni config per node, the DCS
configs, `haproxy.cfg`, a `.env` holding the passwords and ignore files that keep `.env` out of
the build context. The Patroni, DCS and HAProxy files come from the same renderers as the local
backend's, with the addresses a container network needs: service names and each program's
standard port.

What the lab did wrong is fixed here: no password in the image or in compose.yaml (Patroni and
HAProxy read them from the environment, filled from `.env` at run time), HAProxy re-resolves
service names (a recreated container gets a new address), the Patroni REST API is only
`expose`d, and whatever is published is bound to the host's loopback address.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path, PurePosixPath
from typing import Any

from pgha.components.base import Programs, Site
from pgha.components.dcs import ZooKeeper, dcs_component
from pgha.components.haproxy import ENV_STATS
from pgha.components.kinds import component_for
from pgha.components.patroni import (
    ENV_DCS,
    ENV_REPLICATION,
    ENV_REST,
    ENV_SUPERUSER,
    HOOK_SOURCE,
    PATRONI_SCRIPT,
    PATRONI_SOURCE,
    patroni_config,
)
from pgha.components.pooler import ENV_APP, ENV_POOLER_ADMIN
from pgha.model.spec import Spec
from pgha.model.topology import Topology, pooler_name, topology
from pgha.model.topology import dcs_member_name as member_name
from pgha.render import RenderedFile, to_yaml
from pgha.render.haproxy import ServerStyle, render_haproxy
from pgha.render.node_hook import HOOK_SCRIPT, hook_commands, post_bootstrap_command, render_hook_config
from pgha.render.pooler import render_pooler
from pgha.security.dcs_auth import SECURE_SCRIPT, FromEnvironment, authenticates, secure_script
from pgha.security.pki import Pki
from pgha.state.layout import Layout
from pgha.state.secrets import STATS_USER, Secrets

# The image pins what the project's venv runs (pyproject pins Patroni to the same version).
PATRONI_REQUIREMENT = "patroni[etcd3,zookeeper]==4.1.5"
PSYCOPG_REQUIREMENT = "psycopg[binary]==3.3.9"
# What `FROM` builds on when no BASE_IMAGE is given: the Debian release the local base is made of.
DEFAULT_BASE_IMAGE = "docker.io/library/debian:bookworm-slim"

# Every container is a host of its own at a fixed address on the compose network (the
# topology's, from spec.network), with each program on its standard port (pgha.model.topology).
CONTAINER_LAYOUT = Layout(Path("/var/lib/pgha"))
CONFIG_DIR = PurePosixPath("/etc/pgha")  # where the image holds the rendered configs
HAPROXY_SERVICE = "haproxy"
POOLER_SERVICE = "pooler"
NETWORK = "cluster"
ENV_FILE = ".env"
CONTAINERFILE = "Containerfile"

# Variables of `.env`, read by compose for `${...}` interpolation (the passwords' names are the
# components' that read them: ENV_SUPERUSER, ENV_REPLICATION, ENV_REST, ENV_STATS).
ENV_BASE_IMAGE = "PGHA_BASE_IMAGE"
ENV_DCS_ROOT = "PGHA_DCS_ROOT_PASSWORD"
# Patroni's venv in the image (the Containerfile's); the node hook runs with it.
CONTAINER_PYTHON = "/opt/patroni/bin/python"
# The one-shot job that turns etcd's authentication on (dcs_auth.secure_script), at a fixed
# address of its own past every component's.
AUTH_JOB = "etcd-auth"
AUTH_JOB_HOST = 60
# The image's programs are on its PATH; HAProxy runs in the foreground as the container's init.
IN_CONTAINER = Programs("patroni", "haproxy", "etcd", "-db", "pgbouncer")

# The postgres user's id in the image, fixed (as the official postgres image has it) so that the
# certificates pgha mounts into the containers can be owned by it on the host.
CONTAINER_UID = 999
TLS_DIR = "tls"  # beside compose.yaml: one directory per service, mounted read-only

# The lab's service names, kept by the seed profile only.
_LAB_NODE_SERVICES = ("pg-master", "pg-slave")
_NO_SECRETS = Secrets("", "", "", "")


# --- names ---------------------------------------------------------------------------------------


def project_name(spec: Spec) -> str:
    return f"pgha-{spec.name}"


def image_name(spec: Spec) -> str:
    """"localhost/": a local image that no engine tries to pull from a registry. The tag is a
    digest of what the image holds (Containerfile and configs), so pgha re-rendering a changed
    spec gets a new image, while editing the files by hand and running `up` does not (see
    docs/containers.md)."""
    digest = hashlib.sha256()
    for f in _image_files(topology(compose_spec(spec))):
        digest.update(f"{f.path}\0{f.text}\0".encode())
    return f"localhost/pgha-{spec.name}:{digest.hexdigest()[:12]}"


def node_service(spec: Spec, i: int) -> str:
    if spec.profile == "seed":
        return _LAB_NODE_SERVICES[i] if i < len(_LAB_NODE_SERVICES) else f"pg-slave{i}"
    return spec.node_names[i]


def dcs_service(spec: Spec, i: int) -> str:
    if spec.profile == "seed":
        return "zoo" if spec.dcs.members == 1 else f"zoo{i}"
    return member_name(i)


def container_name(spec: Spec, service: str) -> str:
    """Unique per cluster, so clusters with different names run side by side."""
    return f"{project_name(spec)}-{service}"


def services(spec: Spec) -> list[tuple[str, str, str]]:
    """(service, component, kind) for every container; component is pgha's name for it
    (the Patroni member name, "dcs<i>" or "haproxy")."""
    out = [(dcs_service(spec, i), member_name(i), "dcs") for i in range(spec.dcs.members)]
    out += [(node_service(spec, i), node, "node") for i, node in enumerate(spec.node_names)]
    out.append((HAPROXY_SERVICE, "haproxy", "haproxy"))
    if spec.pooler.enabled:
        out.append((POOLER_SERVICE, pooler_name(0), "pooler"))
    return out


# --- configs -------------------------------------------------------------------------------------


def compose_spec(spec: Spec) -> Spec:
    """The spec as a compose deployment (the topology then gives every container an address)."""
    return spec.model_copy(update={"backend": "compose"})


def container_patroni(topo: Topology, node: str) -> dict[str, Any]:
    """The Patroni config the other backends get, with the container's paths and stripped of
    every password (Patroni takes them from PATRONI_* environment variables)."""
    cfg = patroni_config(topo, CONTAINER_LAYOUT, _NO_SECRETS, node, topo.spec.tls)
    cfg["restapi"].pop("authentication", None)
    cfg[dcs_component(topo.spec).patroni_key].pop("password", None)
    cfg.pop("ctl", None)
    pg = cfg["postgresql"]
    # Users and passwords come from the environment; what stays is how to connect (TLS).
    for who in pg["authentication"].values():
        who.pop("username", None)
        who.pop("password", None)
    pg["authentication"] = {k: v for k, v in pg["authentication"].items() if v}
    if not pg["authentication"]:
        pg.pop("authentication")
    params = pg["parameters"]
    # PostgreSQL logs to stderr, which Patroni passes on: both end up in the container's log.
    for key in ("log_directory", "log_filename", "log_file_mode", "log_rotation_age", "log_rotation_size"):
        params.pop(key, None)
    params["logging_collector"] = "off"
    if topo.poolers:
        # A graceful stop of the primary pauses the poolers and the new primary resumes them, as on
        # every backend; the hook and its config are in the image, the passwords in the environment.
        script, config = str(CONFIG_DIR / HOOK_SCRIPT), str(CONFIG_DIR / _hook_config_name(node))
        cfg["postgresql"].update(hook_commands(CONTAINER_PYTHON, script, config))
        cfg["bootstrap"]["post_bootstrap"] = post_bootstrap_command(CONTAINER_PYTHON, script, config)
    if "archive_command" in params:
        # The lab's archive lived in the container's /tmp, never restored from; so does this one.
        archive = "/tmp/wal-archive"
        params["archive_command"] = f"mkdir -p {archive} && test ! -f {archive}/%f && cp %p {archive}/%f"
    return cfg


def _hook_config_name(node: str) -> str:
    return f"hook-{node}.json"


def container_hook_config(topo: Topology, node: str) -> str:
    """The node hook's config for a container: its paths, the CA it trusts, no password. The
    detached watcher a stopping primary starts dies with its container; the new primary's
    on_role_change resumes the poolers (`pgha resume` does, should no node take over)."""
    return render_hook_config(topo, CONTAINER_LAYOUT, _NO_SECRETS, node, tls=topo.spec.tls, haproxy_sockets=(),
                              passwords_from=(ENV_APP, ENV_POOLER_ADMIN))


def container_haproxy(topo: Topology) -> str:
    spec = topo.spec
    # Servers by service name, re-resolved through the engine's DNS: a recreated container is
    # found again even if it came back with another address. init-addr none: HAProxy starts
    # before every name resolves.
    style = ServerStyle(host=lambda place: node_service(spec, place.index),
                        options="resolvers dns resolve-prefer ipv4 init-addr last,libc,none")
    resolvers = [
        "resolvers dns",
        "    parse-resolv-conf",
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        "    hold valid 5s",
        "    hold other 1s",
        "    hold refused 1s",
        "    hold nx 1s",
        "    hold timeout 1s",
        "",
    ]
    # HAProxy expands environment variables inside double quotes: the password stays out of the file.
    auth = f'"{STATS_USER}:${{{ENV_STATS}}}"'
    return render_haproxy(topo, CONTAINER_LAYOUT, _NO_SECRETS, style=style, stats_auth=auth,
                          stats_password=f'"${{{ENV_STATS}}}"',
                          extra_sections=resolvers, tls=spec.tls)


def _config_name(topo: Topology, component: str) -> str:
    place = topo.place(component)
    return component_for(topo.spec, place).container_config_name(place)


def _command(topo: Topology, component: str) -> list[str]:
    place = topo.place(component)
    config = str(CONFIG_DIR / _config_name(topo, component))
    return component_for(topo.spec, place).container_command(IN_CONTAINER, config, str(CONFIG_DIR),
                                                             CONTAINER_LAYOUT, place)


# --- the image -----------------------------------------------------------------------------------


def containerfile(spec: Spec) -> str:
    dcs_packages = " ".join(dcs_component(spec).packages + (("pgbouncer",) if spec.pooler.enabled else ()))
    root = CONTAINER_LAYOUT.root
    return f"""\
# Generated by pgha for cluster {spec.name!r} (profile {spec.profile}). One image for every
# service: PostgreSQL 15, Patroni, {spec.dcs.kind} and HAProxy; compose.yaml picks the command.
# The configs are copied in at build time: after editing them, rebuild (`up --build`).
# No password is in here: they come from the environment at run time (see .env).
ARG BASE_IMAGE={DEFAULT_BASE_IMAGE}
FROM ${{BASE_IMAGE}}
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC PYTHONUNBUFFERED=1 \\
    PATH=/opt/patroni/bin:/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# No "main" cluster from the Debian package: Patroni creates the only one. The man directory
# lets Java's package install on slim images. The postgres user gets a fixed id, so that the
# certificates mounted from the host can belong to it.
RUN set -eux; \\
    groupadd --system --gid {CONTAINER_UID} postgres; \\
    useradd --system --uid {CONTAINER_UID} --gid {CONTAINER_UID} --home-dir /var/lib/postgresql --shell /bin/bash \\
        postgres; \\
    mkdir -p /etc/postgresql-common/createcluster.d /usr/share/man/man1; \\
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/pgha.conf; \\
    apt-get update; \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
        postgresql-15 python3-venv haproxy ca-certificates {dcs_packages}; \\
    apt-get clean; \\
    rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/patroni \\
    && /opt/patroni/bin/pip install --no-cache-dir '{PATRONI_REQUIREMENT}' '{PSYCOPG_REQUIREMENT}'
RUN install -d -o postgres -g postgres -m 0700 {root}/data \\
    && install -d -o postgres -g postgres -m 0750 {root}/run {root}/logs {root}/conf
COPY config/ {CONFIG_DIR}/
USER postgres
WORKDIR {root}
"""


IGNORE = """\
# Passwords and keys never enter the build context, so they cannot end up in the image.
.env
*.env
secrets*
tls/
pki/
"""


# --- compose.yaml --------------------------------------------------------------------------------


def compose_document(topo: Topology) -> dict[str, Any]:
    spec = topo.spec
    net = ipaddress.ip_network(spec.network)
    all_services = services(spec)
    by_kind: dict[str, list[str]] = {}
    for service, _, place_kind in all_services:
        by_kind.setdefault(place_kind, []).append(service)
    out: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for service, component, _ in all_services:
        place = topo.place(component)
        comp = component_for(spec, place)
        svc: dict[str, Any] = {"image": image_name(spec)}
        if not out:
            # One service builds the image the others share (an engine building it once per
            # service would do the same work N times over); an existing image is reused, and
            # `up --build` rebuilds it.
            svc["build"] = {
                "context": ".",
                "dockerfile": CONTAINERFILE,
                "args": {"BASE_IMAGE": f"${{{ENV_BASE_IMAGE}:-{DEFAULT_BASE_IMAGE}}}"},
            }
        svc |= {
            "container_name": container_name(spec, service),
            # "$" is compose's interpolation: a command's own variables are the container's.
            "command": [arg.replace("$", "$$") for arg in _command(topo, component)],
            "restart": "always",
            "labels": {"io.pgha.cluster": spec.name, "io.pgha.component": component, "io.pgha.kind": place.kind},
            # A fixed address, the one the configs name; the service name resolves to it as well.
            "networks": {NETWORK: {"ipv4_address": place.address}},
        }
        env = comp.container_environment(spec)
        if env:
            svc["environment"] = env
        mounts = []
        if comp.keeps_data:
            volumes[f"{service}-data"] = {}
            mounts.append(f"{service}-data:{CONTAINER_LAYOUT.data}")
        if spec.tls:
            # Its certificate and key from the host, read-only (never in the image).
            mounts.append(f"./{TLS_DIR}/{service}:{CONTAINER_LAYOUT.tls}:ro")
        if mounts:
            svc["volumes"] = mounts
        exposed = comp.exposed(topo, place)
        if exposed:
            svc["expose"] = [str(port) for port in exposed]
        # Host ports, bound to the host's loopback address only; the DCS and the REST API stay on
        # the container network.
        published = comp.published(topo, place)
        if published:
            svc["ports"] = [f"{spec.host}:{host}:{inside}" for host, inside in published]
        if comp.after is not None:
            svc["depends_on"] = list(by_kind[comp.after])
        svc |= dict(comp.stop_settings)
        out[service] = svc
    if auth_job_wanted(spec):
        out[AUTH_JOB] = _auth_job(topo, net)
    network = {"ipam": {"config": [{"subnet": str(net), "gateway": str(net.network_address + 1)}]}}
    # No top-level `name:`: docker-compose v1 (the lab's, Debian's 1.29) refuses it; the project's
    # name is COMPOSE_PROJECT_NAME in .env, which all three compose programs read.
    return {"services": out, "networks": {NETWORK: network}, "volumes": volumes}


def auth_job_wanted(spec: Spec) -> bool:
    """A deployment started by the user's own engine turns etcd's authentication on itself, as
    pgha does for the clusters it starts (pgha.security.dcs_auth.ensure_authentication)."""
    dcs = dcs_component(spec)
    return spec.dcs.authentication and dcs.secured_by_pgha and authenticates(spec)


def _auth_job(topo: Topology, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, Any]:
    spec = topo.spec
    job: dict[str, Any] = {
        "image": image_name(spec),
        "container_name": container_name(spec, AUTH_JOB),
        "command": ["sh", str(CONFIG_DIR / SECURE_SCRIPT)],
        # Once: it exits when authentication is on (and does nothing on a second run).
        "restart": "no",
        "labels": {"io.pgha.cluster": spec.name, "io.pgha.kind": "job"},
        "networks": {NETWORK: {"ipv4_address": str(net.network_address + AUTH_JOB_HOST)}},
        "environment": {ENV_DCS_ROOT: f"${{{ENV_DCS_ROOT}:?missing from .env}}",
                        ENV_DCS: f"${{{ENV_DCS}:?missing from .env}}"},
        "depends_on": [dcs_service(spec, i) for i in range(spec.dcs.members)],
    }
    if spec.tls:
        # The first member's certificate, which is also a client's: etcd asks every client for one.
        job["volumes"] = [f"./{TLS_DIR}/{dcs_service(spec, 0)}:{CONTAINER_LAYOUT.tls}:ro"]
    return job


def _auth_script(topo: Topology) -> str:
    scheme = "https" if topo.spec.tls else "http"
    endpoints = [f"{scheme}://{place.address}:{ports.client}" for place, ports in zip(topo.dcs, topo.dcs_ports,
                                                                                      strict=True)]
    first = topo.dcs[0].name
    lay = CONTAINER_LAYOUT
    tls = (str(lay.tls_ca), str(lay.tls_cert(first)), str(lay.tls_key(first))) if topo.spec.tls else None
    return secure_script(endpoints, topo.spec.patroni_scope, FromEnvironment(ENV_DCS_ROOT, ENV_DCS), "", tls)


def env_file(spec: Spec, secrets: Secrets, base_image: str | None) -> str:
    lines = [
        "# Passwords of this deployment, read by compose at run time. Not in the image, not in",
        "# compose.yaml; keep this file private (mode 0600).",
        f"COMPOSE_PROJECT_NAME={project_name(spec)}",
        f"{ENV_SUPERUSER}={secrets.superuser_password}",
        f"{ENV_REPLICATION}={secrets.replication_password}",
        f"{ENV_REST}={secrets.rest_password}",
        f"{ENV_DCS}={secrets.dcs_password}",
        # etcd's root user, for the etcd-auth job only (pgha itself keeps it in secrets.yml).
        f"{ENV_DCS_ROOT}={secrets.dcs_root_password}",
        f"{ENV_STATS}={secrets.stats_password}",
        # The pooler's users file is written from these at its container's start.
        f"{ENV_APP}={secrets.app_password}",
        f"{ENV_POOLER_ADMIN}={secrets.pooler_admin_password}",
    ]
    if base_image:
        lines.append(f"{ENV_BASE_IMAGE}={base_image}")
    return "\n".join(lines) + "\n"


def _image_files(topo: Topology) -> list[RenderedFile]:
    """What the image is built from: the Containerfile and the config directory."""
    spec = topo.spec
    config = Path("config")
    files = [
        RenderedFile(Path(CONTAINERFILE), containerfile(spec), 0o644),
        RenderedFile(config / "haproxy.cfg", container_haproxy(topo), 0o644),
    ]
    for node in spec.node_names:
        files.append(RenderedFile(config / _config_name(topo, node), to_yaml(container_patroni(topo, node)), 0o644))
        if topo.poolers:
            files.append(RenderedFile(config / _hook_config_name(node), container_hook_config(topo, node), 0o644))
    if topo.poolers:
        files.append(RenderedFile(config / HOOK_SCRIPT, HOOK_SOURCE, 0o644))
    files.append(RenderedFile(config / PATRONI_SCRIPT, PATRONI_SOURCE, 0o644))
    dcs = dcs_component(spec)
    for place in topo.dcs:
        # The DCS's own config as every backend renders it, with the container's paths.
        text = dcs.config_text(topo, CONTAINER_LAYOUT, place.index, spec.tls)
        files.append(RenderedFile(config / _config_name(topo, place.name), text, 0o644))
    if isinstance(dcs, ZooKeeper):
        files += dcs.shared_files(config)
    if auth_job_wanted(spec):
        files.append(RenderedFile(config / SECURE_SCRIPT, _auth_script(topo), 0o755))
    for place in topo.poolers:
        text = render_pooler(topo, CONTAINER_LAYOUT, place.index, tls=spec.tls)
        files.append(RenderedFile(config / _config_name(topo, place.name), text, 0o644))
    return files


def tls_files(topo: Topology, pki: Pki) -> list[RenderedFile]:
    """Each service's certificates, in its own directory that compose mounts at the container's
    `conf/tls` (what every backend gives the host: its own key, the CA's certificate)."""
    out: list[RenderedFile] = []
    for service, component, _ in services(topo.spec):
        place = topo.place(component)
        site = Site(topo, place, CONTAINER_LAYOUT, _NO_SECRETS, IN_CONTAINER, pki)
        for f in component_for(topo.spec, place).files(site):
            if f.path.parent == CONTAINER_LAYOUT.tls:
                out.append(RenderedFile(Path(TLS_DIR) / service / f.path.name, f.text, f.mode))
    return out


def render_compose(spec: Spec, secrets: Secrets, base_image: str | None = None,
                   pki: Pki | None = None) -> list[RenderedFile]:
    """Every file of the deployment, with paths relative to the deployment's directory; with
    TLS (spec.tls) the certificates of the cluster's CA (pki) in `tls/<service>/`."""
    topo = topology(compose_spec(spec))
    if spec.tls and pki is None:
        raise ValueError("a TLS deployment needs the cluster's certificates")
    return [
        *_image_files(topo),
        *(tls_files(topo, pki) if pki is not None and spec.tls else []),
        RenderedFile(Path(".containerignore"), IGNORE, 0o644),
        RenderedFile(Path(".dockerignore"), IGNORE, 0o644),
        RenderedFile(Path("compose.yaml"), to_yaml(compose_document(topo)), 0o644),
        RenderedFile(Path(ENV_FILE), env_file(spec, secrets, base_image), 0o600),
    ]
