"""Per-cluster passwords: generated once, kept in one file that only its owner can read."""

from __future__ import annotations

import os
import secrets as _random
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
REST_USER = "patroni"
STATS_USER = "admin"


@dataclass(frozen=True)
class Secrets:
    superuser_password: str
    replication_password: str
    rest_password: str
    stats_password: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(*(_random.token_urlsafe(18) for _ in range(4)))


def save(path: Path, value: Secrets) -> None:
    # Created 0600 from the start, so the passwords are never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(asdict(value), f)
    os.chmod(path, 0o600)


def load(path: Path) -> Secrets:
    data = yaml.safe_load(path.read_text())
    return Secrets(**data)


def load_or_create(path: Path) -> Secrets:
    if path.exists():
        return load(path)
    value = Secrets.generate()
    save(path, value)
    return value
