"""PgBouncer's admin console, from outside: is each pooler up and is it paused, and the pause
that planned hand-overs wrap around the switch (PAUSE on every pooler, bounded; RESUME after,
whatever happened in between)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from pgha.errors import PghaError
from pgha.net.dial import PgTarget
from pgha.net.reach import Reach
from pgha.state.secrets import POOLER_ADMIN

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
        except psycopg.Error as e:
            out.append(PoolerState(place.name, False, error=str(e).strip().splitlines()[0] if str(e) else "error"))
            continue
        waiting = sum(_count(p.get("cl_waiting")) for p in pools)
        out.append(PoolerState(place.name, True, str(version[0]) if version else "", waiting=waiting))
    return out


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
        except psycopg.Error as e:
            text = str(e).strip()
            if "not paused" not in text:
                problems.append(f"{place.name}: {text.splitlines()[0] if text else 'error'}")
    return problems


def _pause_one(reach: Reach, password: str, k: int, done: list[str | None]) -> None:
    try:
        with _console(reach, password, k) as conn:
            conn.execute("PAUSE")
        done[k] = None
    except psycopg.Error as e:
        done[k] = str(e).strip().splitlines()[0] if str(e) else "error"


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
    outcome: list[str | None] = ["no answer"] * len(poolers)
    threads = [threading.Thread(target=_pause_one, args=(reach, password, k, outcome), daemon=True)
               for k in range(len(poolers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    failed = [(place.name, why) for place, why in zip(poolers, outcome, strict=True) if why is not None]
    if failed:
        resume(reach, password)
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
