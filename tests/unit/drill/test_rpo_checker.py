"""The rpo verdict of a disaster, from hand-made histories: writes acknowledged within the archive's
bound before the fault may be lost (listed by id and age), anything else lost or invented fails."""

from __future__ import annotations

from histories import at, fault, write

from pgha.drill.checkers.pitr import RESTORED
from pgha.drill.checkers.rpo import check_rpo
from pgha.drill.history import Event, FinalState
from pgha.drill.run import single_results

T = 100.0
BOUND = 65.0


def history(error: str | None = None) -> list[Event]:
    events = [
        *write("w0", 1, 1.0, 1.1),  # archived long ago
        *write("w0", 2, 90.0, 90.1),  # in the segment not yet archived at T
        *write("w0", 3, 99.0, 99.1),
        *write("w0", 4, 100.5, 101.0, "fail", None),  # the cluster is gone
        *write("w0", 5, 120.0, 120.1, node="n2"),  # through the restored cluster
        fault(T, "cluster", "disaster"),
    ]
    value: dict[str, object] = {"cluster": "shop", "in_place": True}
    value |= {"seconds": 17.5} if error is None else {"error": error}
    return [*events, Event(at(119.0), "nemesis", "info", RESTORED, value)]


def final(primary_rows: list[int], replica_rows: list[int] | None = None) -> FinalState:
    rows = {"n2": primary_rows, "n1": replica_rows if replica_rows is not None else primary_rows}
    return FinalState(primary="n2", rows=rows, caught_up={"n1": True})


def test_writes_the_archive_did_not_hold_yet_may_be_lost_and_are_listed() -> None:
    result = check_rpo(history(), final([1, 5]), at(T), BOUND)
    assert result.passed, result
    assert result.metrics["lost"] == 2 and result.metrics["rpo_s"] == 9.9 and result.metrics["restore_s"] == 17.5
    assert result.details == ["lost: id 2, acknowledged 9.90 s before the fault",
                              "lost: id 3, acknowledged 0.90 s before the fault"]
    assert "without the last 9.90 s of writes" in result.summary


def test_nothing_lost_is_rpo_zero() -> None:
    result = check_rpo(history(), final([1, 2, 3, 5]), at(T), BOUND)
    assert result.passed and result.metrics["rpo_s"] == 0.0 and "RPO 0" in result.summary


def test_a_write_older_than_the_bound_lost_fails() -> None:
    result = check_rpo(history(), final([5]), at(T), BOUND)
    assert not result.passed and result.metrics["lost_beyond_bound"] == 1
    assert "lost from more than" in result.summary


def test_a_write_acknowledged_after_the_fault_lost_fails() -> None:
    result = check_rpo(history(), final([1, 2, 3]), at(T), BOUND)
    assert not result.passed and "acknowledged after the fault lost" in result.summary


def test_a_failed_write_committed_or_a_replica_behind_fails() -> None:
    assert "failed write(s) committed" in check_rpo(history(), final([1, 4, 5]), at(T), BOUND).summary
    assert "missing on replicas" in check_rpo(history(), final([1, 5], [1]), at(T), BOUND).summary


def test_a_failed_restore_fails() -> None:
    result = check_rpo(history("the repository is missing"), final([]), at(T), BOUND)
    assert not result.passed and result.summary == "the restore failed: the repository is missing"
    assert not check_rpo(history()[:-1], final([1, 5]), at(T), BOUND).passed


def test_a_disaster_is_judged_by_outage_rpo_split_brain_and_the_clusters_health() -> None:
    results = single_results(history(), final([1, 5]), at(T), "cluster", ("n1", "n2"), "disaster", 20.0, BOUND)
    assert [r.name for r in results] == ["outage", "rpo", "split_brain", "rejoin"]
    by_name = {r.name: r for r in results}
    assert by_name["rpo"].passed
    # "cluster" is no node: its rejoin verdict is the cluster's health after the heal (none here).
    assert by_name["rejoin"].summary == "There is no heal event for cluster."
