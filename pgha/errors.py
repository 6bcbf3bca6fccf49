"""The one kind of error pgha shows a user: one line, and the log lines that explain it."""

from __future__ import annotations

from pathlib import Path


class PghaError(RuntimeError):
    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ("" if it does not exist yet)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
