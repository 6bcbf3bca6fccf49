"""The archive_caught_up verdict, from hand-made evidence: it passes only when archiving failed
while the fault held and caught up after the heal."""

from __future__ import annotations

from pgha.drill.checkers.archive import check_archive_caught_up
from pgha.drill.history import Event, FinalState
from pgha.drill.run import single_results

FAULT, HEAL = 100.0, 110.0
EVENTS = [Event(FAULT, "nemesis", "info", "fault", {"fault": "archive-fail", "target": "repository"}),
          Event(HEAL, "nemesis", "info", "heal", {"fault": "archive-fail", "target": "repository"})]


def final(archive: dict[str, float | int | str | None] | None) -> FinalState:
    return FinalState(primary="node0", rows={}, caught_up={}, archive=archive)


def test_failed_while_broken_and_caught_up_after_passes() -> None:
    result = check_archive_caught_up(EVENTS, final({"failed_count": 3, "last_failed_time": 102.0,
                                                    "last_archived_time": 111.0, "check": "passed"}), FAULT)
    assert result.passed, result
    assert result.metrics["failed_before_heal_s"] == 8.0


def test_a_fault_that_never_bit_fails() -> None:
    never = final({"failed_count": 0, "last_failed_time": None, "last_archived_time": 111.0, "check": "passed"})
    assert not check_archive_caught_up(EVENTS, never, FAULT).passed
    # A failure from before the drill is not this fault's.
    old = final({"failed_count": 1, "last_failed_time": 50.0, "last_archived_time": 111.0, "check": "passed"})
    assert "did not take effect" in check_archive_caught_up(EVENTS, old, FAULT).summary


def test_an_archive_that_did_not_catch_up_fails() -> None:
    stuck = final({"failed_count": 9, "last_failed_time": 112.0, "last_archived_time": 99.0,
                   "check": "pgbackrest check on node0 failed: WAL segment was not archived in time"})
    result = check_archive_caught_up(EVENTS, stuck, FAULT)
    assert not result.passed and "did not catch up" in result.summary
    behind = final({"failed_count": 9, "last_failed_time": 112.0, "last_archived_time": 99.0, "check": "passed"})
    assert "nothing was archived after the last failure" in check_archive_caught_up(EVENTS, behind, FAULT).summary


def test_a_cluster_without_backups_cannot_pass() -> None:
    assert not check_archive_caught_up(EVENTS, final(None), FAULT).passed


def test_the_repository_fault_gets_its_verdict_though_it_hit_no_node() -> None:
    results = single_results(EVENTS, final({"failed_count": 3, "last_failed_time": 102.0,
                                            "last_archived_time": 111.0, "check": "passed"}),
                             FAULT, "repository", ("node0", "node1"), "archive-fail")
    assert [r.name for r in results] == ["outage", "lost_writes", "split_brain", "rejoin", "archive_caught_up"]
