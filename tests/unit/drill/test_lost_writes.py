"""The lost-writes verdict against hand-made histories and final states."""

from __future__ import annotations

from histories import fault, write

from pgha.drill.checkers import check_lost_writes
from pgha.drill.history import Event, FinalState


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
