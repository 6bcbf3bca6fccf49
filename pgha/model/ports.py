"""The programs' customary ports, in one place: what a component with an address of its own
listens on (netns, containers, real machines), and what the lab published (the seed profile keeps
the lab's ports, shifted by base_port - 5432)."""

from __future__ import annotations

POSTGRES_PORT = 5432
REST_PORT = 8008
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
ZK_CLIENT_PORT, ZK_PEER_PORT, ZK_ELECTION_PORT = 2181, 2888, 3888
HAPROXY_RW_PORT, HAPROXY_RO_PORT, HAPROXY_STATS_PORT = 5432, 5433, 7000
POOLER_PORT = 6432
# pgBackRest's TLS server (its default), on the repository host and beside every node.
PGBACKREST_TLS_PORT = 8432
# Prometheus's web port (its default), beside the first HAProxy.
PROMETHEUS_PORT = 9090

# The lab's entrypoint (HAProxy on 5432) is the base every seed port is shifted from; its
# PostgreSQL containers were published from 5433 on.
LAB_BASE_PORT = HAPROXY_RW_PORT
LAB_POSTGRES_PORT = 5433

# Whether a DCS kind's members need a third port, for leader election (ZooKeeper's 3888). The
# model plans ports below the component classes (pgha.components.dcs), so it keeps this one fact.
HAS_ELECTION_PORT = {"etcd": False, "zookeeper": True}
