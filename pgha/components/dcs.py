"""The DCS members: etcd and ZooKeeper, each a component kind of its own, chosen by the spec's
`dcs.kind`. Besides its files and command line, a DCS kind knows what Patroni calls it, how
pgha asks a member whether it is healthy, and which ports an operator opens for it."""

from __future__ import annotations

import contextlib
import shlex
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from pgha import dcs_auth, zk_acl
from pgha.components.base import Component, Needed, Programs, Site
from pgha.dial import Endpoint, http_request, tcp_connect
from pgha.layout import Layout
from pgha.pki import dcs_client_name
from pgha.render import RenderedFile, to_yaml
from pgha.render.dcs import ZOOKEEPER_JARS, render_etcd, render_zookeeper, zookeeper_argv, zookeeper_myid
from pgha.secrets import Secrets
from pgha.spec import Spec
from pgha.topology import Kind, Place, Topology

ZOOKEEPER_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
"""
LOG4J_FILE = "zookeeper-log4j.properties"


class DcsMember(Component):
    kind: ClassVar[Kind] = "dcs"
    name: ClassVar[str]  # spec.dcs.kind
    # Patroni's name for it: its config section and its pip extra.
    patroni_key: ClassVar[str]
    # For operators opening ports between hosts (README of the bundles).
    open_ports: ClassVar[str]
    # Whether a running member takes a renewed certificate from its files (else: a restart).
    reloads_certificates: ClassVar[bool] = False

    def config_path(self, layout: Layout, place: Place) -> Path:
        return layout.dcs_config(place.index)

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-{self.name}-{place.name}.service"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: {self.name} member {place.name}"

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        d = topo.dcs_ports[place.index]
        out = [(f"DCS {place.name} client", d.client), (f"DCS {place.name} peer", d.peer)]
        if d.election is not None:
            out.append((f"DCS {place.name} election", d.election))
        return out

    @abstractmethod
    def config_text(self, topo: Topology, layout: Layout, index: int, tls: bool) -> str:
        """The member's main config file (the compose image holds it without certificates)."""

    @abstractmethod
    def health(self, ep: Endpoint, timeout: float) -> tuple[bool, str]:
        """(healthy, one-line detail) of the member at ep; raises OSError/ValueError when it does
        not answer."""

    # --- authentication: only Patroni, with its own password, may write the cluster's keys ----

    # Whether pgha turns authentication on itself, after the members form a quorum (`secure`);
    # otherwise Patroni protects what it creates (ZooKeeper's ACLs).
    secured_by_pgha: ClassVar[bool] = False

    def authenticates(self, spec: Spec) -> bool:
        """Whether a cluster of this spec can have only Patroni write its keys (what
        spec.dcs.authentication asks for)."""
        return False

    def patroni_credentials(self, topo: Topology, secrets: Secrets) -> dict[str, object]:
        """What Patroni's section for this DCS needs to log in (empty: nothing)."""
        return {}

    def patroni_tls(self, layout: Layout, node: str) -> dict[str, object]:
        """What Patroni's section for this DCS needs to speak TLS, with the node's certificates."""
        return {}

    def patroni_environment(self, scope: str, password: str, tls: bool) -> dict[str, str]:
        """The same login as PATRONI_* variables (containers: the password stays in .env)."""
        return {}

    def secure(self, ep: Endpoint, scope: str, secrets: Secrets) -> None:
        """Turn authentication on (idempotent); raises BackendError when the DCS refuses."""

    def anonymous_write_refused(self, ep: Endpoint, scope: str) -> tuple[bool, str]:
        """(refused, evidence): does the member refuse a write from a client without credentials?
        Never writes, whatever the answer."""
        return False, f"pgha does not set up authentication for {self.name} yet: anyone who reaches {ep} " \
                      "can write the cluster's keys"


