"""Pure parts of the drill runner: error classification, soak verdicts, durations."""

from __future__ import annotations

from dataclasses import asdict

import psycopg
import pytest
from psycopg import errors as pg_errors

from pgha.cli.app import UserError, parse_duration
from pgha.drill import checkers
from pgha.drill.checkers import instead_for
from pgha.drill.history import Event, FinalState, RoleSample
from pgha.drill.run import REJOIN_DEADLINE, single_results, soak_results
from pgha.drill.workload import classify_error


def test_a_write_that_never_connected_definitely_failed() -> None:
    assert classify_error(psycopg.OperationalError("connection refused"), connected=False) == "fail"


def test_a_rejected_write_failed_but_a_dropped_connection_is_indeterminate() -> None:
    assert classify_error(pg_errors.ReadOnlySqlTransaction("read-only"), connected=True) == "fail"
    assert classify_error(pg_errors.AdminShutdown("terminating"), connected=True) == "info"
    assert classify_error(psycopg.OperationalError("server closed the connection"), connected=True) == "info"


def test_a_write_the_pooler_sent_to_no_server_failed() -> None:
    # PgBouncer answers after the login, with a generic SQLSTATE: its words say it never sent it.
    error = psycopg.OperationalError("server login has been failing, try again later (server_login_retry)")
    assert classify_error(error, connected=True) == "fail"
    assert classify_error(psycopg.OperationalError("query_wait_timeout"), connected=True) == "fail"
    # A server connection lost mid-transaction behind the pooler may have committed.
    assert classify_error(psycopg.OperationalError("server conn crashed?"), connected=True) == "info"


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5s", "m", "8d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(UserError):
        parse_duration(text)


def _role(node: str, t: float, primary: bool, timeline: int) -> Event:
    sample = RoleSample("primary" if primary else "replica", not primary, primary, timeline, not primary)
    return Event(t, "monitor", "info", "role", asdict(sample), node=node)


def _write(i: int, t: float, node: str | None, ok: bool = True) -> list[Event]:
    return [Event(t, "writer-0", "invoke", "write", i),
            Event(t + 0.01, "writer-0", "ok" if ok else "fail", "write", i, node=node if ok else None)]


def test_a_soak_is_judged_per_fault_and_as_a_whole() -> None:
    events: list[Event] = []
    # a: primary until the fault at 10; b takes over at 12 (timeline 2); a back as a replica at 15.
    for k in range(0, 300):
        t = k / 10
        events += [_role("a", t, primary=t < 10, timeline=1 if t < 15 else 2),
                   _role("b", t, primary=t >= 12, timeline=1 if t < 12 else 2)]
    events.append(Event(10.0, "nemesis", "info", "fault", {"fault": "stop", "target": "a"}))
    events.append(Event(14.0, "nemesis", "info", "heal", {"fault": "stop", "target": "a"}))
    # second fault at 20 on the replica a: no outage.
    events.append(Event(20.0, "nemesis", "info", "fault", {"fault": "kill", "target": "a"}))
    events.append(Event(21.0, "nemesis", "info", "heal", {"fault": "kill", "target": "a"}))
    ids = []
    for i, t in enumerate([x / 2 for x in range(0, 60)], start=1):
        if 10 <= t < 12.5:
            events += _write(i, t, None, ok=False)
        else:
            events += _write(i, t, "a" if t < 10 else "b")
            ids.append(i)
    final = FinalState(primary="b", rows={"b": ids, "a": ids}, caught_up={"a": True})
    cycles = [(10.0, "stop", "a"), (20.0, "kill", "a")]
    results = {r.name: r for r in soak_results(events, final, cycles, lambda t: t)}
    assert set(results) == {"lost_writes", "split_brain", "outage #1 (stop on a)", "rejoin #1 (stop on a)",
                            "outage #2 (kill on a)", "rejoin #2 (kill on a)"}
    assert results["lost_writes"].passed
    assert results["outage #1 (stop on a)"].metrics["outage_s"] == pytest.approx(3.0, abs=0.02)
    assert results["outage #2 (kill on a)"].metrics["outage_s"] == 0
    # One lost acknowledged write anywhere in the soak fails the whole verdict.
    lossy = FinalState(primary="b", rows={"b": ids[1:], "a": ids[1:]}, caught_up={"a": True})
    assert not next(r for r in soak_results(events, lossy, cycles, lambda t: t) if r.name == "lost_writes").passed


