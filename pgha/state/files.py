"""Files written with their final mode from the start (a password is never readable by others,
even for a moment)."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600


def write_file(path: Path, text: str, mode: int = PRIVATE) -> Path:
    """Create or replace `path` with `text`; the file has `mode` from its first byte on (and
    after, even if it existed with a looser mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def replace_file(path: Path, text: str, mode: int = PRIVATE) -> Path:
    """Replace `path` in one step (a temporary file renamed over it), keeping its owner: a
    running service that reads it at any moment (etcd at every TLS handshake) sees the old
    content or the new one, never half a file or a file it may not read."""
    try:
        st = os.stat(path)
        owner: tuple[int, int] | None = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        owner = None
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