class Etcd(DcsMember):
    name: ClassVar[str] = "etcd"
    patroni_key: ClassVar[str] = "etcd3"
    # etcd-client: etcdctl, for the script that turns authentication on (secure_script).
    packages: ClassVar[tuple[str, ...]] = ("etcd-server", "etcd-client")
    open_ports: ClassVar[str] = "2379 (clients) and 2380 (peers)"
    # It reads its certificate files at every TLS handshake (seen: the new serial served at once).
    reloads_certificates: ClassVar[bool] = True

    def config_text(self, topo: Topology, layout: Layout, index: int, tls: bool) -> str:
        return to_yaml(render_etcd(topo, layout, index, tls))

    def files(self, site: Site) -> list[RenderedFile]:
        text = self.config_text(site.topo, site.layout, site.place.index, site.tls)
        files = [RenderedFile(self.config_path(site.layout, site.place), text, 0o644), *site.tls_files()]
        spec = site.topo.spec
        if spec.dcs.authentication and site.place.index == 0 and self.secured_by_pgha:
            files.append(RenderedFile(site.layout.conf / dcs_auth.SECURE_SCRIPT, self.secure_script(site), 0o700))
        return files

    def secure_script(self, site: Site) -> str:
        """For real machines: what `secure` does, as a script the first member's host runs once
        (the process backends secure etcd themselves, over HTTP)."""
        topo, lay = site.topo, site.layout
        scheme = "https" if site.tls else "http"
        endpoints = [f"{scheme}://{place.address}:{ports.client}"
                     for place, ports in zip(topo.dcs, topo.dcs_ports, strict=True)]
        tls = (str(lay.tls_ca), str(lay.tls_cert(site.name)), str(lay.tls_key(site.name))) if site.tls else None
        return dcs_auth.secure_script(endpoints, topo.spec.patroni_scope, site.secrets.dcs_root_password,
                                      site.secrets.dcs_password, tls)

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        return [programs.etcd, "--config-file", config]

    def needs(self, programs: Programs) -> Needed:
        return {"etcd": (Path(programs.etcd), "apt-get install etcd-server")}

    def install_lines(self, dcs_extra: str) -> list[str]:
        return ["systemctl disable --now etcd 2>/dev/null || true"]

    def health(self, ep: Endpoint, timeout: float) -> tuple[bool, str]:
        _, data = http_request(ep, "health", timeout)
        healthy = str(data.get("health")) == "true"
        return healthy, "healthy" if healthy else f"unhealthy: {data.get('reason') or 'no quorum'}"

    secured_by_pgha: ClassVar[bool] = True

    def authenticates(self, spec: Spec) -> bool:
        return True

    def patroni_credentials(self, topo: Topology, secrets: Secrets) -> dict[str, object]:
        return {"username": dcs_auth.patroni_user(topo.spec.patroni_scope), "password": secrets.dcs_password}

    def patroni_tls(self, layout: Layout, node: str) -> dict[str, object]:
        # Its own client certificate, with an empty subject: etcd's gateway refuses any with a
        # CommonName once authentication is on (pgha.pki).
        client = dcs_client_name(node)
        return {"protocol": "https", "cacert": str(layout.tls_ca),
                "cert": str(layout.tls_cert(client)), "key": str(layout.tls_key(client))}

    def patroni_environment(self, scope: str, password: str, tls: bool) -> dict[str, str]:
        # Patroni applies PATRONI_ETCD3_USERNAME/_PASSWORD only to an etcd3 section that its
        # environment defines with another setting: without PROTOCOL (as the config says) it
        # ignores them, runs without a login, and dies once authentication is on.
        return {"PATRONI_ETCD3_PROTOCOL": "https" if tls else "http",
                "PATRONI_ETCD3_USERNAME": dcs_auth.patroni_user(scope), "PATRONI_ETCD3_PASSWORD": password}

    def secure(self, ep: Endpoint, scope: str, secrets: Secrets) -> None:
        dcs_auth.secure_etcd(ep, scope, secrets.dcs_root_password, secrets.dcs_password)

    def anonymous_write_refused(self, ep: Endpoint, scope: str) -> tuple[bool, str]:
        return dcs_auth.anonymous_write_refused(ep, scope)


