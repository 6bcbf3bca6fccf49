"""The outage verdict against hand-made histories, each built to pass or to break it."""

from __future__ import annotations

import pytest
from histories import MS, at, failover_history, fault, role, shuffled, steps, write

from pgha.drill.checkers import check_outage, percentile


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
