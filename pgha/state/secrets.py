"""Per-cluster passwords: generated once, kept in one file that only its owner can read."""

from __future__ import annotations

import secrets as _random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from pgha.state.files import write_file

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
REST_USER = "patroni"
STATS_USER = "admin"
# The least-privileged role clients (and drills) use: it owns its database and nothing else.
APP_USER = "app"
APP_DATABASE = "app"
# PgBouncer's admin console user (PAUSE, RESUME, SHOW): pgha's, for planned hand-overs.
POOLER_ADMIN = "pooler_admin"


@dataclass(frozen=True)
class Secrets:
    superuser_password: str
    replication_password: str
    rest_password: str
    stats_password: str
    # Empty in a secrets file an older pgha wrote, before these existed (load fills them in).
    app_password: str = ""
    dcs_root_password: str = ""  # etcd's root user (pgha/security/dcs_auth.py)
    dcs_password: str = ""  # Patroni's own etcd user, confined to the cluster's prefix
    pooler_admin_password: str = ""  # PgBouncer's admin console (POOLER_ADMIN)
    # The key pgBackRest encrypts the cluster's repository with: lose it and the backups are lost.
    backup_cipher_password: str = ""
    # The fencing guards' etcd user: reads the cluster's keys, may delete only its leader key.
    guard_dcs_password: str = ""

    @classmethod
    def generate(cls) -> Secrets:
        return cls(*(_random.token_urlsafe(18) for _ in fields(cls)))


def save(path: Path, value: Secrets) -> None:
    # Created 0600 from the start, so the passwords are never readable by others, even briefly.
    write_file(path, yaml.safe_dump(asdict(value)))


def load(path: Path) -> Secrets:
    """The passwords in path; one missing from a file an older pgha wrote is generated and saved."""
    value = Secrets(**yaml.safe_load(path.read_text()))
    fresh = Secrets.generate()
    missing = {k: getattr(fresh, k) for k, v in asdict(value).items() if not v}
    if missing:
        value = replace(value, **missing)
        save(path, value)
    return value


def load_or_create(path: Path) -> Secrets:
    if not path.exists():
        value = Secrets.generate()
        save(path, value)
        return value
    return load(path)
