"""The cluster spec: what one cluster is, validated once and immutable afterwards.

A spec is built from three layers, later ones winning: a built-in profile, an optional YAML file
(`pgha.yaml`) and CLI flags. Ports are planned from `base_port` unless the file names them.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pgha.errors import PghaError
from pgha.model import names
from pgha.model.backend_kinds import BACKENDS, backend_kind
from pgha.model.backend_kinds import find as find_backend
from pgha.model.ports import (
    HAPROXY_STATS_PORT,
    HAS_ELECTION_PORT,
    LAB_BASE_PORT,
    LAB_POSTGRES_PORT,
    POOLER_PORT,
    REST_PORT,
    ZK_CLIENT_PORT,
    ZK_ELECTION_PORT,
    ZK_PEER_PORT,
)

PROFILES = ("default", "seed")
# The container engines a compose cluster runs on; Docker is tried first when the spec names none.
EngineName = Literal["docker", "podman"]
ENGINES: tuple[str, ...] = get_args(EngineName)
MAX_NODES = 9
# What PostgreSQL's recovery_target_lsn and recovery_target_time take (the time as pgha writes it).
LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
RECOVERY_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?\+00:00")


class SpecError(PghaError, ValueError):
    """A spec that cannot be used; the message is one line naming the field and the rule."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PatroniSettings(_Frozen):
    # Patroni silently raises a smaller ttl to 20; refusing it keeps the spec honest.
    ttl: int = Field(default=30, ge=20)
    loop_wait: int = Field(default=10, ge=1)
    retry_timeout: int = Field(default=10, ge=3)
    maximum_lag_on_failover: int = Field(default=10 * 1024 * 1024, ge=0)
    primary_start_timeout: int = Field(default=300, ge=0)
    synchronous_mode: bool = True
    synchronous_mode_strict: bool = False
    failsafe_mode: bool = False
    use_pg_rewind: bool = True
    use_slots: bool = True
    parameters: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, v: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        # Each lands on a line of postgresql.conf (through Patroni): one setting, one line.
        for key, value in v.items():
            if not names.POSTGRES_PARAMETER.fullmatch(key):
                raise ValueError(f"{key!r} is not a PostgreSQL parameter name")
            if isinstance(value, str) and names.has_control_characters(value):
                raise ValueError(f"{key}: the value must not contain newlines or control characters")
        return v

    @model_validator(mode="after")
    def _timings(self) -> PatroniSettings:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                f"loop_wait + 2*retry_timeout must be <= ttl "
                f"({self.loop_wait} + 2*{self.retry_timeout} > {self.ttl})"
            )
        return self


class HAProxySettings(_Frozen):
    # "lab": plain `option httpchk` (GET /, 200 on the primary only), as the lab had it.
    # "role": Patroni's /primary and /replica endpoints, which also allow a read-only port.
    check: Literal["lab", "role"] = "role"
    inter_ms: int = Field(default=1000, ge=100)
    fastinter_ms: int | None = Field(default=None, ge=100)
    downinter_ms: int | None = Field(default=None, ge=100)
    fall: int = Field(default=2, ge=1)
    rise: int = Field(default=1, ge=1)
    shutdown_sessions: bool = True
    readonly_port: bool = True
    threads: int | None = Field(default=None, ge=1, le=64)
    maxconn: int = Field(default=1000, ge=10)
    timeout_connect_ms: int = Field(default=2000, ge=100)
    timeout_check_ms: int = Field(default=1000, ge=100)
    timeout_client: str = "30m"
    timeout_server: str = "30m"
    # HAProxy hosts in front of the cluster; more than one needs hosts of their own (netns).
    hosts: int = Field(default=1, ge=1, le=3)
    # A new primary tells every HAProxy it can reach (its admin socket on the same machine) at
    # once, through Patroni's on_role_change; the health checks stay, and confirm it.
    push_routing: bool = False

    @field_validator("timeout_client", "timeout_server")
    @classmethod
    def _time(cls, v: str) -> str:
        if not names.HAPROXY_TIME.fullmatch(v):
            raise ValueError("must be a number with an optional unit (us, ms, s, m, h, d), e.g. 30m")
        return v

    @model_validator(mode="after")
    def _ro_needs_roles(self) -> HAProxySettings:
        if self.readonly_port and self.check != "role":
            raise ValueError("readonly_port needs check: role (the lab check cannot tell replicas apart)")
        return self