class ZooKeeper(DcsMember):
    name: ClassVar[str] = "zookeeper"
    patroni_key: ClassVar[str] = "zookeeper"
    packages: ClassVar[tuple[str, ...]] = ("zookeeper", "default-jre-headless")
    open_ports: ClassVar[str] = "2181 (clients), 2888 and 3888 (peers)"

    def config_text(self, topo: Topology, layout: Layout, index: int, tls: bool) -> str:
        return render_zookeeper(topo, layout, index, tls)

    def files(self, site: Site) -> list[RenderedFile]:
        lay, i = site.layout, site.place.index
        return [
            RenderedFile(self.config_path(lay, site.place), self.config_text(site.topo, lay, i, site.tls), 0o644),
            RenderedFile(lay.dcs_data(i) / "myid", zookeeper_myid(i), 0o644),
            *self.shared_files(lay.conf),
            *site.tls_files(pem=True),
        ]

    # Patroni's only way to protect its znodes is an ACL of x509 identities (its `set_acls`
    # always uses that scheme; digest credentials alone protect nothing, since anyone may add
    # some): so authentication needs TLS with client certificates.
    def authenticates(self, spec: Spec) -> bool:
        return spec.tls

    def patroni_credentials(self, topo: Topology, secrets: Secrets) -> dict[str, object]:
        if not topo.spec.tls:
            return {}
        # Every node's certificate (its subject, CN=<node>) may do everything; no one else anything.
        return {"set_acls": {f"CN={place.name}": ["ALL"] for place in topo.nodes}}

    def patroni_tls(self, layout: Layout, node: str) -> dict[str, object]:
        return {"use_ssl": True, "verify": True, "cacert": str(layout.tls_ca),
                "cert": str(layout.tls_cert(node)), "key": str(layout.tls_key(node))}

    def anonymous_write_refused(self, ep: Endpoint, scope: str) -> tuple[bool, str]:
        if ep.tls is None:
            return super().anonymous_write_refused(ep, scope)
        return zk_acl.write_refused(ep, f"{dcs_auth.NAMESPACE}{scope}")

    @staticmethod
    def shared_files(conf_dir: Path) -> list[RenderedFile]:
        """What every member on a host shares: the logging setup."""
        return [RenderedFile(conf_dir / LOG4J_FILE, ZOOKEEPER_LOG4J, 0o644)]

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        return zookeeper_argv(config, f"{conf_dir}/{LOG4J_FILE}")

    def needs(self, programs: Programs) -> Needed:
        return {"java": (Path("/usr/bin/java"), "apt-get install zookeeper"),
                "zookeeper": (Path(ZOOKEEPER_JARS[0]), "apt-get install zookeeper")}

    def container_config_name(self, place: Place) -> str:
        return f"{place.name}.cfg"

    def container_command(self, programs: Programs, config: str, conf_dir: str, layout: Layout,
                          place: Place) -> list[str]:
        # The image is one for all members: each writes its own myid into its volume first.
        data, i = layout.dcs_data(place.index), place.index
        java = shlex.join(self.command(programs, config, conf_dir))
        return ["sh", "-c", f"mkdir -p {data} && echo {i + 1} > {data}/myid && exec {java}"]

    def health(self, ep: Endpoint, timeout: float) -> tuple[bool, str]:
        reply = _four_letter(ep, "srvr", timeout)
        mode = next((ln.split(":", 1)[1].strip() for ln in reply.splitlines() if ln.startswith("Mode:")), "")
        healthy = mode in ("leader", "follower", "standalone")
        return healthy, mode if healthy else (reply.strip().splitlines() or ["no answer"])[0]


def _four_letter(ep: Endpoint, word: str, timeout: float) -> str:
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(tcp_connect(ep, timeout))
        if ep.tls is not None:
            # The secure client port: TLS first, with a certificate of the cluster's CA.
            s = stack.enter_context(ep.tls.context().wrap_socket(s, server_hostname=ep.host))
        s.sendall(word.encode())
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


DCS_KINDS: dict[str, DcsMember] = {"etcd": Etcd(), "zookeeper": ZooKeeper()}


def dcs_component(spec: Spec) -> DcsMember:
    """The DCS kind the spec names."""
    return DCS_KINDS[spec.dcs.kind]


def ensure_authentication(spec: Spec, ep: Endpoint, secrets: Secrets, say: Callable[[str], None]) -> None:
    """Turn the DCS's authentication on when the spec asks for it, pgha is the one to do it for
    this kind and the member at ep still takes anonymous writes (one probe that never writes);
    idempotent."""
    dcs = dcs_component(spec)
    if not (spec.dcs.authentication and dcs.secured_by_pgha and dcs.authenticates(spec)):
        return
    refused, _ = dcs.anonymous_write_refused(ep, spec.patroni_scope)
    if not refused:
        say(f"turning on {dcs.name}'s authentication: only Patroni may write the cluster's keys")
        dcs.secure(ep, spec.patroni_scope, secrets)
