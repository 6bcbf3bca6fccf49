"""pgBackRest's configuration for one node, and the commands Patroni gives PostgreSQL to archive
and fetch WAL through it; pure.

One repository per cluster, one stanza named after the cluster, encrypted with the cluster's own
key (secrets.yml). Every node has its own configuration file naming its own data directory, so
the same command works on whichever node is primary, and a node's archive_command needs nothing
but that file. Where the nodes share a machine (local), the repository is a directory they write;
where they are hosts of their own (netns with TLS), it is on a repository host of its own that
they reach through pgBackRest's TLS server, which alone holds the encryption key and takes the
backups through a pgBackRest TLS server beside each node, as on real machines.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgha.model.ports import PGBACKREST_TLS_PORT
from pgha.model.spec import Spec
from pgha.model.topology import REPOSITORY
from pgha.state.layout import Layout
from pgha.state.secrets import SUPERUSER, Secrets

PGBACKREST_BIN = "/usr/bin/pgbackrest"
CIPHER = "aes-256-cbc"


def stanza(spec: Spec) -> str:
    """The stanza of a cluster's repository: its name (validated: letters, digits, '-')."""
    return spec.name


def pgbackrest_config(spec: Spec, layout: Layout, secrets: Secrets, node: str, repo: Path, port: int,
                      stanza_name: str | None = None) -> str:
    """pgbackrest.conf for one node: the repository (encrypted, with its retention) and the node's
    own PostgreSQL, reached over its Unix socket (no password on the command line, no network).
    `stanza_name`: another cluster's (a restore reads the source's repository; the key is the same,
    as a restored cluster keeps its source's secrets)."""
    b = spec.backup
    glob = {
        "repo1-path": str(repo),
        "repo1-cipher-type": CIPHER,
        "repo1-cipher-pass": secrets.backup_cipher_password,
        "repo1-retention-full": str(b.retention_full),
        "compress-type": b.compress,
        "log-path": str(layout.logs / f"pgbackrest-{node}"),
        "log-level-console": "warn",
        "log-level-file": "info",
        "lock-path": str(layout.pgbackrest_run(node)),
        "spool-path": str(layout.pgbackrest_run(node)),
        # A backup starts with an immediate checkpoint instead of waiting out a spread one.
        "start-fast": "y",
        # Restores into a directory that has files reuse what matches.
        "delta": "y",
        "process-max": "2",
    }
    own = {
        "pg1-path": str(layout.pgdata(node)),
        "pg1-port": str(port),
        "pg1-socket-path": str(layout.socket_dir),
        "pg1-user": SUPERUSER,
    }
    return _ini({"global": glob, stanza_name or stanza(spec): own})


