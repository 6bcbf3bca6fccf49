"""Checkers composed by name: the standard verdicts in report order, one replaced or chosen by name."""

from __future__ import annotations

import pytest
from histories import at, rejoin_history, role, write

from pgha.drill.checkers import (
    CHECKERS,
    STANDARD,
    Evidence,
    check_healthy_after_heal,
    check_outage,
    check_rejoin,
    check_self_demotion,
    compose,
    pair_writes,
    run_all,
)
from pgha.drill.history import Event, FinalState, sorted_events


def test_run_all_on_a_clean_failover_passes_everything() -> None:
    events = rejoin_history(role("n1", 22.0, timeline=2))
    acked = [w.id for w in pair_writes(events) if w.result == "ok"]
    state = FinalState("n2", {"n2": acked, "n1": acked, "n3": acked}, {"n1": True, "n2": True, "n3": True})
    results = run_all(events, state, "n1", limit_s=5.0, deadline_s=5.0)
    assert [r.name for r in results] == ["outage", "lost_writes", "split_brain", "rejoin"]
    assert all(r.passed for r in results), [(r.name, r.summary, r.details) for r in results]


def _clean_failover() -> tuple[list[Event], FinalState]:
    events = rejoin_history(role("n1", 22.0, timeline=2))
    acked = [w.id for w in pair_writes(events) if w.result == "ok"]
    return events, FinalState("n2", {"n2": acked, "n1": acked, "n3": acked}, {"n1": True, "n2": True, "n3": True})


def test_each_standard_checker_gives_the_verdict_of_its_name() -> None:
    events, state = _clean_failover()
    evidence = Evidence(sorted_events(events), state, "n1", fault_time=at(10.05))
    assert STANDARD == ("outage", "lost_writes", "split_brain", "rejoin")
    assert [CHECKERS[name](evidence).name for name in STANDARD] == list(STANDARD)
    # healthy_after_heal is a checker of its own that gives the rejoin verdict.
    assert CHECKERS["healthy_after_heal"](evidence).name == "rejoin"


def test_a_verdict_is_replaced_by_name_and_keeps_its_place() -> None:
    events, state = _clean_failover()
    evidence = Evidence(sorted_events(events), state, "n1", deadline_s=5.0)
    standard = compose(evidence)
    replaced = compose(evidence, STANDARD, {"rejoin": "healthy_after_heal"})
    assert list(replaced) == list(standard) == list(STANDARD)
    assert standard["rejoin"] == check_rejoin(events, "n1", 5.0)
    assert replaced["rejoin"] == check_healthy_after_heal(events, "n1")
    assert replaced["rejoin"] != standard["rejoin"]
    assert {k: v for k, v in replaced.items() if k != "rejoin"} == {k: v for k, v in standard.items() if k != "rejoin"}


def test_verdicts_are_chosen_by_name_in_the_order_asked() -> None:
    events, state = _clean_failover()
    evidence = Evidence(sorted_events(events), state, "n1", fault_time=at(10.05), limit_s=2.0, ttl=20.0)
    chosen = compose(evidence, ("self_demotion", "rejoin", "outage"))
    assert list(chosen) == ["self_demotion", "rejoin", "outage"]
    assert chosen["outage"] == check_outage(events, at(10.05), 2.0)
    assert not chosen["outage"].passed  # 3.05 s is over the 2 s limit
    assert chosen["self_demotion"] == check_self_demotion(events, "n1", at(10.05), 20.0)
    assert chosen["rejoin"] == check_rejoin(events, "n1")


def test_unknown_names_are_refused() -> None:
    events, state = _clean_failover()
    evidence = Evidence(sorted_events(events), state, "n1")
    with pytest.raises(KeyError):
        compose(evidence, ("bogus",))
    with pytest.raises(KeyError):
        compose(evidence, STANDARD, {"rejoin": "bogus"})
    with pytest.raises(ValueError, match="fault's time"):
        compose(evidence, ("self_demotion",))


def test_a_history_that_must_fail_still_fails_when_composed_by_name() -> None:
    events, state = _clean_failover()
    # One acknowledged write missing on the final primary, and one acknowledged by a stale n1
    # while n2 was already primary (n1 kept its timeline 1 until 13.0 in this history).
    lossy = FinalState("n2", {"n2": state.rows["n2"][1:]}, {})
    events = [*events, *write("w9", 9001, 12.6, 12.7, "ok", "n1"), role("n1", 12.55, primary=True)]
    results = compose(Evidence(sorted_events(events), lossy, "n1"))
    assert not results["lost_writes"].passed and results["lost_writes"].metrics["lost"] == 2
    assert not results["split_brain"].passed and results["split_brain"].metrics["stale_acknowledged"] == 1
    assert [r.name for r in run_all(events, lossy, "n1") if not r.passed] == ["lost_writes", "split_brain"]
