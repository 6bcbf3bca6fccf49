"""The DCS members: etcd and ZooKeeper, each a component kind of its own, chosen by the spec's
`dcs.kind`. Besides its files and command line, a DCS kind knows what Patroni calls it, how
pgha asks a member whether it is healthy, and which ports an operator opens for it."""

from __future__ import annotations

import shlex
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pgha.components.base import CertificateReload, Component, Needed, Programs, Site
from pgha.model.spec import Spec
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile, to_yaml
from pgha.render.dcs import ZOOKEEPER_JARS, render_etcd, render_zookeeper, zookeeper_argv, zookeeper_myid
from pgha.security import dcs_auth
from pgha.security.pki import dcs_client_name
from pgha.state.layout import Layout
from pgha.state.secrets import Secrets

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
    # ZooKeeper does not reload its PEM key store (seen: the old serial kept being served).
    certificate_reload: ClassVar[CertificateReload] = CertificateReload.RESTART

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

    # --- authentication: only Patroni, with its own password, may write the cluster's keys ----

    @property
    def secured_by_pgha(self) -> bool:
        """pgha turns authentication on itself (pgha.security.dcs_auth.secured_by_pgha)."""
        return dcs_auth.secured_by_pgha(self.name)

    def patroni_credentials(self, topo: Topology, secrets: Secrets) -> dict[str, object]:
        """What Patroni's section for this DCS needs to log in (empty: nothing)."""
        return {}

    def patroni_tls(self, layout: Layout, node: str) -> dict[str, object]:
        """What Patroni's section for this DCS needs to speak TLS, with the node's certificates."""
        return {}

    def patroni_environment(self, scope: str, password: str, tls: bool) -> dict[str, str]:
        """The same login as PATRONI_* variables (containers: the password stays in .env)."""
        return {}



class Etcd(DcsMember):
    name: ClassVar[str] = "etcd"
    patroni_key: ClassVar[str] = "etcd3"
    # etcd-client: etcdctl, for the script that turns authentication on (secure_script).
    packages: ClassVar[tuple[str, ...]] = ("etcd-server", "etcd-client")
    open_ports: ClassVar[str] = "2379 (clients) and 2380 (peers)"
    # It reads its certificate files at every TLS handshake (seen: the new serial served at once).
    certificate_reload: ClassVar[CertificateReload] = CertificateReload.PER_HANDSHAKE

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

    def patroni_credentials(self, topo: Topology, secrets: Secrets) -> dict[str, object]:
        return {"username": dcs_auth.patroni_user(topo.spec.patroni_scope), "password": secrets.dcs_password}

    def patroni_tls(self, layout: Layout, node: str) -> dict[str, object]:
        # Its own client certificate, with an empty subject: etcd's gateway refuses any with a
        # CommonName once authentication is on (pgha.security.pki).
        client = dcs_client_name(node)
        return {"protocol": "https", "cacert": str(layout.tls_ca),
                "cert": str(layout.tls_cert(client)), "key": str(layout.tls_key(client))}

    def patroni_environment(self, scope: str, password: str, tls: bool) -> dict[str, str]:
        # Patroni applies PATRONI_ETCD3_USERNAME/_PASSWORD only to an etcd3 section that its
        # environment defines with another setting: without PROTOCOL (as the config says) it
        # ignores them, runs without a login, and dies once authentication is on.
        return {"PATRONI_ETCD3_PROTOCOL": "https" if tls else "http",
                "PATRONI_ETCD3_USERNAME": dcs_auth.patroni_user(scope), "PATRONI_ETCD3_PASSWORD": password}



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

    def patroni_credentials(self, topo: Topology, secrets: Secrets) -> dict[str, object]:
        if not topo.spec.tls:
            return {}
        # Every node's certificate (its subject, CN=<node>) may do everything; no one else anything.
        return {"set_acls": {f"CN={place.name}": ["ALL"] for place in topo.nodes}}

    def patroni_tls(self, layout: Layout, node: str) -> dict[str, object]:
        return {"use_ssl": True, "verify": True, "cacert": str(layout.tls_ca),
                "cert": str(layout.tls_cert(node)), "key": str(layout.tls_key(node))}

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

def patroni_dcs_section(topo: Topology, secrets: Secrets, layout: Layout | None = None,
                        node: str = "") -> dict[str, Any]:
    """Patroni's DCS section; with a layout (TLS) it connects over TLS with the node's
    certificates."""
    hosts = [f"{place.address}:{ports.client}" for place, ports in zip(topo.dcs, topo.dcs_ports, strict=True)]
    dcs = dcs_component(topo.spec)
    login = dcs.patroni_credentials(topo, secrets) if topo.spec.dcs.authentication else {}
    tls = dcs.patroni_tls(layout, node) if layout is not None else {}
    return {dcs.patroni_key: {"hosts": hosts, **tls, **login}}


DCS_KINDS: dict[str, DcsMember] = {"etcd": Etcd(), "zookeeper": ZooKeeper()}


def dcs_component(spec: Spec) -> DcsMember:
    """The DCS kind the spec names."""
    return DCS_KINDS[spec.dcs.kind]
