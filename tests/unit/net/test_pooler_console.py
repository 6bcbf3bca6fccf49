"""PgBouncer's admin console from outside (pgha.net.pooler_console), against fake consoles: who
answers, the PAUSE around a hand-over and the RESUME after it. No server, no namespace."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgha.model.spec import build_spec
from pgha.model.topology import topology
from pgha.net import pooler_console
from pgha.net.dial import ClientTls, Endpoint
from pgha.net.pooler_console import PoolerError, PoolerState, admin_target, paused, resume, states
from pgha.net.reach import Reach, own_namespace, same_host
from pgha.state.secrets import POOLER_ADMIN

PASSWORD = "adm'in pw"
NOT_PAUSED = "ERROR:  pooler is not paused/suspended"
REFUSED = ('connection failed: connection to server at "198.18.0.31", port 6432 failed: Connection refused\n'
           "\tIs the server running on that host and accepting TCP/IP connections?")


def _netns_reach(tls: ClientTls | None = None) -> Reach:
    """Two HAProxy hosts, so two poolers: pooler (198.18.0.30) and pooler1 (198.18.0.31)."""
    topo = topology(build_spec("default", overrides={"backend": "netns", "name": "x", "base_port": 9432}))
    return Reach(topo, own_namespace, {}, tls)


def _local_reach(pooler: bool = True) -> Reach:
    topo = topology(build_spec("default", overrides={"name": "y", "base_port": 9432,
                                                     "pooler": {"enabled": pooler}}))
    return Reach(topo, same_host, {}, None)


# --- fakes ----------------------------------------------------------------------------------------


@dataclass
class _Column:
    name: str


class _Cursor:
    def __init__(self, rows: list[tuple[object, ...]], columns: tuple[str, ...] = ()) -> None:
        self.rows = rows
        self.description = [_Column(c) for c in columns] if columns else None

    def fetchone(self) -> tuple[object, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[object, ...]]:
        return self.rows


@dataclass
class _Pooler:
    """One PgBouncer's console. PAUSE takes effect at once and returns when no transaction is in
    flight any more, or when a RESUME cancels it; RESUME of a running pooler is an error."""

    name: str
    log: list[tuple[str, str]]
    version: str = "PgBouncer 1.18.0"
    pools: list[dict[str, object]] = field(default_factory=list)
    paused: bool = False
    in_flight: bool = False  # a transaction that runs on: PAUSE waits
    connect_error: str | None = None
    connect_delays: list[float] = field(default_factory=list)  # per connection, in order
    passwords: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def connect(self, password: str) -> _Conn:
        self.passwords.append(password)
        if self.connect_delays:
            time.sleep(self.connect_delays.pop(0))
        if self.connect_error is not None:
            raise psycopg.OperationalError(self.connect_error)
        return _Conn(self)

    def execute(self, query: str) -> _Cursor:
        with self.cond:
            self.log.append((query, self.name))
            if query == "PAUSE":
                self.paused = True
                self.cond.wait_for(lambda: not (self.in_flight and self.paused), timeout=5)
                return _Cursor([])
            if query == "RESUME":
                if not self.paused:
                    raise psycopg.errors.ProtocolViolation(NOT_PAUSED)
                self.paused = False
                self.cond.notify_all()
                return _Cursor([])
            if query == "SHOW VERSION":
                return _Cursor([(self.version,)], ("version",))
            if query == "SHOW POOLS":
                columns = ("database", "user", "cl_active", "cl_waiting")
                return _Cursor([tuple(p.get(c) for c in columns) for p in self.pools], columns)
            raise psycopg.errors.SyntaxError(f"unknown command {query!r}")


class _Conn:
    def __init__(self, pooler: _Pooler) -> None:
        self.pooler = pooler
        self.closed = False

    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def execute(self, query: str) -> _Cursor:
        assert not self.closed
        return self.pooler.execute(query)


class _Consoles:
    def __init__(self, reach: Reach) -> None:
        self.log: list[tuple[str, str]] = []
        self.poolers = [_Pooler(p.name, self.log) for p in reach.topology.poolers]

    def __call__(self, reach: Reach, password: str, k: int) -> _Conn:
        return self.poolers[k].connect(password)

    def commands(self, query: str) -> list[str]:
        return [name for q, name in self.log if q == query]


@pytest.fixture
def reach() -> Reach:
    return _netns_reach()


@pytest.fixture
def consoles(reach: Reach, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Consoles]:
    fake = _Consoles(reach)
    monkeypatch.setattr(pooler_console, "_console", fake)
    yield fake
    # No pause thread is left waiting on a fake console.
    for p in fake.poolers:
        with p.cond:
            p.in_flight = False
            p.cond.notify_all()


# --- the admin DSN --------------------------------------------------------------------------------


def test_admin_target_is_the_pgbouncer_database_as_the_admin_user() -> None:
    target = admin_target(_netns_reach(), PASSWORD, 1)
    assert target.netns == "/run/netns/pgha-x-haproxy1"
    assert conninfo_to_dict(target.dsn) == {"host": "198.18.0.31", "port": "6432", "dbname": "pgbouncer",
                                            "user": POOLER_ADMIN, "password": PASSWORD, "connect_timeout": "3"}


def test_admin_target_with_tls_verifies_the_pooler_against_the_ca() -> None:
    tls = ClientTls("/pki/ca.crt", "/pki/pgha.crt", "/pki/pgha.key")
    dsn = conninfo_to_dict(admin_target(_netns_reach(tls), PASSWORD, 0).dsn)
    assert (dsn["host"], dsn["port"]) == ("198.18.0.30", "6432")
    assert (dsn["sslmode"], dsn["sslrootcert"]) == ("verify-full", "/pki/ca.crt")
    # The console authenticates by password: no client certificate.
    assert "sslcert" not in dsn and "sslkey" not in dsn


def test_console_connects_in_autocommit_to_the_admin_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    sentinel = object()

    def connect(dsn: str, **kwargs: Any) -> object:
        calls.append((dsn, kwargs))
        return sentinel

    monkeypatch.setattr(psycopg, "connect", connect)
    reach = _local_reach()
    assert pooler_console._console(reach, PASSWORD, 0) is sentinel
    assert len(calls) == 1
    dsn, kwargs = calls[0]
    assert kwargs == {"autocommit": True}
    assert conninfo_to_dict(dsn)["host"] == "127.0.0.1" and conninfo_to_dict(dsn)["port"] == "9437"
    assert reach.pooler(0) == Endpoint("127.0.0.1", 9437)


# --- states ---------------------------------------------------------------------------------------


def test_states_tell_version_and_waiting_clients(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[0].pools = [{"database": "app", "user": "app", "cl_active": 1, "cl_waiting": 2},
                                 {"database": "postgres", "user": "x", "cl_active": 0, "cl_waiting": "3"},
                                 {"database": "pgbouncer", "user": "y", "cl_active": 0, "cl_waiting": None}]
    consoles.poolers[1].version = "PgBouncer 1.21.0"
    assert states(reach, PASSWORD) == [PoolerState("pooler", True, "PgBouncer 1.18.0", waiting=5),
                                       PoolerState("pooler1", True, "PgBouncer 1.21.0", waiting=0)]
    assert consoles.poolers[0].passwords == [PASSWORD] and consoles.poolers[1].passwords == [PASSWORD]


def test_states_count_only_what_is_a_count(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[0].pools = [{"cl_waiting": w} for w in (4, "-1", -2, "x", True, 1.5, "7")]
    assert states(reach, PASSWORD)[0].waiting == 11


def test_a_pooler_that_does_not_answer_is_down_with_its_first_error_line(reach: Reach,
                                                                          consoles: _Consoles) -> None:
    consoles.poolers[1].connect_error = REFUSED
    got = states(reach, PASSWORD)
    assert got[0] == PoolerState("pooler", True, "PgBouncer 1.18.0")
    assert got[1] == PoolerState("pooler1", False, error='connection failed: connection to server at '
                                 '"198.18.0.31", port 6432 failed: Connection refused')
    assert not got[1].answered and got[1].version == "" and got[1].waiting == 0


def test_a_pooler_failing_without_words_says_error(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[0].connect_error = ""
    assert states(reach, PASSWORD)[0] == PoolerState("pooler", False, error="error")


def test_no_pooler_no_state(monkeypatch: pytest.MonkeyPatch) -> None:
    reach = _local_reach(pooler=False)
    fake = _Consoles(reach)
    monkeypatch.setattr(pooler_console, "_console", fake)
    assert states(reach, PASSWORD) == []
    assert resume(reach, PASSWORD) == []
    with paused(reach, PASSWORD, 1.0):
        pass
    assert fake.log == []


# --- resume ---------------------------------------------------------------------------------------


def test_resume_resumes_the_paused_and_lets_running_ones_be(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[0].paused = True
    assert resume(reach, PASSWORD) == []
    assert consoles.commands("RESUME") == ["pooler", "pooler1"]
    assert [p.paused for p in consoles.poolers] == [False, False]


def test_resume_names_each_pooler_that_did_not_take_it(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[0].paused = True
    consoles.poolers[1].connect_error = REFUSED
    assert resume(reach, PASSWORD) == ['pooler1: connection failed: connection to server at "198.18.0.31", '
                                       "port 6432 failed: Connection refused"]
    assert consoles.poolers[0].paused is False
    consoles.poolers[1].connect_error = "  "
    assert resume(reach, PASSWORD) == ["pooler1: error"]


# --- paused ---------------------------------------------------------------------------------------


def test_paused_pauses_every_pooler_for_the_block_and_resumes_after(reach: Reach, consoles: _Consoles) -> None:
    with paused(reach, PASSWORD, 2.0):
        consoles.log.append(("BLOCK", "-"))
        assert [p.paused for p in consoles.poolers] == [True, True]
    assert [p.paused for p in consoles.poolers] == [False, False]
    block = consoles.log.index(("BLOCK", "-"))
    assert sorted(consoles.log[:block]) == [("PAUSE", "pooler"), ("PAUSE", "pooler1")]
    assert consoles.log[block + 1:] == [("RESUME", "pooler"), ("RESUME", "pooler1")]


def test_paused_resumes_when_the_block_fails_and_keeps_its_error(reach: Reach, consoles: _Consoles) -> None:
    with pytest.raises(ValueError, match="switchover failed"), paused(reach, PASSWORD, 2.0):
        raise ValueError("switchover failed")
    assert consoles.commands("RESUME") == ["pooler", "pooler1"]
    assert [p.paused for p in consoles.poolers] == [False, False]


def test_a_pooler_that_cannot_pause_in_time_aborts_before_the_block(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[1].in_flight = True
    ran = False
    start = time.monotonic()
    with pytest.raises(PoolerError) as info, paused(reach, PASSWORD, 0.2):
        ran = True
    assert time.monotonic() - start < 2
    assert not ran
    assert str(info.value) == ("pooler pooler1 did not pause (transactions still running after 0.2 s); "
                               "every pooler resumed, nothing was changed")
    assert "\n" not in str(info.value)
    assert sorted(consoles.commands("RESUME")) == ["pooler", "pooler1"]
    assert [p.paused for p in consoles.poolers] == [False, False]


def test_a_pooler_that_refuses_the_pause_aborts_with_its_reason(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[1].connect_error = REFUSED
    with pytest.raises(PoolerError) as info, paused(reach, PASSWORD, 2.0):
        pytest.fail("the block must not run")
    assert str(info.value) == ('pooler pooler1 did not pause (connection failed: connection to server at '
                               '"198.18.0.31", port 6432 failed: Connection refused); every pooler resumed, '
                               "nothing was changed")
    assert consoles.poolers[0].paused is False
    assert consoles.commands("RESUME") == ["pooler"]  # pooler1 does not answer at all


def test_a_pooler_that_does_not_resume_after_the_block_is_an_error(reach: Reach, consoles: _Consoles) -> None:
    with pytest.raises(PoolerError) as info, paused(reach, PASSWORD, 2.0):
        consoles.poolers[1].connect_error = "server closed the connection unexpectedly\n\tmore"
    assert str(info.value) == "pooler did not resume: pooler1: server closed the connection unexpectedly"
    assert consoles.poolers[0].paused is False


def test_the_blocks_error_wins_over_a_failed_resume(reach: Reach, consoles: _Consoles) -> None:
    with pytest.raises(KeyError), paused(reach, PASSWORD, 2.0):
        consoles.poolers[0].connect_error = "gone"
        raise KeyError("x")
    assert consoles.commands("RESUME") == ["pooler1"]


# --- edge cases that were bugs once (found by these tests, fixed in pgha.net.pooler_console) ------------


def test_the_pause_is_bounded_by_one_timeout_whatever_the_number_of_poolers(reach: Reach,
                                                                           consoles: _Consoles) -> None:
    for p in consoles.poolers:
        p.in_flight = True
    start = time.monotonic()
    with pytest.raises(PoolerError), paused(reach, PASSWORD, 0.5):
        pass
    # One timeout (0.5 s) plus the RESUMEs; joined one after the other it took 2 x 0.5 s.
    assert time.monotonic() - start < 0.95


def test_a_late_pause_does_not_leave_a_pooler_paused(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[1].connect_delays = [0.3]  # the pause's connection only
    with pytest.raises(PoolerError, match="pooler pooler1 did not pause"), paused(reach, PASSWORD, 0.1):
        pass
    deadline = time.monotonic() + 2
    while consoles.commands("PAUSE") != ["pooler", "pooler1"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert consoles.commands("PAUSE") == ["pooler", "pooler1"]
    assert consoles.poolers[1].paused is False


def test_a_blank_error_message_is_still_reported(reach: Reach, consoles: _Consoles) -> None:
    consoles.poolers[0].connect_error = " \n"
    assert states(reach, PASSWORD)[0] == PoolerState("pooler", False, error="error")


def _gone(consoles: _Consoles, gone: int) -> Callable[[Reach, str, int], _Conn]:
    """Consoles where pooler `gone`'s namespace no longer exists (what PgTarget.connect raises then)."""
    def console(r: Reach, password: str, k: int) -> _Conn:
        if k == gone:
            raise FileNotFoundError(2, "No such file or directory", "/run/netns/pgha-x-haproxy")
        return consoles(r, password, k)
    return console


def test_resume_goes_on_past_a_pooler_it_cannot_dial(reach: Reach, consoles: _Consoles,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    consoles.poolers[1].paused = True
    monkeypatch.setattr(pooler_console, "_console", _gone(consoles, 0))
    problems = resume(reach, PASSWORD)
    assert consoles.poolers[1].paused is False
    assert len(problems) == 1 and problems[0].startswith("pooler: ")


def test_a_pooler_that_cannot_be_dialled_aborts_the_pause_with_every_pooler_resumed(
        reach: Reach, consoles: _Consoles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pooler_console, "_console", _gone(consoles, 0))
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the dying thread's traceback
    error: Exception | None = None
    try:
        with paused(reach, PASSWORD, 0.1):
            pytest.fail("the block must not run")
    except Exception as e:
        error = e
    assert consoles.commands("PAUSE") == ["pooler1"]
    assert consoles.poolers[1].paused is False
    assert isinstance(error, PoolerError)
    assert "transactions still running" not in str(error)
