"""A compose deployment on disk: write the rendered files into a directory, keeping the
passwords of an earlier render (the data volumes were initialised with them)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pgha.components.haproxy import ENV_STATS
from pgha.components.patroni import ENV_DCS, ENV_REPLICATION, ENV_REST, ENV_SUPERUSER
from pgha.deploy.compose_project import CONTAINER_UID, ENV_FILE, TLS_DIR, compose_spec, render_compose
from pgha.errors import PghaError
from pgha.model.names import IMAGE_REFERENCE
from pgha.model.spec import Spec
from pgha.model.topology import topology
from pgha.render import RenderedFile
from pgha.security import pki
from pgha.state.files import write_file
from pgha.state.secrets import Secrets


class DeployError(PghaError):
    """A deployment that cannot be written where it was asked for (one line)."""


def write_compose_deployment(spec: Spec, out_dir: Path, base_image: str | None) -> list[Path]:
    """`pgha render compose`: the deployment written into out_dir (empty, or holding an earlier
    render, whose passwords and certificates it keeps); the paths written."""
    if base_image is not None and not IMAGE_REFERENCE.fullmatch(base_image):
        raise DeployError(f"--base-image: {base_image!r} is not an image reference such as debian:bookworm-slim")
    if out_dir.exists() and not out_dir.is_dir():
        raise DeployError(f"--out: {out_dir} exists and is not a directory")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / ENV_FILE).exists():
        raise DeployError(f"--out: {out_dir} is not empty and holds no earlier deployment; pick an empty directory")
    # A re-render keeps the passwords: the data volumes were initialised with them.
    secrets = existing_secrets(out_dir) or Secrets.generate()
    try:
        # The CA and every certificate stay beside the deployment (pki/, kept out of the build
        # context), so a re-render keeps them.
        certificates = pki.ensure(out_dir / "pki", topology(compose_spec(spec))) if spec.tls else None
        written = write_files(out_dir, render_compose(spec, secrets, base_image, certificates))
        hand_tls_to_containers(out_dir)
    except OSError as e:
        raise DeployError(f"--out: cannot write {out_dir}: {e.strerror}") from None
    return written


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
