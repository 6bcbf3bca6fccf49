"""Where a cluster's files live: one directory per cluster, laid out the same way every time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "pgha"


def default_home() -> Path:
    """The directory holding every cluster's directory.

    As root the clusters live under /var/lib/pgha, not /root, because /root is closed to the
    unprivileged user that PostgreSQL runs as.
    """
    env = os.environ.get("PGHA_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/pgha")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pgha"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def spec_file(self) -> Path:
        return self.root / "spec.json"

    @property
    def journal(self) -> Path:
        """pgha's own decisions about this cluster (pgha.state.journal)."""
        return self.root / "pgha.log"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.yml"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def runs(self) -> Path:
        """Drill run directories."""
        return self.root / "runs"

    def patroni_config(self, node: str) -> Path:
        return self.conf / f"patroni-{node}.yml"

    def pgdata(self, node: str) -> Path:
        return self.data / node

    def wal_archive(self, node: str) -> Path:
        return self.data / f"{node}-wal-archive"

    @property
    def backup(self) -> Path:
        """pgBackRest's repository and what pgha keeps beside it (pgha.render.backup)."""
        return self.root / "backup"

    @property
    def backup_repo(self) -> Path:
        return self.backup / "repo"

    @property
    def scratch(self) -> Path:
        """Throw-away instances (a backup restored to be verified); pgha.state.ownership removes them."""
        return self.root / "scratch"

    def pgbackrest_config(self, node: str) -> Path:
        return self.conf / f"pgbackrest-{node}.conf"

    def pgbackrest_source_config(self, node: str) -> Path:
        """pgBackRest's configuration for reading the repository a restored cluster came from."""
        return self.conf / f"pgbackrest-{node}-source.conf"

    def pgbackrest_pgpass(self, node: str) -> Path:
        """How pgBackRest, run by pgha, logs in to the node's PostgreSQL (the superuser's line)."""
        return self.run / f"pgpass-backup-{node}"

    def pgbackrest_run(self, node: str) -> Path:
        """pgBackRest's lock and spool files for one node."""
        return self.run / f"pgbackrest-{node}"

    def pgpass(self, node: str) -> Path:
        return self.run / f"pgpass-{node}"

    @property
    def socket_dir(self) -> Path:
        return self.run

    @property
    def last_leader_file(self) -> Path:
        """Which node was primary when the cluster was last stopped."""
        return self.run / "last-leader"

    @property
    def haproxy_config(self) -> Path:
        return self.conf / "haproxy.cfg"

    @property
    def haproxy_socket(self) -> Path:
        return self.run / "haproxy.sock"

    @property
    def pooler_config(self) -> Path:
        return self.conf / "pgbouncer.ini"

    @property
    def pooler_users(self) -> Path:
        """PgBouncer's auth_file: the users it admits, with their passwords (0600)."""
        return self.conf / "pgbouncer-users.txt"

    def dcs_config(self, member: int) -> Path:
        return self.conf / f"dcs-{member}.conf"

    def dcs_data(self, member: int) -> Path:
        return self.data / f"dcs-{member}"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pidfile(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    @property
    def pki(self) -> Path:
        """The cluster's CA and every certificate (pgha.security.pki): stays where pgha runs."""
        return self.root / "pki"

    @property
    def tls(self) -> Path:
        """A host's own certificate, key and the CA certificate it trusts."""
        return self.conf / "tls"

    @property
    def tls_ca(self) -> Path:
        return self.tls / "ca.crt"

    def tls_cert(self, name: str) -> Path:
        return self.tls / f"{name}.crt"

    def tls_key(self, name: str) -> Path:
        return self.tls / f"{name}.key"

    def tls_pem(self, name: str) -> Path:
        """Certificate and key in one file (HAProxy, ZooKeeper)."""
        return self.tls / f"{name}.pem"

    def dirs(self) -> list[Path]:
        return [self.root, self.conf, self.data, self.logs, self.run, self.runs]