def test_a_dcs_fault_is_judged_by_the_cluster_being_healthy_after_the_heal() -> None:
    from pgha.drill.run import single_results

    events = [_role("a", t / 10, primary=True, timeline=1) for t in range(100)]
    for i in range(1, 40):
        events += _write(i, i / 4, "a")
    events += [Event(2.0, "nemesis", "info", "fault", {"fault": "dcs-down", "target": "all"}),
               Event(6.0, "nemesis", "info", "heal", {"fault": "dcs-down", "target": "all"})]
    final = FinalState(primary="a", rows={"a": list(range(1, 40))}, caught_up={})
    unhealthy = {r.name: r for r in single_results(events, final, 2.0, "all", ("a",))}
    assert not unhealthy["rejoin"].passed
    events.append(Event(7.5, "drill", "info", "phase", {"phase": "rejoined"}))
    healthy = {r.name: r for r in single_results(events, final, 2.0, "all", ("a",))}
    assert healthy["rejoin"].passed and healthy["rejoin"].metrics["rejoin_s"] == pytest.approx(1.5)
    assert healthy["outage"].passed and healthy["lost_writes"].passed


def _dcs_drill(rejoined: bool = True) -> tuple[list[Event], FinalState]:
    events = [_role("a", t / 10, primary=True, timeline=1) for t in range(100)]
    for i in range(1, 40):
        events += _write(i, i / 4, "a")
    events += [Event(2.0, "nemesis", "info", "fault", {"fault": "dcs-down", "target": "all"}),
               Event(6.0, "nemesis", "info", "heal", {"fault": "dcs-down", "target": "all"})]
    if rejoined:
        events.append(Event(7.5, "drill", "info", "phase", {"phase": "rejoined"}))
    return events, FinalState(primary="a", rows={"a": list(range(1, 40))}, caught_up={})


def test_a_dcs_drill_has_healthy_after_heal_in_the_rejoin_slot_by_name() -> None:
    events, final = _dcs_drill()
    assert instead_for(target_is_node=False) == {"rejoin": "healthy_after_heal"}
    assert instead_for(target_is_node=True) == {}
    results = single_results(events, final, 2.0, "all", ("a",), "dcs-down", 20.0)
    assert [r.name for r in results] == list(checkers.STANDARD)  # the report order is unchanged
    by_name = {r.name: r for r in results}
    assert by_name["rejoin"] == checkers.check_healthy_after_heal(events, "all")
    assert by_name["rejoin"].metrics["rejoined_as"] == "cluster"
    assert by_name["outage"] == checkers.check_outage(events, 2.0)


def test_a_node_drill_keeps_the_rejoin_checker_and_adds_the_faults_extra_verdicts_after() -> None:
    events, final = _dcs_drill()
    events = [*events, Event(2.0, "nemesis", "info", "fault", {"fault": "isolate", "target": "a"}),
              Event(6.0, "nemesis", "info", "heal", {"fault": "isolate", "target": "a"})]
    results = single_results(events, final, 2.0, "a", ("a",), "isolate", 20.0)
    assert [r.name for r in results] == [*checkers.STANDARD, "self_demotion"]
    by_name = {r.name: r for r in results}
    assert by_name["rejoin"] == checkers.check_rejoin(events, "a", REJOIN_DEADLINE)
    assert by_name["self_demotion"] == checkers.check_self_demotion(events, "a", 2.0, 20.0)


def test_a_dcs_drill_that_lost_a_write_still_fails() -> None:
    events, _ = _dcs_drill()
    lossy = FinalState(primary="a", rows={"a": list(range(2, 40))}, caught_up={})
    by_name = {r.name: r for r in single_results(events, lossy, 2.0, "all", ("a",), "dcs-down")}
    assert not by_name["lost_writes"].passed and by_name["lost_writes"].metrics["lost"] == 1
    assert by_name["rejoin"].passed and by_name["outage"].passed


def test_a_soak_judges_a_fault_that_hit_no_node_by_the_cluster_being_healthy() -> None:
    events, final = _dcs_drill()
    results = {r.name: r for r in soak_results(events, final, [(2.0, "dcs-down", "all")], lambda t: "a")}
    assert list(results) == ["lost_writes", "split_brain", "outage #1 (dcs-down on all)",
                             "rejoin #1 (dcs-down on all)"]
    assert results["rejoin #1 (dcs-down on all)"].metrics["rejoined_as"] == "cluster"
    unhealthy, _ = _dcs_drill(rejoined=False)
    assert not next(r for r in soak_results(unhealthy, final, [(2.0, "dcs-down", "all")], lambda t: "a")
                    if r.name.startswith("rejoin #1")).passed
