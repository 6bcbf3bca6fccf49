"""Spec -> one Patroni configuration per node (a plain dict, dumped as YAML by the caller)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pgha.model.spec import Spec
from pgha.model.topology import Topology
from pgha.render.backup import archive_command, archive_settings, replica_methods, restore_bootstrap, restore_command
from pgha.render.guard import wal_receiver_timeout_ms
from pgha.state.layout import Layout
from pgha.state.secrets import REPLICATION_USER, REST_USER, SUPERUSER, Secrets

LOG_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
PG_BIN_DIR = "/usr/lib/postgresql/15/bin"


def pg_hba(topo: Topology, tls: bool = False) -> list[str]:
    """Only the cluster's own addresses, only scram: no trust lines, no 0.0.0.0/0. Replication
    only from the database hosts; with TLS only encrypted connections (hostssl)."""
    host = "hostssl" if tls else "host"
    db_hosts = dict.fromkeys(f"{place.address}/32" for place in topo.nodes)
    if any(ipaddress.ip_address(place.address).is_loopback for place in topo.nodes):
        # On one machine's loopback, connections to the nodes' address come from 127.0.0.1.
        db_hosts.update(dict.fromkeys(topo.client_networks))
    lines = [
        "local all all scram-sha-256",
        *(f"{host} all all {net} scram-sha-256" for net in topo.client_networks),
        *(f"{host} replication {REPLICATION_USER} {net} scram-sha-256" for net in db_hosts),
    ]
    if tls:
        # Said outright, so `pgha check` (and a reader) sees that nothing unencrypted gets in.
        lines.append("hostnossl all all 0.0.0.0/0 reject")
    return lines


def tls_parameters(layout: Layout, node: str) -> dict[str, Any]:
    return {"ssl": "on", "ssl_cert_file": str(layout.tls_cert(node)), "ssl_key_file": str(layout.tls_key(node)),
            "ssl_ca_file": str(layout.tls_ca), "ssl_min_protocol_version": "TLSv1.2"}


def verify_full(layout: Layout) -> dict[str, str]:
    """How a node connects to another one's PostgreSQL: the CA's certificate, the name checked."""
    return {"sslmode": "verify-full", "sslrootcert": str(layout.tls_ca)}


def dynamic_settings(spec: Spec) -> dict[str, Any]:
    """What Patroni keeps in the DCS (bootstrap.dcs): one value for the whole cluster."""
    p = spec.patroni
    archiving = archive_settings(spec) if spec.backup.enabled else {}
    # With fencing, the replicas are the guard's second witness: their WAL receivers must give up
    # on a silent primary within the guard's threshold (a parameter the user set stays).
    receiver = {"wal_receiver_timeout": f"{wal_receiver_timeout_ms(spec.fencing.fence_after_s)}ms"} \
        if spec.fencing.enabled else {}
    return {
        "ttl": p.ttl,
        "loop_wait": p.loop_wait,
        "retry_timeout": p.retry_timeout,
        "maximum_lag_on_failover": p.maximum_lag_on_failover,
        "primary_start_timeout": p.primary_start_timeout,
        "synchronous_mode": p.synchronous_mode,
        "synchronous_mode_strict": p.synchronous_mode_strict,
        "failsafe_mode": p.failsafe_mode,
        "postgresql": {
            "use_pg_rewind": p.use_pg_rewind,
            "use_slots": p.use_slots,
            "parameters": {**receiver, **dict(p.parameters), **archiving},
        },
    }


def local_parameters(spec: Spec, layout: Layout, node: str, backup_config: Path | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "unix_socket_directories": str(layout.socket_dir),
        "password_encryption": "scram-sha-256",
        "logging_collector": "on",
        "log_directory": str(layout.logs),
        "log_filename": f"postgresql-{node}.log",
        "log_file_mode": "0640",
        "log_rotation_age": 0,
        "log_rotation_size": 0,
        "log_line_prefix": "%m [%p] ",
        "log_timezone": "UTC",
    }
    if str(spec.patroni.parameters.get("archive_mode", "off")) in ("on", "always"):
        # The lab's archive: kept beside the node's data, never restored from.
        archive = layout.wal_archive(node)
        params["archive_command"] = f"test ! -f {archive}/%f && cp %p {archive}/%f"
    if backup_config is not None:
        # Each node names its own pgBackRest configuration; only the primary archives (archive_mode on).
        params["archive_command"] = archive_command(backup_config, spec)
    return params


# pg_basebackup's options for a new replica (Patroni's postgresql.basebackup).
_FAST_BASEBACKUP: dict[str, Any] = {"basebackup": [{"checkpoint": "fast"}]}


def render_patroni(topo: Topology, layout: Layout, secrets: Secrets, node: str, dcs: dict[str, Any],
                   tls: bool = False, backup_config: Path | None = None) -> dict[str, Any]:
    """One node's configuration; `dcs` is Patroni's section for the DCS (the DCS kind renders it);
    `backup_config`: the node's pgBackRest configuration when the cluster archives its WAL."""
    spec = topo.spec
    place, ports = topo.node(node)
    host = place.address
    rest_auth = {"username": REST_USER, "password": secrets.rest_password}
    rest_tls: dict[str, Any] = {}
    ctl_tls: dict[str, Any] = {}
    pg_tls: dict[str, str] = {}
    if tls:
        own = {"certfile": str(layout.tls_cert(node)), "keyfile": str(layout.tls_key(node))}
        # optional: health checks (HAProxy) need no client certificate; unsafe methods need one
        # from the cluster's CA and the password.
        rest_tls = {**own, "cafile": str(layout.tls_ca), "verify_client": "optional"}
        ctl_tls = {**own, "cacert": str(layout.tls_ca)}
        pg_tls = verify_full(layout)
    config = {
        "scope": spec.patroni_scope,
        "namespace": "/service/",
        "name": node,
        "log": {"level": "INFO", "format": LOG_FORMAT},
        "restapi": {
            "listen": f"{host}:{ports.rest}",
            "connect_address": f"{host}:{ports.rest}",
            # Patroni asks for these credentials on unsafe methods (POST/PUT/PATCH/DELETE) only.
            "authentication": rest_auth,
            **rest_tls,
        },
        "ctl": {"authentication": dict(rest_auth), **ctl_tls},
        **dcs,
        "bootstrap": {
            "dcs": dynamic_settings(spec),
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums",
                       {"auth-local": "scram-sha-256"}, {"auth-host": "scram-sha-256"}],
        },
        "postgresql": {
            "listen": f"{host}:{ports.postgres}",
            "connect_address": f"{host}:{ports.postgres}",
            "data_dir": str(layout.pgdata(node)),
            "bin_dir": PG_BIN_DIR,
            "pgpass": str(layout.pgpass(node)),
            "authentication": {
                "superuser": {"username": SUPERUSER, "password": secrets.superuser_password, **pg_tls},
                "replication": {"username": REPLICATION_USER, "password": secrets.replication_password,
                                **pg_tls},
            },
            "parameters": {**local_parameters(spec, layout, node, backup_config),
                           **(tls_parameters(layout, node) if tls else {})},
            # A replica that fell behind what the primary still keeps fetches the WAL from the archive.
            **({"recovery_conf": {"restore_command": restore_command(backup_config, spec)}}
               if backup_config is not None else {}),
            "pg_hba": pg_hba(topo, tls),
            # A new replica's pg_basebackup starts with a checkpoint on the primary; a spread one
            # waits out checkpoint_completion_target (measured here: 95 s after the application
            # database was created at bootstrap, against under 1 s with this). The lab had none.
            **(_FAST_BASEBACKUP if spec.profile != "seed" else {}),
            **(replica_methods(backup_config, spec) if backup_config is not None else {}),
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
    if spec.restore_from is not None and backup_config is not None:
        config["bootstrap"].update(restore_bootstrap(spec, layout.pgbackrest_source_config(node)))
        # While it bootstraps from a backup, Patroni trusts only its connections from the node's
        # own address and socket (the restored pg_hba.conf is the source's); on loopback a TCP
        # connection to 127.0.1.1 comes from 127.0.0.1, so Patroni talks over the socket.
        config["postgresql"]["use_unix_socket"] = True
    return config