class PoolerSettings(_Frozen):
    """PgBouncer on every HAProxy host, in front of the read-write path (pgha.components.pooler).
    Off in a spec an older pgha saved; the default profile turns it on."""

    enabled: bool = False
    # transaction: a server connection per transaction, so a pause waits only for transactions.
    pool_mode: Literal["transaction", "session"] = "transaction"
    pool_size: int = Field(default=20, ge=1, le=1000)
    max_client_conn: int = Field(default=2000, ge=10, le=50000)
    # How long a client waits for a server connection (a primary) before it is told no.
    query_wait_timeout_s: int = Field(default=60, ge=1, le=3600)
    # Planned hand-overs: how long PAUSE may wait for the transactions in flight to finish.
    pause_timeout_s: float = Field(default=5.0, gt=0, le=300)


CALENDAR = re.compile(r"[A-Za-z0-9*:.,~/ +-]{1,80}")


class BackupSettings(_Frozen):
    """pgBackRest: WAL archived continuously and full/differential backups in a repository of the
    cluster's own, encrypted, so a dropped table or every node's disk lost is recoverable to any
    moment since the first backup (pgha.render.backup). Off in a spec an older pgha saved; the
    default profile turns it on where its backend keeps a repository."""

    enabled: bool = False
    # A WAL segment is archived at the latest this long after its first write, even when it is
    # not full: the most a disaster can lose under a trickle of writes.
    archive_timeout_s: int = Field(default=60, ge=1, le=3600)
    # Full backups kept; the WAL needed by the oldest one is kept with it.
    retention_full: int = Field(default=2, ge=1, le=100)
    # lz4: a few times faster than gzip for a little more space.
    compress: Literal["lz4", "gz", "zst", "none"] = "lz4"
    # `pgha up` takes the first full backup as soon as the cluster is healthy.
    first_backup: bool = True
    # When the repository host of real machines (host bundles) takes its backups: systemd
    # OnCalendar= expressions for its timers (nothing schedules them on one machine: `pgha backup`).
    full_schedule: str = "Sun *-*-* 01:00:00"
    diff_schedule: str = "Mon..Sat *-*-* 01:00:00"

    @field_validator("full_schedule", "diff_schedule")
    @classmethod
    def _calendar(cls, v: str) -> str:
        # It lands in a unit file: one line of what calendar expressions are made of.
        if not CALENDAR.fullmatch(v):
            raise ValueError(f"{v!r} is not a systemd calendar expression such as 'Sun *-*-* 01:00:00'")
        return v


class FencingSettings(_Frozen):
    """The fencing guard beside each HAProxy (pgha.ops.fencing_guard): a primary silent for
    `fence_after_s`, whose replicas confirm they receive nothing from it, is killed, and once that is
    verified its leader key is deleted, so a replica takes over at once instead of after Patroni's
    ttl. Off in a spec an older pgha saved; the default profile turns it on where the backend can
    fence and the DCS is etcd."""

    enabled: bool = False
    fence_after_s: float = Field(default=2.0, ge=1.0, le=60.0)
    # How often the guard asks the primary and the replicas.
    interval_s: float = Field(default=0.25, ge=0.05, le=5.0)

    @model_validator(mode="after")
    def _cadence(self) -> FencingSettings:
        if self.interval_s * 2 > self.fence_after_s:
            raise ValueError("interval_s: the guard must ask at least twice within fence_after_s")
        return self


class MonitoringSettings(_Frozen):
    """Prometheus beside the first HAProxy, scraping every Patroni, HAProxy and etcd member of the
    cluster and evaluating pgha's alert rules (pgha.render.alert_rules). Off in a spec an older
    pgha saved; the default profile turns it on where the backend runs it."""

    enabled: bool = False
    # How long Prometheus keeps what it scraped (its --storage.tsdb.retention.time).
    retention: str = Field(default="2d", pattern=r"^[0-9]+(h|d|w)$")


