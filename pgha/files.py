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
