"""The checkers against hand-made histories, each built to pass or to break one checker."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest

from pgha.drill.checkers import (
    check_lost_writes,
    check_outage,
    check_rejoin,
    check_self_demotion,
    check_split_brain,
    conflicting_writes,
    pair_writes,
    percentile,
    role_intervals,
    run_all,
    split_brain_windows,
    write_rate,
)
from pgha.drill.history import Event, EventType, FinalState, RoleSample

T0 = 1_700_000_000.0  # epoch-sized times, so float precision is what the drill will see
MS = 1e-3


def at(t: float) -> float:
    return T0 + t


# ---------------------------------------------------------------- history builders


def write(
    proc: str, id_: int, t0: float, t1: float | None, result: EventType | None = "ok", node: str | None = "n1"
) -> list[Event]:
    """A write invoked at t0 and completed at t1 (result None: never completed)."""
    events = [Event(at(t0), proc, "invoke", "write", id_)]
    if result is not None and t1 is not None:
        events.append(Event(at(t1), proc, result, "write", id_, node=node if result == "ok" else None))
    return events


def role(
    node: str,
    t: float,
    *,
    primary: bool = False,
    down: bool = False,
    timeline: int | None = 1,
    streaming: bool | None = None,
    rest_role: str | None = None,
) -> Event:
    """A monitor sample: a primary, a replica (streaming unless told) or a node that is down."""
    if down:
        sample = RoleSample(rest_role=None, in_recovery=None, accepts_writes=False)
    elif primary:
        sample = RoleSample(rest_role or "primary", in_recovery=False, accepts_writes=True, timeline=timeline)
    else:
        sample = RoleSample(
            rest_role or "replica",
            in_recovery=True,
            accepts_writes=False,
            timeline=timeline,
            streaming=True if streaming is None else streaming,
        )
    # As it comes back from the JSON-lines file: a dict of RoleSample's fields.
    return Event(at(t), "monitor", "info", "role", asdict(sample), node=node)


def fault(t: float, target: str, name: str = "kill-primary") -> Event:
    return Event(at(t), "nemesis", "info", "fault", {"fault": name, "target": target})


def heal(t: float, target: str, name: str = "kill-primary") -> Event:
    return Event(at(t), "nemesis", "info", "heal", {"fault": name, "target": target})


def steps(start: float, stop: float, step: float) -> list[float]:
    """start, start + step, ... up to and including stop, rounded to the microsecond."""
    n = round((stop - start) / step)
    return [round(start + i * step, 6) for i in range(n + 1)]


def failover_history() -> list[Event]:
    """n1 primary, killed at 10.05; n2 promoted at 12.5 (timeline 2); writes back on n2 at 13.06.

    One writer, a write every 0.1 s taking 10 ms (failures 20 ms). Last ok on n1 at 10.01.
    """
    events: list[Event] = []
    ids = iter(range(1, 10_000))
    for t in steps(0.0, 10.0, 0.1):
        events += write("writer-0", next(ids), t, t + 0.01, "ok", "n1")
    for i, t in enumerate(steps(10.1, 12.9, 0.1)):
        events += write("writer-0", next(ids), t, t + 0.02, "fail" if i % 2 else "info")
    for t in steps(13.0, 20.0, 0.1):
        events += write("writer-0", next(ids), t, t + 0.06, "ok", "n2")
    for t in steps(0.0, 25.0, 0.5):
        events.append(role("n1", t, primary=True) if t <= 10.0 else role("n1", t, down=True))
        events.append(role("n2", t, primary=True, timeline=2) if t >= 12.5 else role("n2", t))
        events.append(role("n3", t + 0.1, timeline=1 if t < 13.0 else 2))
    events.append(fault(10.05, "n1"))
    return events


def shuffled(events: list[Event]) -> list[Event]:
    # The checkers must not rely on the caller's ordering.
    out = list(events)
    random.Random(7).shuffle(out)
    return out


# ---------------------------------------------------------------- pairing


def test_pairing_matches_invoke_and_completion_by_process_and_id() -> None:
    events = (
        write("w0", 1, 0.0, 0.5, "ok") + write("w1", 1, 0.1, 0.2, "fail") + write("w0", 2, 1.0, None, None)
    )
    writes = {(w.process, w.id): w for w in pair_writes(events)}
    assert writes[("w0", 1)].invoke == at(0.0) and writes[("w0", 1)].complete == at(0.5)
    assert writes[("w0", 1)].result == "ok" and writes[("w0", 1)].node == "n1"
    assert writes[("w1", 1)].result == "fail" and writes[("w1", 1)].complete == at(0.2)
    assert writes[("w0", 2)].result is None and writes[("w0", 2)].complete is None


# ---------------------------------------------------------------- outage


def test_clean_failover_outage_exact_to_the_ms() -> None:
    result = check_outage(shuffled(failover_history()))
    assert result.name == "outage"
    assert result.passed, result.summary
    # last ok on n1 completed at 10.01, first ok invoked after the first failure completed at 13.06
    assert result.metrics["outage_s"] == pytest.approx(3.05, abs=MS)
    assert result.metrics["failover_s"] == pytest.approx(12.5 - 10.05, abs=MS)
    assert result.metrics["routing_s"] == pytest.approx(13.06 - 12.5, abs=MS)
    assert result.metrics["new_primary"] == "n2"
    assert "3.05 s" in result.summary


def test_outage_over_the_limit_fails() -> None:
    assert check_outage(failover_history(), limit_s=5.0).passed
    result = check_outage(failover_history(), limit_s=2.0)
    assert not result.passed
    assert "limit" in result.summary


def test_writes_that_never_recover_fail() -> None:
    events = [e for e in failover_history() if not (e.op == "write" and e.time >= at(13.0))]
    result = check_outage(events)
    assert not result.passed
    assert result.metrics["outage_s"] is None
    assert "never recovered" in result.summary


def test_writes_that_all_hang_after_the_fault_never_recover() -> None:
    events = [e for e in failover_history() if not (e.op == "write" and e.time >= at(10.05))]
    events += write("writer-0", 9999, 10.1, None, None)  # invoked, never answered
    result = check_outage(events)
    assert not result.passed
    assert result.metrics["writes_pending"] == 1


def test_ok_tail_of_old_primary_in_flight_at_the_failure_is_not_a_recovery() -> None:
    events = [fault(1.0, "n1")]
    events += write("w0", 1, 0.0, 0.5, "ok")
    events += write("w0", 2, 1.0, 1.1, "fail")  # first failure, reported at 1.1
    events += write("w1", 3, 1.05, 1.2, "ok")  # in flight at 1.1: old primary's tail
    events += write("w0", 4, 1.2, 1.3, "fail")
    events += write("w0", 5, 3.0, 3.5, "ok", "n2")
    result = check_outage(events)
    assert result.passed
    assert result.metrics["error_outage_s"] == pytest.approx(3.5 - 0.5, abs=MS)


def test_failure_before_the_fault_is_ignored() -> None:
    events = [fault(5.0, "n2")]
    events += write("w0", 1, 0.0, 0.1, "fail")
    for i, t in enumerate(steps(1.0, 9.0, 0.1)):
        events += write("w0", 100 + i, t, t + 0.01, "ok")
    result = check_outage(events)
    assert result.passed
    assert result.metrics["outage_s"] == 0.0


def test_stall_without_errors_counts_as_outage() -> None:
    events = [fault(5.05, "n1")]
    ids = iter(range(1000))
    for t in steps(0.0, 5.0, 0.1):
        events += write("w0", next(ids), t, t + 0.01, "ok")
    for t in steps(7.0, 9.0, 0.1):  # one 2-second stall, no error
        events += write("w0", next(ids), t, t + 0.01, "ok")
    result = check_outage(events)
    assert result.passed
    assert result.metrics["max_gap_s"] == pytest.approx(2.0, abs=MS)
    assert result.metrics["outage_s"] == pytest.approx(2.0, abs=MS)
    assert "stalled" in result.summary


def test_the_outage_says_what_clients_felt_after_the_fault() -> None:
    events = [fault(5.0, "n1")]
    ids = iter(range(1000))
    for t in steps(0.0, 4.9, 0.1):  # before the fault: 10 ms each, not counted
        events += write("w0", next(ids), t, t + 0.01)
    events += write("w0", next(ids), 4.95, 5.5, "info")  # in flight at the fault: unknown outcome
    for t in steps(5.5, 6.5, 0.5):
        events += write("w0", next(ids), t, t + 0.1, "fail")
    events += write("w0", next(ids), 7.0, 9.0)  # waited 2 s, then acknowledged
    for t in steps(9.0, 12.0, 0.1):
        events += write("w0", next(ids), t, t + 0.02)
    result = check_outage(events)
    m = result.metrics
    assert (m["client_failed"], m["client_indeterminate"]) == (3, 1)
    assert m["latency_p50_s"] == pytest.approx(0.02, abs=MS)
    assert m["latency_max_s"] == pytest.approx(2.0, abs=MS)
    assert m["latency_p99_s"] == pytest.approx(2.0, abs=MS)  # 1 of 32: nearest rank
    assert "Clients: 3 failed, 1 indeterminate; write latency p50 20 ms, p99 2.00 s, max 2.00 s." in result.summary


def test_percentile_is_a_value_that_occurred() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile(list(range(1, 101)), 99) == 99


def test_a_scheduling_hiccup_is_no_stall() -> None:
    # Writes every 0.05 s and one 0.2 s gap: over 3x the median, but shorter than any fault's
    # effect and seen on a loaded machine without one.
    events = [fault(2.02, "n1")]
    ids = iter(range(1000))
    for t in [*steps(0.0, 2.0, 0.05), *steps(2.2, 4.0, 0.05)]:
        events += write("w0", next(ids), t, t + 0.01, "ok")
    result = check_outage(events)
    assert result.metrics["max_gap_s"] == pytest.approx(0.2, abs=0.06)
    assert result.metrics["outage_s"] == 0.0 and result.metrics["stalled"] == "no"


def test_faulted_replica_keeps_the_primary_so_no_failover_split() -> None:
    events = [fault(5.0, "n2", "kill-replica")]
    for i, t in enumerate(steps(0.0, 10.0, 0.1)):
        events += write("w0", i, t, t + 0.01, "ok", "n1")
    for t in steps(0.0, 10.0, 0.5):
        events += [role("n1", t, primary=True), role("n2", t) if t < 5.0 else role("n2", t, down=True)]
    result = check_outage(events)
    assert result.passed
    assert result.metrics["outage_s"] == 0.0
    assert result.metrics["failover_s"] is None
    assert result.metrics["routing_s"] is None


def test_no_writes_cannot_pass() -> None:
    assert not check_outage([fault(1.0, "n1")]).passed


# ---------------------------------------------------------------- lost writes


def lost_writes_history() -> list[Event]:
    events = [fault(1.0, "n1")]
    for i in range(1, 11):
        events += write("w0", i, i * 0.1, i * 0.1 + 0.01, "ok")
    return events


def final(primary_rows: list[int], **replicas: list[int]) -> FinalState:
    return FinalState(
        primary="n2",
        rows={"n2": primary_rows, **replicas},
        caught_up={"n2": True, **dict.fromkeys(replicas, True)},
    )


def test_all_acknowledged_writes_present_passes() -> None:
    result = check_lost_writes(lost_writes_history(), final(list(range(1, 11)), n3=list(range(1, 11))))
    assert result.passed, result.details
    assert result.metrics["lost"] == 0 and result.metrics["acknowledged"] == 10


def test_lost_acknowledged_write_fails_and_names_the_id() -> None:
    result = check_lost_writes(lost_writes_history(), final([1, 2, 3, 4, 6, 7, 8, 9, 10]))
    assert not result.passed
    assert result.metrics["lost"] == 1
    assert any("lost" in d and ": 5" in d for d in result.details)


def test_indeterminate_write_present_on_primary_passes_and_is_counted() -> None:
    events = lost_writes_history() + write("w0", 11, 2.0, 2.5, "info") + write("w1", 12, 2.0, None, None)
    result = check_lost_writes(events, final([*range(1, 12), 12]))
    assert result.passed, result.details
    assert result.metrics["indeterminate_committed"] == 2


def test_failed_write_present_on_primary_fails() -> None:
    events = lost_writes_history() + write("w0", 11, 2.0, 2.5, "fail")
    result = check_lost_writes(events, final(list(range(1, 12))))
    assert not result.passed
    assert result.metrics["failed_but_committed"] == 1
    assert any("failed but committed" in d and "11" in d for d in result.details)


def test_row_never_written_fails() -> None:
    result = check_lost_writes(lost_writes_history(), final([*range(1, 11), 99]))
    assert not result.passed
    assert result.metrics["unexpected"] == 1


def test_acknowledged_write_missing_on_caught_up_replica_fails() -> None:
    result = check_lost_writes(lost_writes_history(), final(list(range(1, 11)), n3=list(range(1, 10))))
    assert not result.passed
    assert result.metrics["missing_on_replicas"] == 1
    assert any("n3" in d and "10" in d for d in result.details)


def test_replica_that_had_not_caught_up_is_not_judged() -> None:
    state = FinalState("n2", {"n2": list(range(1, 11)), "n3": [1]}, {"n2": True, "n3": False})
    result = check_lost_writes(lost_writes_history(), state)
    assert result.passed, result.details
    assert result.metrics["missing_on_replicas"] == 0


def test_no_final_primary_fails() -> None:
    result = check_lost_writes(lost_writes_history(), FinalState(None, {}, {}))
    assert not result.passed
    assert "no primary" in result.summary


# ---------------------------------------------------------------- split brain


def test_clean_failover_has_no_split_brain() -> None:
    result = check_split_brain(shuffled(failover_history()))
    assert result.passed, result.details
    assert result.metrics["window_s"] == 0 and result.metrics["conflicting_writes"] == 0


def _thawed_old_primary() -> list[Event]:
    """n1 (timeline 1) is demoted at 5.0; n2 was promoted to timeline 2 at 4.5."""
    events: list[Event] = []
    for t in steps(0.0, 10.0, 0.1):
        events.append(role("n1", t, primary=t < 5.0, timeline=1))
        events.append(role("n2", t, primary=t >= 4.5, timeline=2 if t >= 4.5 else 1))
    return events


def test_a_window_of_two_writable_nodes_is_measured_and_passes_without_stale_acknowledgements() -> None:
    events = _thawed_old_primary() + write("w", 1, 4.6, 4.7, node="n2")
    result = check_split_brain(shuffled(events))
    assert result.metrics["window_s"] == pytest.approx(0.5, abs=MS)
    assert result.metrics["stale_acknowledged"] == 0
    assert result.passed
    assert "0.50 s" in result.summary
    [(start, end, nodes)] = split_brain_windows(events)
    assert start == pytest.approx(at(4.5)) and end == pytest.approx(at(5.0)) and nodes == ("n1", "n2")


def test_a_write_acknowledged_by_the_stale_node_in_the_window_fails() -> None:
    events = _thawed_old_primary() + write("w", 7, 4.7, 4.8, node="n1")
    result = check_split_brain(shuffled(events))
    assert not result.passed
    assert result.metrics["stale_acknowledged"] == 1
    assert any("write 7" in d and "n1" in d for d in result.details)


def test_sample_hold_caps_how_long_a_silent_node_counts_as_writable() -> None:
    # n1's last word is "primary" at 0.0, then silence; n2 is primary from 2.0.
    events = [role("n1", 0.0, primary=True), role("n1", 5.0, down=True)]
    events += [role("n2", t, primary=t >= 2.0) for t in steps(0.0, 5.0, 0.5)]
    assert check_split_brain(events, sample_hold_s=1.0).passed
    assert check_split_brain(events, sample_hold_s=1.0).metrics["window_s"] == 0
    held = check_split_brain(events, sample_hold_s=3.0)
    assert held.metrics["window_s"] == pytest.approx(1.0, abs=MS)


def test_overlapping_acknowledged_writes_on_two_nodes_fail() -> None:
    events = write("w0", 1, 1.0, 1.5, "ok", "n1") + write("w1", 2, 1.2, 1.3, "ok", "n2")
    result = check_split_brain(events)
    assert not result.passed
    assert result.metrics["conflicting_writes"] == 1
    assert any("write 1 on n1" in d and "write 2 on n2" in d for d in result.details)


def test_a_late_ack_of_a_write_the_new_primary_holds_is_no_conflict() -> None:
    # Write 1 committed on n1 before it froze and was replicated; its client heard "ok" only after
    # the thaw, so its interval spans write 2 on the new primary n2. The final primary holds both:
    # one history, nothing diverged. Had write 1 not reached n2, the pair would still fail.
    events = write("w0", 1, 1.0, 9.0, "ok", "n1") + write("w1", 2, 5.0, 5.1, "ok", "n2")
    both = FinalState(primary="n2", rows={"n2": [1, 2]}, caught_up={})
    assert check_split_brain(events, final=both).passed
    diverged = FinalState(primary="n2", rows={"n2": [2]}, caught_up={})
    result = check_split_brain(events, final=diverged)
    assert not result.passed and result.metrics["conflicting_writes"] == 1
    assert not check_split_brain(events).passed  # without the final state: possible, so it fails


def test_sequential_writes_on_two_nodes_pass() -> None:
    events = write("w0", 1, 1.0, 1.1, "ok", "n1") + write("w0", 2, 1.1, 1.2, "ok", "n2")
    events += write("w1", 3, 0.9, 1.05, "ok", "n1") + write("w1", 4, 1.5, 1.6, "ok", "n2")
    events += write("w2", 5, 1.0, 3.0, "fail")  # a failed write overlapping both proves nothing
    result = check_split_brain(events)
    assert result.passed, result.details
    assert conflicting_writes(events) == (0, [])


def test_overlapping_writes_on_the_same_node_are_not_conflicts() -> None:
    events = write("w0", 1, 1.0, 1.5, "ok", "n1") + write("w1", 2, 1.2, 1.3, "ok", "n1")
    assert check_split_brain(events).passed


def test_conflicting_pairs_are_counted_once_each() -> None:
    events = write("w0", 1, 0.0, 1.0, "ok", "n1") + write("w1", 2, 0.1, 0.2, "ok", "n2")
    events += write("w2", 3, 0.3, 0.4, "ok", "n2") + write("w3", 4, 0.5, 2.0, "ok", "n3")
    # 1-2, 1-3, 1-4 overlap; 2, 3 and 4 are disjoint from each other
    pairs, examples = conflicting_writes(events)
    assert pairs == 3
    assert {(a.id, b.id) for a, b in examples} == {(1, 2), (1, 3), (1, 4)}


# ---------------------------------------------------------------- rejoin


def rejoin_history(*samples: Event) -> list[Event]:
    """The failover history, n1 healed at 20.0, with the given samples of n1 after that."""
    events = [e for e in failover_history() if not (e.node == "n1" and e.time > at(20.0))]
    return [*events, heal(20.0, "n1"), *samples]


def test_rejoin_on_the_new_timeline_passes() -> None:
    events = rejoin_history(
        role("n1", 20.5, down=True),
        role("n1", 21.0, timeline=1, streaming=False),  # started, not yet streaming
        role("n1", 22.25, timeline=2),
    )
    result = check_rejoin(shuffled(events), "n1")
    assert result.passed, result.details
    assert result.metrics["rejoin_s"] == pytest.approx(2.25, abs=MS)
    assert result.metrics["timeline"] == 2 and result.metrics["timeline_check"] == "primary"


def test_rejoin_past_the_deadline_fails() -> None:
    events = rejoin_history(role("n1", 22.25, timeline=2))
    assert check_rejoin(events, "n1", deadline_s=3.0).passed
    result = check_rejoin(events, "n1", deadline_s=2.0)
    assert not result.passed
    assert "deadline" in result.summary


def test_rejoin_that_never_happens_fails() -> None:
    events = rejoin_history(*(role("n1", t, down=True) for t in steps(20.5, 30.0, 0.5)))
    result = check_rejoin(events, "n1")
    assert not result.passed
    assert result.metrics["rejoin_s"] is None
    assert "never" in result.summary


def test_rejoin_streaming_on_the_old_timeline_fails() -> None:
    events = rejoin_history(*(role("n1", t, timeline=1) for t in steps(21.0, 30.0, 0.5)))
    result = check_rejoin(events, "n1")
    assert not result.passed
    assert any("timeline=1" in d for d in result.details)


def test_sample_before_the_heal_does_not_count() -> None:
    events = [e for e in rejoin_history() if not (e.process == "nemesis" and e.op == "heal")]
    events += [role("n1", 19.0, timeline=2), heal(20.0, "n1"), role("n1", 23.0, timeline=2)]
    result = check_rejoin(events, "n1")
    assert result.metrics["rejoin_s"] == pytest.approx(3.0, abs=MS)


def test_no_heal_event_fails() -> None:
    result = check_rejoin(failover_history(), "n1")
    assert not result.passed
    assert "no heal" in result.summary


def test_without_a_primary_timeline_a_failed_primary_must_return_on_a_later_timeline() -> None:
    base = [
        fault(1.0, "n1"),
        role("n1", 0.5, primary=True, timeline=1),
        role("n2", 5.0, primary=True, timeline=None),
    ]
    base.append(heal(10.0, "n1"))
    old = check_rejoin([*base, role("n1", 11.0, timeline=1)], "n1")
    new = check_rejoin([*base, role("n1", 11.0, timeline=2)], "n1")
    assert not old.passed
    assert new.passed and new.metrics["timeline_check"] == "pre-fault"


def test_faulted_replica_rejoins_on_the_same_timeline() -> None:
    events = [role("n1", t, primary=True) for t in steps(0.0, 10.0, 0.5)]
    events += [role("n2", 0.5), fault(1.0, "n2", "kill-replica"), role("n2", 1.5, down=True)]
    events += [heal(5.0, "n2", "kill-replica"), role("n2", 5.5, streaming=False), role("n2", 6.5)]
    result = check_rejoin(events, "n2")
    assert result.passed, result.details
    assert result.metrics["rejoin_s"] == pytest.approx(1.5, abs=MS)


def test_old_primary_back_as_the_only_primary_counts_as_rejoined() -> None:
    events = [role("n1", 0.5, primary=True), role("n2", 0.5), fault(1.0, "n1", "pause")]
    events += [role("n2", t) for t in steps(1.0, 6.0, 0.5)]
    events += [heal(3.0, "n1", "pause"), role("n1", 3.5, primary=True)]
    result = check_rejoin(events, "n1")
    assert result.passed, result.details
    assert result.metrics["rejoined_as"] == "primary"
    assert result.metrics["rejoin_s"] == pytest.approx(0.5, abs=MS)


def test_old_primary_back_as_primary_beside_a_new_one_is_not_a_rejoin() -> None:
    events = rejoin_history(*(role("n1", t, primary=True) for t in steps(20.5, 25.0, 0.5)))
    assert not check_rejoin(events, "n1").passed


# ---------------------------------------------------------------- together, and plot helpers


def test_run_all_on_a_clean_failover_passes_everything() -> None:
    events = rejoin_history(role("n1", 22.0, timeline=2))
    acked = [w.id for w in pair_writes(events) if w.result == "ok"]
    state = FinalState("n2", {"n2": acked, "n1": acked, "n3": acked}, {"n1": True, "n2": True, "n3": True})
    results = run_all(events, state, "n1", limit_s=5.0, deadline_s=5.0)
    assert [r.name for r in results] == ["outage", "lost_writes", "split_brain", "rejoin"]
    assert all(r.passed for r in results), [(r.name, r.summary, r.details) for r in results]


def test_write_rate_buckets_by_completion_time() -> None:
    events = write("w0", 1, 0.0, 0.01, "ok") + write("w0", 2, 0.02, 0.05, "ok")
    events += (
        write("w0", 3, 0.1, 0.35, "fail")
        + write("w1", 4, 0.1, 0.36, "info")
        + write("w0", 5, 0.4, None, None)
    )
    rate = write_rate(events, bucket_s=0.1)
    assert [(ok, bad) for _, ok, bad in rate] == [(2, 0), (0, 0), (0, 0), (0, 2)]
    assert [start for start, _, _ in rate] == pytest.approx([at(0.01), at(0.11), at(0.21), at(0.31)])
    assert write_rate([]) == []


def test_role_intervals_label_and_merge_samples() -> None:
    events = [role("n1", 0.0, primary=True), role("n1", 1.0, primary=True), role("n1", 2.0, down=True)]
    events += [role("n2", 0.0), role("n2", 3.0, primary=True)]
    events.append(
        Event(
            at(3.0),
            "monitor",
            "info",
            "role",
            {"rest_role": "replica", "in_recovery": None, "accepts_writes": False},
            node="n3",
        )
    )
    events.append(Event(at(4.0), "drill", "info", "phase", {"phase": "done"}))
    bands = role_intervals(events)
    assert bands["n1"] == [(at(0.0), at(2.0), "primary"), (at(2.0), at(4.0), "down")]
    assert bands["n2"] == [(at(0.0), at(3.0), "replica"), (at(3.0), at(4.0), "primary")]
    assert bands["n3"] == [(at(3.0), at(4.0), "unknown")]


def test_zero_length_writes_conflict_only_inside_another_nodes_write() -> None:
    inside = write("w0", 1, 0.0, 2.0, "ok", "n1") + write("w1", 2, 1.0, 1.0, "ok", "n2")
    assert conflicting_writes(inside)[0] == 1
    before = write("w1", 2, 1.0, 1.0, "ok", "n2") + write("w0", 1, 2.0, 2.1, "ok", "n1")
    assert conflicting_writes(before)[0] == 0


# ---------------------------------------------------------------- self-demotion of a cut-off primary


def _cut_off(demote_at: float | None, heal_at: float = 40.0) -> list[Event]:
    events = [role("n1", t, primary=True) for t in steps(-2, 0, 0.5)] + [fault(0.0, "n1", "isolate")]
    for t in steps(0.25, heal_at, 0.5):
        writable = demote_at is None or t < demote_at
        events.append(role("n1", t, primary=writable, down=not writable))
    return [*events, heal(heal_at, "n1", "isolate")]


def test_self_demotion_within_ttl_passes_and_reports_when() -> None:
    r = check_self_demotion(_cut_off(11.0), "n1", at(0.0), 20)
    assert r.passed and 11.0 <= r.metrics["demoted_after_s"] <= 11.5


def test_self_demotion_beyond_ttl_fails() -> None:
    r = check_self_demotion(_cut_off(25.0), "n1", at(0.0), 20)
    assert not r.passed and r.metrics["demoted_after_s"] >= 25.0


def test_a_primary_that_keeps_accepting_writes_while_cut_off_fails() -> None:
    r = check_self_demotion(_cut_off(None), "n1", at(0.0), 20)
    assert not r.passed and r.metrics["demoted_after_s"] is None


def test_a_blip_of_no_answer_is_not_a_demotion() -> None:
    events = _cut_off(15.0)
    # One lost sample at 5 s while the node was still writable: the later writable samples win.
    events = [e for e in events if not (e.process == "monitor" and abs(e.time - at(5.25)) < 1e-6)]
    events.append(role("n1", 5.25, down=True))
    r = check_self_demotion(events, "n1", at(0.0), 20)
    assert r.passed and r.metrics["demoted_after_s"] >= 15.0