class RestoreSource(_Frozen):
    """Where a cluster made by `pgha restore` came from: its first node is bootstrapped from the
    source's repository (Patroni's custom bootstrap running `pgbackrest restore`) and recovers the
    source's WAL to the target, then promotes; the cluster archives to a repository of its own. A
    cluster restored in place is its own source: it bootstraps from its own repository."""

    cluster: str
    repo: str  # the source's repository, an absolute path on this machine
    target: Literal["time", "lsn", "latest"]
    to: str | None = None  # the time (ISO 8601, UTC) or LSN; none for latest

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, v: str) -> str:
        if not names.is_cluster_name(v):
            raise ValueError(names.CLUSTER_NAME_RULE)
        return v

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not names.PLAIN_ABSOLUTE_PATH.fullmatch(v) or ".." in v.split("/"):
            raise ValueError("must be a plain absolute path")
        return v

    @model_validator(mode="after")
    def _target(self) -> RestoreSource:
        if self.target == "latest":
            if self.to is not None:
                raise ValueError("to: none for target latest")
        elif self.to is None:
            raise ValueError(f"to: required for target {self.target}")
        elif self.target == "lsn" and not LSN.fullmatch(self.to):
            raise ValueError(f"to: {self.to!r} is not an LSN such as 0/5000028")
        elif self.target == "time" and not RECOVERY_TIME.fullmatch(self.to):
            raise ValueError(f"to: {self.to!r} is not a time such as 2026-12-07 17:41:53.123+00:00")
        return self


class DCSSettings(_Frozen):
    kind: Literal["etcd", "zookeeper"] = "etcd"
    members: int = 3
    # Only Patroni may write the cluster's keys: without it any local user can switch over, demote
    # every node or run commands through the DCS. etcd: its own user and password (pgha/security/dcs_auth.py);
    # ZooKeeper: an ACL of the nodes' certificates, so it needs TLS (spec.tls, on by default for it).
    authentication: bool = True

    @field_validator("members")
    @classmethod
    def _members(cls, v: int) -> int:
        if v not in (1, 3, 5):
            raise ValueError("must be 1, 3 or 5")
        return v


class Ports(_Frozen):
    entrypoint_rw: int
    entrypoint_ro: int | None
    stats: int
    postgres: tuple[int, ...]
    rest: tuple[int, ...]
    dcs_client: tuple[int, ...]
    dcs_peer: tuple[int, ...]
    dcs_election: tuple[int, ...] = ()
    # Host-facing read-write ports of the second and later HAProxy hosts (netns backend).
    entrypoint_rw_more: tuple[int, ...] = ()
    # The pooler's port on each HAProxy host (none without the pooler).
    pooler: tuple[int, ...] = ()
    # Prometheus's web port (none without monitoring).
    monitoring: int | None = None

    def all(self) -> list[tuple[str, int]]:
        """Every port with a name saying what listens there."""
        named: list[tuple[str, int]] = [("entrypoint_rw", self.entrypoint_rw), ("stats", self.stats)]
        if self.entrypoint_ro is not None:
            named.append(("entrypoint_ro", self.entrypoint_ro))
        if self.monitoring is not None:
            named.append(("monitoring", self.monitoring))
        for field in ("postgres", "rest", "dcs_client", "dcs_peer", "dcs_election", "entrypoint_rw_more",
                      "pooler"):
            named += [(f"{field}[{i}]", p) for i, p in enumerate(getattr(self, field))]
        return named


# RFC 2544's benchmarking range: never routed, so a netns cluster can never reach a real host.
NETNS_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


