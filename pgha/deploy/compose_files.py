"""A compose deployment on disk: write the rendered files into a directory, keeping the
passwords of an earlier render (the data volumes were initialised with them)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pgha.components.haproxy import ENV_STATS
from pgha.components.patroni import ENV_DCS, ENV_REPLICATION, ENV_REST, ENV_SUPERUSER
from pgha.deploy.compose_project import CONTAINER_UID, ENV_FILE, TLS_DIR
from pgha.render import RenderedFile
from pgha.state.files import write_file
from pgha.state.secrets import Secrets


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file that pgha wrote (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def existing_secrets(directory: Path) -> Secrets | None:
    """The passwords in directory/.env, or None when there is no complete set."""
    try:
        env = read_env(directory / ENV_FILE)
    except FileNotFoundError:
        return None
    keys = (ENV_SUPERUSER, ENV_REPLICATION, ENV_REST, ENV_STATS)
    if not all(env.get(k) for k in keys):
        return None
    # A .env an older pgha wrote has no DCS password: a new one is generated for it.
    fresh = Secrets.generate()
    return replace(fresh, **dict(zip(("superuser_password", "replication_password", "rest_password",
                                       "stats_password"), (env[k] for k in keys), strict=True)),
                   dcs_password=env.get(ENV_DCS) or fresh.dcs_password)


def write_files(directory: Path, files: list[RenderedFile]) -> list[Path]:
    """Write each file under directory with its mode from the start (a password file is never
    readable by others, even briefly); returns the paths written."""
    written = []
    for f in files:
        path = directory / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_file(path, f.text, f.mode))
    return written


def hand_tls_to_containers(directory: Path) -> None:
    """The certificates compose mounts belong to the containers' postgres user (a fixed id):
    as root, chown them; otherwise the engine's user namespace must map it (rootless)."""
    tls = directory / TLS_DIR
    if os.geteuid() != 0 or not tls.is_dir():
        return
    for path in [tls, *tls.rglob("*")]:
        os.lchown(path, CONTAINER_UID, CONTAINER_UID)
