"""pgha's own decisions, one sentence each, as Patroni logs one per HA loop: every module logs to
`logging.getLogger(__name__)` under the `pgha` logger; while an operation on a cluster runs, they go
to that cluster's `pgha.log` with a timestamp (the same format as Patroni's log, so `pgha report`
puts both on one timeline), and the CLI shows them under its spinner."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = "pgha"
# Patroni's own format (pgha.render.patroni.LOG_FORMAT) plus who decided.
FORMAT = "%(asctime)s %(levelname)s: %(message)s [%(name)s]"

_lock = threading.Lock()
_open: dict[Path, tuple[logging.Handler, int]] = {}


def _root() -> logging.Logger:
    logger = logging.getLogger(ROOT)
    logger.setLevel(logging.INFO)
    return logger


@contextlib.contextmanager
def journal(path: Path, ours: Callable[[], bool]) -> Iterator[None]:
    """Append pgha's decisions to `path` while the block runs (nested blocks share one handler).
    Only while `ours()` says the directory is a cluster pgha created (its marker): nothing is
    written into a directory pgha did not create, one not created yet, or one purged."""
    path = path.absolute()
    with _lock:
        handler, depth = _open.get(path, (None, 0))
        if handler is None:
            handler = _JournalHandler(path, ours)
            formatter = logging.Formatter(FORMAT)
            formatter.converter = time.gmtime  # UTC, as pgha report reads every log
            handler.setFormatter(formatter)
            _root().addHandler(handler)
        _open[path] = (handler, depth + 1)
    try:
        yield
    finally:
        with _lock:
            handler, depth = _open[path]
            if depth > 1:
                _open[path] = (handler, depth - 1)
            else:
                del _open[path]
                _root().removeHandler(handler)
                handler.close()


class _JournalHandler(logging.Handler):
    """Opens the file for every record: a cluster directory may be created or purged while an
    operation runs, and an open file would keep a deleted one alive."""

    def __init__(self, path: Path, ours: Callable[[], bool]) -> None:
        super().__init__(logging.INFO)
        self.path, self.ours = path, ours

    def emit(self, record: logging.LogRecord) -> None:
        if not self.ours():
            return
        line = (self.format(record) + "\n").encode()
        try:
            # Never through a link planted in the cluster's directory.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            self.handleError(record)


@contextlib.contextmanager
def shown_by(show: logging.Handler) -> Iterator[None]:
    """Also hand every decision to `show` (the CLI's spinner) while the block runs."""
    show.setLevel(logging.INFO)
    root = _root()
    root.addHandler(show)
    try:
        yield
    finally:
        root.removeHandler(show)