class Spec(_Frozen):
    name: str = "default"
    profile: Literal["default", "seed"] = "default"
    # Where the processes run: this machine's loopback, a network namespace per host, containers.
    backend: str = "local"  # a name of pgha.model.backend_kinds, the one list of backends
    # The compose backend's engine (one of ENGINES); None until `pgha up` picks the one that is
    # installed and running, and stores it, so every later command talks to the same engine.
    engine: EngineName | None = None
    # The private network of a netns cluster (inside its namespaces only).
    network: str = "198.18.0.0/24"
    nodes: int = 3
    node_prefix: str = "node"
    scope: str = ""
    # Clients reach HAProxy on `host`; nodes and DCS members bind `node_host`, another loopback
    # address, because Patroni's validator rejects 127.0.0.1 as a connect address.
    host: str = "127.0.0.1"
    node_host: str = "127.0.1.1"
    base_port: int = LAB_BASE_PORT
    # TLS on every connection between hosts (pgha.security.pki: a CA of the cluster's own): PostgreSQL
    # (hostssl only, replication verify-full), Patroni's REST API, etcd's client and peer ports
    # and HAProxy's checks and stats. On by default where hosts talk over a network (netns).
    tls: bool = False
    dcs: DCSSettings = DCSSettings()
    patroni: PatroniSettings = PatroniSettings()
    haproxy: HAProxySettings = HAProxySettings()
    pooler: PoolerSettings = PoolerSettings()
    backup: BackupSettings = BackupSettings()
    fencing: FencingSettings = FencingSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    # Set on a cluster `pgha restore` made: bootstrapped from another cluster's backups.
    restore_from: RestoreSource | None = None
    ports: Ports

    @field_validator("network")
    @classmethod
    def _network(cls, v: str) -> str:
        try:
            net = ipaddress.ip_network(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a network such as 198.18.0.0/24") from None
        if str(net) != v:
            raise ValueError(f"{v!r}: write the network itself, e.g. {net}")
        if not (isinstance(net, ipaddress.IPv4Network) and net.subnet_of(NETNS_RANGE)):
            raise ValueError(f"must lie inside {NETNS_RANGE} (a range never routed)")
        if net.prefixlen > 26:
            raise ValueError("must have room for 64 hosts (a prefix of /26 or shorter)")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not names.is_cluster_name(v):
            raise ValueError(names.CLUSTER_NAME_RULE)
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        if find_backend(v) is None:
            *first, last = BACKENDS
            raise ValueError(f"input should be {', '.join(repr(b) for b in first)} or {last!r}")
        return v

    @field_validator("node_prefix")
    @classmethod
    def _node_prefix(cls, v: str) -> str:
        if not names.NODE_PREFIX.fullmatch(v):
            raise ValueError("must be lowercase letters and digits, starting with a letter, <= 16 chars")
        if names.RESERVED_NODE_PREFIX.fullmatch(v):
            raise ValueError(f"{v!r} is taken by another component's names")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if v and not names.SCOPE.fullmatch(v):
            raise ValueError("must be letters, digits, '_', '.' and '-', <= 64 chars")
        return v

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, v: int) -> int:
        if not 1 <= v <= MAX_NODES:
            raise ValueError(f"must be between 1 and {MAX_NODES}")
        return v

    @field_validator("host", "node_host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            address = ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 address") from None
        if not address.is_loopback:
            raise ValueError("clients and local components bind loopback only (127.0.0.0/8)")
        return v

    @field_validator("base_port")
    @classmethod
    def _base_port(cls, v: int) -> int:
        if not 1024 <= v <= 65000:
            raise ValueError("must be between 1024 and 65000")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        p = self.ports
        if len(p.postgres) != self.nodes or len(p.rest) != self.nodes:
            raise ValueError("ports: need one postgres and one rest port per node")
        if len(p.dcs_client) != self.dcs.members or len(p.dcs_peer) != self.dcs.members:
            raise ValueError("ports: need one dcs_client and one dcs_peer port per DCS member")
        if HAS_ELECTION_PORT[self.dcs.kind] and len(p.dcs_election) != self.dcs.members:
            raise ValueError(f"ports: {self.dcs.kind} needs one dcs_election port per member")
        if self.engine is not None and not backend_kind(self.backend).runs_containers:
            raise ValueError(f"engine: {self.engine} runs containers; it needs backend compose, not {self.backend}")
        if self.backup.enabled and not backend_kind(self.backend).keeps_backups:
            raise ValueError(f"backup.enabled: the {self.backend} backend keeps no backup repository yet "
                             f"(backends that do: {', '.join(b for b, k in BACKENDS.items() if k.keeps_backups)})")
        if self.fencing.enabled and not backend_kind(self.backend).fences:
            raise ValueError(f"fencing.enabled: the {self.backend} backend has no fence yet "
                             f"(backends that do: {', '.join(b for b, k in BACKENDS.items() if k.fences)})")
        if self.monitoring.enabled and not backend_kind(self.backend).monitors:
            raise ValueError(f"monitoring.enabled: not built for the {self.backend} backend yet "
                             f"(backends that have it: {', '.join(b for b, k in BACKENDS.items() if k.monitors)})")
        if self.monitoring.enabled and p.monitoring is None:
            raise ValueError("ports.monitoring: required when monitoring.enabled is on")
        if self.fencing.enabled and self.dcs.kind != "etcd":
            raise ValueError("fencing.enabled: the guards hold their key under an etcd lease; "
                             f"not built for {self.dcs.kind} yet")
        if self.restore_from is not None and not self.backup.enabled:
            raise ValueError("restore_from: a restored cluster reads its source's repository through pgBackRest; "
                             "it needs backup.enabled")
        if self.backup.enabled and str(self.patroni.parameters.get("archive_mode", "off")) != "off":
            raise ValueError("backup.enabled: pgBackRest archives the WAL itself; drop patroni.parameters.archive_mode")
        if self.haproxy.hosts > 1 and not backend_kind(self.backend).hosts_of_their_own:
            raise ValueError("haproxy.hosts: more than one HAProxy needs hosts of their own (backend netns)")
        if len(p.entrypoint_rw_more) != self.haproxy.hosts - 1:
            raise ValueError("ports.entrypoint_rw_more: need one port per HAProxy host after the first")
        if len(p.pooler) != (self.haproxy.hosts if self.pooler.enabled else 0):
            raise ValueError("ports.pooler: need one port per HAProxy host with the pooler, none without it")
        if self.haproxy.readonly_port and p.entrypoint_ro is None:
            raise ValueError("ports.entrypoint_ro: required when haproxy.readonly_port is on")
        seen: dict[int, str] = {}
        for what, port in p.all():
            if not 1024 <= port <= 65535:
                raise ValueError(f"ports.{what}: {port} is outside 1024-65535")
            if port in seen:
                raise ValueError(f"ports.{what}: {port} is also used by {seen[port]}")
            seen[port] = what
        return self

    # Derived names, so every module spells them the same way.
    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(f"{self.node_prefix}{i}" for i in range(self.nodes))

    @property
    def patroni_scope(self) -> str:
        return self.scope or self.name

    def node_index(self, name: str) -> int:
        try:
            return self.node_names.index(name)
        except ValueError:
            raise SpecError(f"node: no node named {name!r} (nodes: {', '.join(self.node_names)})") from None


