"""The pitr_exact verdict, from hand-made histories: every row acknowledged before T must come
back, no row sent after T may, and rows in flight at T may go either way."""

from __future__ import annotations

from histories import at, fault, write

from pgha.drill.checkers.pitr import RESTORED, check_pitr_exact
from pgha.drill.history import Event, FinalState
from pgha.drill.run import pitr_name, single_results

T = 10.0


def history(rows: list[int] | None, error: str | None = None) -> list[Event]:
    events = [
        *write("w0", 1, 1.0, 1.1),
        *write("w0", 2, 5.0, 5.1),
        *write("w1", 3, 9.95, 10.05),  # in flight at T
        *write("w0", 4, 10.5, 10.6),  # acknowledged after T (committed before the DROP)
        *write("w0", 5, 11.0, 11.1, "fail", None),  # the table is gone
        fault(T, "table", "drop-table"),
    ]
    value = {"cluster": "shop-pitr", "target": at(T), "seconds": 12.5}
    value |= {"rows": rows} if rows is not None else {"error": error}
    return [*events, Event(at(30.0), "nemesis", "info", RESTORED, value)]


def test_every_row_before_t_and_none_after_is_exact() -> None:
    for rows in ([1, 2], [1, 2, 3]):  # the one in flight may go either way
        result = check_pitr_exact(history(rows), at(T))
        assert result.passed, result
        assert result.metrics["acknowledged_before"] == 2 and result.metrics["in_flight"] == 1


def test_a_row_acknowledged_before_t_missing_fails() -> None:
    result = check_pitr_exact(history([1]), at(T))
    assert not result.passed and "1 row(s) acknowledged before T missing" in result.summary
    assert result.details == ["acknowledged before T, missing: 2"]


def test_a_row_sent_after_t_present_fails() -> None:
    result = check_pitr_exact(history([1, 2, 4]), at(T))
    assert not result.passed and "1 sent after T present" in result.summary


def test_a_failed_or_missing_restore_fails() -> None:
    assert "the restore failed: the archive ends" in check_pitr_exact(history(None, "the archive ends"), at(T)).summary
    assert not check_pitr_exact(history([1, 2])[:-1], at(T)).passed


def test_drop_table_is_judged_by_its_own_verdict_only() -> None:
    results = single_results(history([1, 2]), final=FinalState(primary=None, rows={}, caught_up={}), fault_time=at(T),
                             target="table",
                             nodes=("node0",), fault="drop-table")
    assert [r.name for r in results] == ["pitr_exact"]


def test_the_restored_cluster_is_named_beside_the_drilled_one() -> None:
    assert pitr_name("shop") == "shop-pitr"
    assert len(pitr_name("a" * 31)) <= 31