@dataclass(frozen=True)
class TlsFiles:
    """A host's certificate, key and the CA it trusts, as pgBackRest's options name them."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def of(cls, layout: Layout, name: str) -> TlsFiles:
        return cls(layout.tls_cert(name), layout.tls_key(name), layout.tls_ca)


@dataclass(frozen=True)
class NodeSeen:
    """A node as the repository host reaches it: by the name of the server beside it (pgBackRest
    verifies a peer's certificate by DNS name, never by address), and its PostgreSQL's files."""

    name: str
    agent: str  # the host name of the pgBackRest server beside it (its certificate's DNS name)
    data: Path
    port: int
    socket_dir: Path
    agent_config: Path  # the configuration file of the server beside it, on its host


def _local_paths(layout: Layout, name: str) -> dict[str, str]:
    return {"log-path": str(layout.logs / f"pgbackrest-{name}"), "log-level-console": "warn",
            "log-level-file": "info", "lock-path": str(layout.pgbackrest_run(name)),
            "spool-path": str(layout.pgbackrest_run(name))}


def _tls_server(address: str, tls: TlsFiles, clients: list[str], stanza_name: str) -> dict[str, str | list[str]]:
    """pgBackRest's TLS server: verified client certificates only, each CN admitted to the stanza."""
    return {"tls-server-address": address, "tls-server-port": str(PGBACKREST_TLS_PORT),
            "tls-server-cert-file": str(tls.cert), "tls-server-key-file": str(tls.key),
            "tls-server-ca-file": str(tls.ca), "tls-server-auth": [f"{c}={stanza_name}" for c in clients]}


def repository_host_config(spec: Spec, layout: Layout, secrets: Secrets, repo: Path, address: str,
                           tls: TlsFiles, nodes: list[NodeSeen]) -> str:
    """pgbackrest.conf of the repository host: the repository (encrypted: only this host holds the
    key), its TLS server for the nodes' archive-push/archive-get/restore, and every node, reached
    through the pgBackRest TLS server beside it, for backups (which pgBackRest runs here)."""
    b = spec.backup
    name = stanza(spec)
    glob: dict[str, str | list[str]] = {
        "repo1-path": str(repo), "repo1-cipher-type": CIPHER, "repo1-cipher-pass": secrets.backup_cipher_password,
        "repo1-retention-full": str(b.retention_full), "compress-type": b.compress,
        **_local_paths(layout, REPOSITORY), "start-fast": "y", "process-max": "2",
        **_tls_server(address, tls, [n.name for n in nodes], name),
    }
    pgs: dict[str, str | list[str]] = {}
    for i, n in enumerate(nodes, start=1):
        pgs |= {f"pg{i}-host": n.agent, f"pg{i}-host-type": "tls", f"pg{i}-host-port": str(PGBACKREST_TLS_PORT),
                f"pg{i}-host-cert-file": str(tls.cert), f"pg{i}-host-key-file": str(tls.key),
                f"pg{i}-host-ca-file": str(tls.ca), f"pg{i}-host-config": str(n.agent_config),
                f"pg{i}-path": str(n.data), f"pg{i}-port": str(n.port),
                f"pg{i}-socket-path": str(n.socket_dir), f"pg{i}-user": SUPERUSER}
    if len(nodes) > 1:
        # Files copied from a standby; only starting and stopping the backup touch the primary.
        pgs["backup-standby"] = "y"
    return _ini({"global": glob, name: pgs})


def node_tls_config(spec: Spec, layout: Layout, node: str, port: int, repository: str, repository_config: Path,
                    tls: TlsFiles) -> str:
    """pgbackrest.conf of a node whose repository is on the repository host: archive-push,
    archive-get and restore go there over TLS with the node's own certificate (the server there
    reads `repository_config`, which holds the repository and its key)."""
    glob: dict[str, str | list[str]] = {
        "repo1-host": repository, "repo1-host-type": "tls", "repo1-host-port": str(PGBACKREST_TLS_PORT),
        "repo1-host-config": str(repository_config),
        "repo1-host-cert-file": str(tls.cert), "repo1-host-key-file": str(tls.key),
        "repo1-host-ca-file": str(tls.ca), "compress-type": spec.backup.compress,
        **_local_paths(layout, node), "delta": "y", "process-max": "2",
    }
    own: dict[str, str | list[str]] = {"pg1-path": str(layout.pgdata(node)), "pg1-port": str(port),
                                       "pg1-socket-path": str(layout.socket_dir), "pg1-user": SUPERUSER}
    return _ini({"global": glob, stanza(spec): own})


def agent_config(spec: Spec, layout: Layout, name: str, address: str, tls: TlsFiles) -> str:
    """pgbackrest.conf of the TLS server beside a node: only the repository host may connect (it
    sends the node's options itself); it logs and locks in its own directories."""
    glob = {**_local_paths(layout, name), **_tls_server(address, tls, [REPOSITORY], stanza(spec))}
    return _ini({"global": glob})


def _ini(sections: Mapping[str, Mapping[str, str | list[str]]]) -> str:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for k, v in values.items():
            lines += [f"{k}={x}" for x in v] if isinstance(v, list) else [f"{k}={v}"]
        lines.append("")
    return "\n".join(lines)


def pgbackrest_argv(config: Path, spec: Spec, *command: str, program: str = PGBACKREST_BIN) -> list[str]:
    return [program, f"--config={config}", f"--stanza={stanza(spec)}", *command]


def archive_command(config: Path, spec: Spec) -> str:
    return f"{shlex.join(pgbackrest_argv(config, spec, 'archive-push'))} \"%p\""


def restore_command(config: Path, spec: Spec) -> str:
    return f"{shlex.join(pgbackrest_argv(config, spec, 'archive-get'))} %f \"%p\""


RESTORE_METHOD = "pgbackrest_restore"


def restore_bootstrap(spec: Spec, source_config: Path) -> dict[str, Any]:
    """Patroni's bootstrap section for a cluster restored from another's repository: the first
    node's data directory comes from the source's newest backup before the target, then
    PostgreSQL replays the source's archived WAL to the target and promotes (a new timeline; the
    source's repository is only read). pgBackRest writes no recovery settings (type none):
    Patroni writes them from recovery_conf, and drops them once the node is promoted, so no
    replica of the new cluster ever fetches WAL from the source's archive."""
    src = spec.restore_from
    assert src is not None
    command = [PGBACKREST_BIN, f"--config={source_config}", f"--stanza={src.cluster}", "--type=none",
               "--no-delta", "restore"]
    fetch = f"{shlex.join([PGBACKREST_BIN, f'--config={source_config}', f'--stanza={src.cluster}', 'archive-get'])}" \
            f" %f \"%p\""
    recovery: dict[str, Any] = {"restore_command": fetch, "recovery_target_timeline": "latest"}
    if src.target == "time":
        recovery |= {"recovery_target_time": src.to, "recovery_target_action": "promote"}
    elif src.target == "lsn":
        recovery |= {"recovery_target_lsn": src.to, "recovery_target_action": "promote"}
    return {"method": RESTORE_METHOD,
            RESTORE_METHOD: {"command": shlex.join(command), "no_params": True, "recovery_conf": recovery}}


def replica_methods(config: Path, spec: Spec) -> dict[str, Any]:
    """Patroni's postgresql section for new replicas: restored from the repository's newest backup
    (then the archive and streaming close the gap), which spares the primary a full copy; with no
    backup yet (a new cluster's first minute) pgBackRest fails at once and pg_basebackup follows.
    While a cluster is being restored, pg_basebackup only: the repository's newest backup may be
    on the timeline the restore branches from, and a replica restored from it would replay that
    timeline's archived WAL past the branch point before it ever saw the new one."""
    if spec.restore_from is not None:
        return {"create_replica_methods": ["basebackup"]}
    restore = pgbackrest_argv(config, spec, "--type=standby", "restore")
    return {"create_replica_methods": ["pgbackrest", "basebackup"],
            "pgbackrest": {"command": shlex.join(restore), "keep_data": True, "no_params": True}}


def archive_settings(spec: Spec) -> dict[str, Any]:
    """What every node shares (Patroni's dynamic configuration)."""
    return {"archive_mode": "on", "archive_timeout": f"{spec.backup.archive_timeout_s}s"}


def backup_pgpass(port: int | str, password: str) -> str:
    """The superuser's line for pgBackRest's libpq (or pgha's, on a scratch instance), on one port
    (or "*")."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:{port}:*:{SUPERUSER}:{escaped}\n"