# --- profiles -----------------------------------------------------------------------------------

_LAB_POSTGRES_PARAMETERS: dict[str, str | int | bool] = {
    "wal_level": "replica",
    "hot_standby": "on",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_log_hints": "on",
    # The lab's wal_keep_segments: 8 (of 16 MiB each), renamed on PostgreSQL 13+.
    "wal_keep_size": "128MB",
    "archive_mode": "always",
}


def _profile_defaults(profile: str) -> dict[str, Any]:
    if profile == "seed":
        return {
            "profile": "seed",
            "nodes": 2,
            "node_prefix": "postgresql",
            "scope": "my_cluster",
            # The lab as published: an open DCS.
            "dcs": {"kind": "zookeeper", "members": 1, "authentication": False},
            # The settings' own defaults are the lab's values (PatroniSettings, HAProxySettings:
            # ttl 30, loop_wait 10, retry_timeout 10, ...); the lab sets only these beyond them.
            "patroni": {"parameters": dict(_LAB_POSTGRES_PARAMETERS)},
            "haproxy": {
                "check": "lab",
                "inter_ms": 3000,
                "fall": 3,
                "rise": 2,
                "readonly_port": False,
                "maxconn": 100,
                "timeout_connect_ms": 4000,
                "timeout_check_ms": 5000,
            },
            "pooler": {"enabled": False},
            "backup": {"enabled": False},
        }
    if profile == "default":
        return {
            "profile": "default",
            "nodes": 3,
            "node_prefix": "node",
            "dcs": {"kind": "etcd", "members": 3},
            "patroni": {
                # The fastest timings Patroni accepts that stayed stable under load here
                # (bench/up.py and bench/failover.py measure them).
                "ttl": 20,
                "loop_wait": 1,
                "retry_timeout": 5,
                "maximum_lag_on_failover": 1024 * 1024,
                "primary_start_timeout": 30,
                "synchronous_mode": True,
                "synchronous_mode_strict": False,
                "failsafe_mode": True,
                "use_pg_rewind": True,
                "use_slots": True,
                # The lab's replication settings, without its WAL archive that nothing restores from.
                "parameters": {k: v for k, v in _LAB_POSTGRES_PARAMETERS.items() if k != "archive_mode"},
            },
            "haproxy": {
                "check": "role",
                "inter_ms": 1000,
                "fastinter_ms": 500,
                # A DOWN server is checked twice a second, so a new primary is found sooner.
                "downinter_ms": 500,
                "fall": 2,
                "rise": 1,
                "shutdown_sessions": True,
                "readonly_port": True,
                "maxconn": 1000,
                "timeout_connect_ms": 2000,
                "timeout_check_ms": 1000,
                "push_routing": True,
            },
            # Planned hand-overs pause it, so clients wait instead of failing.
            "pooler": {"enabled": True},
        }
    raise SpecError(f"profile: unknown profile {profile!r} (choose from {', '.join(PROFILES)})")


