"""The split-brain verdict: windows of two writable nodes, stale acknowledgements, overlapping writes."""

from __future__ import annotations

import pytest
from histories import MS, at, failover_history, role, shuffled, steps, write

from pgha.drill.checkers import check_split_brain, conflicting_writes, split_brain_windows
from pgha.drill.history import Event, FinalState


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


def test_zero_length_writes_conflict_only_inside_another_nodes_write() -> None:
    inside = write("w0", 1, 0.0, 2.0, "ok", "n1") + write("w1", 2, 1.0, 1.0, "ok", "n2")
    assert conflicting_writes(inside)[0] == 1
    before = write("w1", 2, 1.0, 1.0, "ok", "n2") + write("w0", 1, 2.0, 2.1, "ok", "n1")
    assert conflicting_writes(before)[0] == 0
