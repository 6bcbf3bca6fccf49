"""PgBouncer's admin console, from outside: is each pooler up and is it paused, and the pause
that planned hand-overs wrap around the switch (PAUSE on every pooler, bounded; RESUME after,
whatever happened in between)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import make_conninfo

from pgha.errors import PghaError
from pgha.net.dial import PgTarget
from pgha.net.reach import Reach
from pgha.state.secrets import POOLER_ADMIN

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3


class PoolerError(PghaError):
    """A pooler that would not pause or resume (one line)."""


@dataclass(frozen=True)
class PoolerState:
    # Whether it is paused is not among what PgBouncer 1.18 tells (SHOW STATE came later).
    name: str
    answered: bool
    version: str = ""
    error: str = ""
    # Clients waiting for a server connection (a pause left behind shows here; PgBouncer 1.18's
    # maxwait stays 0 for clients held by a pause, so only the count is told).
    waiting: int = 0


def admin_target(reach: Reach, password: str, k: int) -> PgTarget:
    ep = reach.pooler(k)
    tls = {"sslmode": "verify-full", "sslrootcert": reach.tls.ca} if reach.tls else {}
    dsn = make_conninfo(host=ep.host, port=ep.port, dbname="pgbouncer", user=POOLER_ADMIN, password=password,
                        connect_timeout=CONNECT_TIMEOUT_S, **tls)
    return PgTarget(dsn, ep.netns)


def _console(reach: Reach, password: str, k: int) -> psycopg.Connection[tuple[object, ...]]:
    # The console speaks the simple query protocol only, which psycopg uses for a query
    # without parameters.
    return admin_target(reach, password, k).connect(autocommit=True)


def states(reach: Reach, password: str) -> list[PoolerState]:
    out = []
    for k, place in enumerate(reach.topology.poolers):
        try:
            with _console(reach, password, k) as conn:
                version = conn.execute("SHOW VERSION").fetchone()
                cur = conn.execute("SHOW POOLS")
                names = [c.name for c in cur.description or []]
                pools = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except (psycopg.Error, OSError) as e:  # OSError: its namespace is gone
            out.append(PoolerState(place.name, False, error=_first_line(e)))
            continue
        waiting = sum(_count(p.get("cl_waiting")) for p in pools)
        out.append(PoolerState(place.name, True, str(version[0]) if version else "", waiting=waiting))
    return out


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or ["error"])[0]


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def resume(reach: Reach, password: str) -> list[str]:
    """RESUME every pooler; the problems, one per pooler that did not take it (an already
    running pooler is no problem)."""
    problems = []
    for k, place in enumerate(reach.topology.poolers):
        try:
            with _console(reach, password, k) as conn:
                conn.execute("RESUME")
        except (psycopg.Error, OSError) as e:  # one pooler out of reach stops no other's RESUME
            if "not paused" not in str(e):
                problems.append(f"{place.name}: {_first_line(e)}")
    return problems


@dataclass
class _Pause:
    """One pooler's PAUSE, told from its own thread."""

    outcome: str | None = "no answer"  # None: paused; else why not
    sent_at: float | None = None  # when the PAUSE went out (its console connected)
    finished: threading.Event = field(default_factory=threading.Event)


def _pause_one(reach: Reach, password: str, k: int, pause: _Pause) -> None:
    try:
        with _console(reach, password, k) as conn:
            pause.sent_at = time.monotonic()
            conn.execute("PAUSE")
        pause.outcome = None
    except (psycopg.Error, OSError) as e:
        pause.outcome = _first_line(e)
    finally:
        pause.finished.set()


def _abort(reach: Reach, password: str, pauses: list[_Pause]) -> None:
    """RESUME every pooler; and once more where a PAUSE went out after that RESUME (its console
    connected later than the timeout), which would otherwise hold its clients for good."""
    resumed_at = time.monotonic()
    resume(reach, password)
    # A pause still connecting either fails within its connect timeout or sends its PAUSE.
    settled = time.monotonic() + CONNECT_TIMEOUT_S + 1
    while any(p.sent_at is None and not p.finished.is_set() for p in pauses) and time.monotonic() < settled:
        time.sleep(0.01)
    late = [p for p in pauses if p.sent_at is not None and p.sent_at >= resumed_at]
    if late:
        for p in late:
            p.finished.wait(1.0)  # time for the PAUSE to reach PgBouncer before the RESUME does
        log.info("a pooler's PAUSE arrived after the RESUME that aborted the hand-over: resuming again")
        resume(reach, password)


@contextlib.contextmanager
def paused(reach: Reach, password: str, timeout: float) -> Iterator[None]:
    """Within the block every pooler holds new transactions (they wait, they do not fail) and has
    no server connection left: PAUSE returns once the transactions in flight have finished. A
    pooler that cannot pause within `timeout` (a transaction that runs on) aborts the block
    before it starts, with every pooler resumed. After the block, every pooler is resumed."""
    poolers = reach.topology.poolers
    if not poolers:
        yield
        return
    pauses = [_Pause() for _ in poolers]
    for k, pause in enumerate(pauses):
        threading.Thread(target=_pause_one, args=(reach, password, k, pause), daemon=True).start()
    deadline = time.monotonic() + timeout  # one timeout for all of them, not one each
    for pause in pauses:
        pause.finished.wait(max(0.0, deadline - time.monotonic()))
    failed = [(place.name, p.outcome) for place, p in zip(poolers, pauses, strict=True) if p.outcome is not None]
    if failed:
        _abort(reach, password, pauses)
        name, why = failed[0]
        if why == "no answer":
            why = f"transactions still running after {timeout:g} s"
        raise PoolerError(f"pooler {name} did not pause ({why}); every pooler resumed, nothing was changed")
    problems: list[str] = []
    try:
        yield
    finally:
        problems = resume(reach, password)
    # Only when the block succeeded: its own error says more.
    if problems:
        raise PoolerError(f"pooler did not resume: {problems[0]}")
