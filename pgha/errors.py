"""The one kind of error pgha shows a user: one line, and the log lines that explain it."""

from __future__ import annotations

from pathlib import Path


class PghaError(RuntimeError):
    """Every error meant for the user derives from this: the CLI prints its message as one line
    and exits 2. `log_tail` keeps the log lines that explain it, for callers that want them
    (the CLI does not print them: the message names the log instead)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def first_line(e: BaseException) -> str:
    """An exception's message as one line: its first, or its class's name when it says nothing."""
    text = str(e).strip().splitlines()
    return text[0] if text else e.__class__.__name__


class BackendError(PghaError):
    """A one-line reason why a backend (or the network under it) could not do what it was asked;
    defined here so that the layers under the backends can raise it too."""


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ("" if it does not exist yet)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
