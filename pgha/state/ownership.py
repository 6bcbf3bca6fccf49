"""Which directories are pgha's clusters, and the only way pgha deletes one.

A directory is a cluster only when it is a direct child of the clusters directory, is no symbolic
link, and holds pgha's marker naming that very cluster; `pgha up` writes the marker when it
creates the directory. Whatever else a name resolves to, pgha refuses to delete, so no name and
no planted link can turn `pgha down --purge` against data that is not the cluster's.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pgha.errors import PghaError
from pgha.model.names import cluster_name_problem

MARKER = ".pgha-cluster"


class NotOursError(PghaError):
    """A path pgha did not create: it reads it at most, and never deletes it."""


def _marker_text(name: str) -> str:
    return f"pgha cluster {name}\n"


def cluster_dir(home: Path, name: str) -> Path:
    """home/name for a valid cluster name (the only way a cluster's path is built)."""
    problem = cluster_name_problem(name)
    if problem is not None:
        raise NotOursError(f"name: {problem}")
    return home / name


def is_ours(home: Path, name: str) -> bool:
    try:
        owned_cluster_dir(home, name)
    except NotOursError:
        return False
    return True


def owned_cluster_dir(home: Path, name: str) -> Path:
    """The cluster's directory if pgha created it; otherwise NotOursError saying why not."""
    root = cluster_dir(home, name)
    if root.is_symlink():
        raise NotOursError(f"{root} is a symbolic link, not a directory pgha created")
    if not root.is_dir():
        raise NotOursError(f"{root} does not exist")
    if root.resolve().parent != home.resolve():
        raise NotOursError(f"{root} is not a directory of its own under {home}")
    marker = root / MARKER
    try:
        if marker.is_symlink() or marker.read_text() != _marker_text(name):
            raise NotOursError(f"{root} holds no pgha marker for cluster {name!r}, so pgha did not create it")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        raise NotOursError(f"{root} holds no pgha marker ({MARKER}), so pgha did not create it") from None
    return root


def create_cluster_dir(home: Path, name: str) -> Path:
    """Create home/name with its marker; refuse a directory that exists without one."""
    root = cluster_dir(home, name)
    home.mkdir(parents=True, exist_ok=True)
    try:
        root.mkdir()
    except FileExistsError:
        owned_cluster_dir(home, name)
        return root
    fd = os.open(root / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(_marker_text(name))
    return root


def remove_cluster_dir(home: Path, name: str) -> None:
    """Delete a cluster's directory, and only one pgha created (see owned_cluster_dir)."""
    root = owned_cluster_dir(home, name)
    # rmtree never follows symbolic links inside the tree: a link planted by the service user
    # is removed as a link, its target stays.
    shutil.rmtree(root)


# The one directory inside a cluster's that holds throw-away instances (pgha verify-backup).
SCRATCH = "scratch"
SCRATCH_INSTANCE = re.compile(r"[a-z0-9][a-z0-9_-]{0,80}")


def scratch_dir(home: Path, name: str, instance: str) -> Path:
    """<cluster>/scratch/<instance> of a cluster pgha created; `instance` is one plain name."""
    if not SCRATCH_INSTANCE.fullmatch(instance):
        raise NotOursError(f"{instance!r} is not a scratch instance's name")
    return owned_cluster_dir(home, name) / SCRATCH / instance


def remove_scratch_dir(home: Path, name: str, instance: str) -> None:
    """Delete one scratch instance of a cluster pgha created, never through a link."""
    path = scratch_dir(home, name, instance)
    parent = path.parent
    if parent.is_symlink() or path.is_symlink():
        raise NotOursError(f"{path} is reached through a symbolic link: pgha does not delete it")
    if path.exists():
        shutil.rmtree(path)


def set_aside(home: Path, name: str, path: Path, instance: str) -> bool:
    """Move `path`, a directory inside a cluster pgha created, to <cluster>/scratch/<instance>
    (a rename: nothing is copied or deleted); False when there was nothing at `path`. A scratch
    instance of that name left by an earlier run is removed first."""
    root = owned_cluster_dir(home, name)
    if root not in path.parents or path.is_symlink() or any(p.is_symlink() for p in path.parents if root in p.parents):
        raise NotOursError(f"{path} is not a directory inside cluster {name!r}: pgha does not move it")
    if not path.exists():
        return False
    dest = scratch_dir(home, name, instance)
    remove_scratch_dir(home, name, instance)
    dest.parent.mkdir(mode=0o700, exist_ok=True)
    path.rename(dest)
    return True


def put_back(home: Path, name: str, instance: str, path: Path) -> bool:
    """Undo set_aside: <cluster>/scratch/<instance> back to `path` (which must not exist);
    False when nothing was set aside under that name."""
    src = scratch_dir(home, name, instance)
    root = owned_cluster_dir(home, name)
    if root not in path.parents or path.is_symlink() or src.is_symlink() or src.parent.is_symlink():
        raise NotOursError(f"{path} is not a directory inside cluster {name!r}: pgha does not move it")
    if not src.exists():
        return False
    if path.exists():
        raise NotOursError(f"{path} exists: pgha does not put {src} over it")
    src.rename(path)
    return True