def plan_ports(profile: str, base_port: int, nodes: int, dcs_kind: str, dcs_members: int,
               readonly_port: bool, haproxy_hosts: int = 1, pooler: bool = False,
               monitoring: bool = False) -> dict[str, Any]:
    """Every port of a cluster as a function of its base port.

    The seed profile keeps the lab's ports (5432, 5433+, 8008+, 7000, 2181) shifted by
    base_port - 5432; the default profile packs a cluster into [base_port, base_port + 60),
    so clusters whose base ports differ by 100 never collide.
    """
    n, m = range(nodes), range(dcs_members)
    if profile == "seed":
        off = base_port - LAB_BASE_PORT
        return {
            "entrypoint_rw": base_port,
            "entrypoint_ro": (base_port + 20) if readonly_port else None,
            "stats": HAPROXY_STATS_PORT + off,
            "postgres": [LAB_POSTGRES_PORT + off + i for i in n],
            "rest": [REST_PORT + off + i for i in n],
            # The lab's ZooKeeper ports, whichever DCS a seed cluster is given.
            "dcs_client": [ZK_CLIENT_PORT + off + i for i in m],
            "dcs_peer": [ZK_PEER_PORT + off + i for i in m],
            "dcs_election": [ZK_ELECTION_PORT + off + i for i in m] if HAS_ELECTION_PORT.get(dcs_kind, False) else [],
            "entrypoint_rw_more": [base_port + 40 + k for k in range(haproxy_hosts - 1)],
            # PgBouncer's customary port, shifted like the others.
            "pooler": [POOLER_PORT + off + k for k in range(haproxy_hosts)] if pooler else [],
        }
    b = base_port
    return {
        "entrypoint_rw": b,
        "entrypoint_ro": b + 1 if readonly_port else None,
        "stats": b + 2,
        "postgres": [b + 10 + i for i in n],
        "rest": [b + 20 + i for i in n],
        "dcs_client": [b + 30 + i for i in m],
        "dcs_peer": [b + 40 + i for i in m],
        "dcs_election": [b + 50 + i for i in m] if HAS_ELECTION_PORT.get(dcs_kind, False) else [],
        "entrypoint_rw_more": [b + 3 + k for k in range(haproxy_hosts - 1)],
        "pooler": [b + 5 + k for k in range(haproxy_hosts)] if pooler else [],
        "monitoring": b + 8 if monitoring else None,
    }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "ports":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(err: ValidationError) -> str:
    """The first problem as one line: `field.path: rule`."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    error_type, ctx = first["type"], first.get("ctx") or {}
    if error_type == "greater_than_equal":
        msg = f"must be >= {ctx['ge']}"
    elif error_type == "less_than_equal":
        msg = f"must be <= {ctx['le']}"
    elif error_type == "extra_forbidden":
        msg = "unknown setting"
    elif error_type == "value_error":
        msg = str(ctx.get("error", first["msg"]))
    else:
        msg = first["msg"][0].lower() + first["msg"][1:]
    return f"{loc}: {msg}" if loc else msg


def load_spec_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML file, or a one-line SpecError for anything that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise SpecError(f"config: {path} does not exist") from None
    except IsADirectoryError:
        raise SpecError(f"config: {path} is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise SpecError(f"config: {path} is not a text file (not UTF-8)") from None
    except OSError as e:
        raise SpecError(f"config: cannot read {path}: {e.strerror or e.__class__.__name__}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"config: {path} is not valid YAML{where}") from None
    except RecursionError:
        raise SpecError(f"config: {path} nests too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"config: {path} must be a mapping of settings")
    return data


# Sections of a spec that hold settings of their own: each must be a mapping.
_SECTIONS = ("dcs", "patroni", "haproxy", "pooler", "backup", "fencing", "monitoring", "ports")


def _check_sections(settings: dict[str, Any]) -> None:
    for key in settings:
        if not isinstance(key, str):
            raise SpecError(f"{key!r}: setting names must be strings")
    for section in _SECTIONS:
        value = settings.get(section)
        if value is not None and not isinstance(value, dict):
            raise SpecError(f"{section}: must be a mapping of settings, not {type(value).__name__}")


def build_spec(profile: str | None = None, file_settings: dict[str, Any] | None = None,
               overrides: dict[str, Any] | None = None) -> Spec:
    """Profile, then file, then flags; ports planned unless given. Raises SpecError."""
    file_settings = dict(file_settings or {})
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_sections(file_settings)
    _check_sections(overrides)
    chosen = overrides.get("profile") or file_settings.get("profile") or profile or "default"
    if not isinstance(chosen, str):
        raise SpecError("profile: must be a string")
    merged = _merge(_merge(_profile_defaults(chosen), file_settings), overrides)
    merged["profile"] = chosen
    given_hap = {**(file_settings.get("haproxy") or {}), **(overrides.get("haproxy") or {})}
    backend = find_backend(merged.get("backend"))
    if backend is not None and backend.default_haproxy_hosts > 1 and chosen == "default" \
            and "hosts" not in given_hap:
        # Hosts of their own allow what one machine cannot: no single HAProxy to lose.
        merged["haproxy"] = {**merged.get("haproxy", {}), "hosts": backend.default_haproxy_hosts}
    given_backup = {**(file_settings.get("backup") or {}), **(overrides.get("backup") or {})}
    if chosen == "default" and "enabled" not in given_backup:
        # Every default cluster archives its WAL and is backed up, where its backend keeps a
        # repository (pgha.model.backend_kinds); a user may still say no.
        where_backup = find_backend(merged.get("backend", "local"))  # the Spec's own default backend
        merged["backup"] = {**merged.get("backup", {}),
                            "enabled": bool(where_backup is not None and where_backup.keeps_backups)}
    given_fencing = {**(file_settings.get("fencing") or {}), **(overrides.get("fencing") or {})}
    if chosen == "default" and "enabled" not in given_fencing:
        # A lost primary replaced in seconds, where the backend can fence and the DCS is etcd.
        where_fence = find_backend(merged.get("backend", "local"))
        merged["fencing"] = {**merged.get("fencing", {}), "enabled": bool(
            where_fence is not None and where_fence.fences and merged.get("dcs", {}).get("kind", "etcd") == "etcd")}
    given_monitoring = {**(file_settings.get("monitoring") or {}), **(overrides.get("monitoring") or {})}
    if chosen == "default" and "enabled" not in given_monitoring:
        # Every default cluster is watched and alerts, where its backend runs Prometheus.
        where_monitor = find_backend(merged.get("backend", "local"))
        merged["monitoring"] = {**merged.get("monitoring", {}),
                                "enabled": bool(where_monitor is not None and where_monitor.monitors)}
    if "tls" not in merged:
        # The lab as published has no TLS; the default profile has it wherever hosts talk over
        # a network, and with ZooKeeper everywhere (its ACLs need client certificates), and a
        # user may still ask for it (or not).
        dcs_given = merged.get("dcs", {})
        zk_auth = dcs_given.get("kind") == "zookeeper" and dcs_given.get("authentication", True) is not False
        where = find_backend(merged.get("backend", "local"))  # the Spec's own default backend
        merged["tls"] = bool(chosen == "default" and where is not None and (where.tls_by_default or zk_auth))
    try:
        nodes = int(merged.get("nodes", 3))
        dcs = merged.get("dcs", {})
        members = int(dcs.get("members", 1))
        hosts = int(merged.get("haproxy", {}).get("hosts", 1))
        # Out-of-range counts get no plan (validation names them): a huge one would plan forever.
        planned = plan_ports(
            chosen,
            int(merged.get("base_port", LAB_BASE_PORT)),
            nodes,
            str(dcs.get("kind", "etcd")),
            members,
            bool(merged.get("haproxy", {}).get("readonly_port", False)),
            hosts,
            bool(merged.get("pooler", {}).get("enabled", False)),
            bool(merged.get("monitoring", {}).get("enabled", False)),
        ) if 1 <= nodes <= MAX_NODES and 1 <= members <= 5 and 1 <= hosts <= 3 else {}
    except (TypeError, ValueError, AttributeError, OverflowError):
        planned = {}
    given_ports = merged.get("ports")
    if isinstance(given_ports, dict):
        merged["ports"] = {**planned, **given_ports}
    else:
        merged["ports"] = planned
    try:
        return Spec.model_validate(merged)
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None
