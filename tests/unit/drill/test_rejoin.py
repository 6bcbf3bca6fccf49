"""The rejoin verdict: the healed node back as a streaming replica on the primary's timeline."""

from __future__ import annotations

import pytest
from histories import MS, failover_history, fault, heal, rejoin_history, role, shuffled, steps

from pgha.drill.checkers import check_rejoin


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
