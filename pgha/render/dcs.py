"""Spec -> the configuration of each DCS member (etcd YAML config or ZooKeeper zoo.cfg)."""

from __future__ import annotations

from typing import Any

from pgha.model.topology import Topology
from pgha.state.layout import Layout

# netty-codec and netty-resolver: the Netty connection factory (TLS) needs them, and Debian's
# zookeeper.jar does not list them in its manifest's class path.
ZOOKEEPER_JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-log4j12.jar",
                  "/usr/share/java/log4j-1.2.jar", "/usr/share/java/netty-codec.jar",
                  "/usr/share/java/netty-resolver.jar")


def zookeeper_argv(config: str, log4j_properties: str) -> list[str]:
    """How Debian's ZooKeeper package is started without its init script."""
    # A small heap: the JVM would otherwise reserve a quarter of the machine's memory.
    return ["/usr/bin/java", "-Xms16m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:-UsePerfData",
            f"-Dlog4j.configuration=file:{log4j_properties}",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp", ":".join(ZOOKEEPER_JARS),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", config]


def render_etcd(topo: Topology, layout: Layout, i: int, tls: bool = False) -> dict[str, Any]:
    spec = topo.spec
    scheme = "https" if tls else "http"
    peers = ",".join(
        f"{place.name}={scheme}://{place.address}:{p.peer}" for place, p in zip(topo.dcs, topo.dcs_ports, strict=True)
    )
    me, ports = topo.dcs[i], topo.dcs_ports[i]
    client = f"{scheme}://{me.address}:{ports.client}"
    peer = f"{scheme}://{me.address}:{ports.peer}"
    config = {
        "name": me.name,
        "data-dir": str(layout.dcs_data(i)),
        "listen-client-urls": client,
        "advertise-client-urls": client,
        "listen-peer-urls": peer,
        "initial-advertise-peer-urls": peer,
        "initial-cluster": peers,
        "initial-cluster-token": f"pgha-{spec.name}",
        "initial-cluster-state": "new",
        # Patroni talks to etcd through the v3 gRPC gateway, which a config file must switch on
        # (flags default it to on, a config file to off); v2 stays off.
        "enable-grpc-gateway": True,
        "enable-v2": False,
        "logger": "zap",
        "log-outputs": ["stderr"],
        # Faster elections than the WAN-friendly defaults (100 ms / 1000 ms) are not needed on
        # loopback, but a loaded 2-core machine needs the defaults' slack.
        "heartbeat-interval": 100,
        "election-timeout": 1000,
        "quota-backend-bytes": 256 * 1024 * 1024,
        "auto-compaction-mode": "periodic",
        "auto-compaction-retention": "1h",
    }
    if tls:
        # Both ports want a certificate from the cluster's CA (a client without one does not get
        # past the handshake); etcd reads the files at every handshake, so renewing them needs
        # no restart. Patroni's and pgha's client certificates have an empty subject: etcd's
        # gateway refuses any with a CommonName once authentication is on (pgha.security.pki).
        security = {"cert-file": str(layout.tls_cert(me.name)), "key-file": str(layout.tls_key(me.name)),
                    "client-cert-auth": True, "trusted-ca-file": str(layout.tls_ca)}
        config["client-transport-security"] = dict(security)
        config["peer-transport-security"] = dict(security)
    return config


def zookeeper_tls(layout: Layout, name: str, client_port: int, address: str) -> list[str]:
    """TLS only: no plaintext client port, a client certificate of the cluster's CA required,
    the quorum's links TLS too with the peer's address checked against its certificate."""
    pem, ca = layout.tls_pem(name), layout.tls_ca
    return [
        f"secureClientPort={client_port}",
        f"secureClientPortAddress={address}",
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        f"ssl.keyStore.location={pem}",
        "ssl.keyStore.type=PEM",
        f"ssl.trustStore.location={ca}",
        "ssl.trustStore.type=PEM",
        "ssl.clientAuth=need",
        "sslQuorum=true",
        f"ssl.quorum.keyStore.location={pem}",
        "ssl.quorum.keyStore.type=PEM",
        f"ssl.quorum.trustStore.location={ca}",
        "ssl.quorum.trustStore.type=PEM",
        "ssl.quorum.hostnameVerification=true",
    ]


def render_zookeeper(topo: Topology, layout: Layout, i: int, tls: bool = False) -> str:
    me, ports = topo.dcs[i], topo.dcs_ports[i]
    client = zookeeper_tls(layout, me.name, ports.client, me.address) if tls else [
        f"clientPort={ports.client}",
        f"clientPortAddress={me.address}",
    ]
    lines = [
        "tickTime=2000",
        "initLimit=10",
        "syncLimit=5",
        f"dataDir={layout.dcs_data(i)}",
        *client,
        "maxClientCnxns=100",
        "admin.enableServer=false",
        "4lw.commands.whitelist=ruok,srvr,mntr,stat",
        "autopurge.purgeInterval=1",
    ]
    if len(topo.dcs) > 1:
        lines += [
            f"server.{j + 1}={place.address}:{p.peer}:{p.election}"
            for j, (place, p) in enumerate(zip(topo.dcs, topo.dcs_ports, strict=True))
        ]
    else:
        # A standalone member still needs peer ports reserved for a later ensemble; the lab ran one.
        lines.append("standaloneEnabled=true")
    return "\n".join(lines) + "\n"


def zookeeper_myid(i: int) -> str:
    return f"{i + 1}\n"
