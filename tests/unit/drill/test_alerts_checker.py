"""The alerts verdict and the history's record of Prometheus's alerts, from hand-made evidence:
an expected alert must fire when the fault outlasted what the alert needs, none may stay active,
and a Prometheus that does not answer is a failure, not a silence."""

from __future__ import annotations

from pgha.drill.checkers.alerts import alert_changes, check_alerts, describe, firing_spans, series_of
from pgha.drill.history import Event, FinalState
from pgha.drill.run import alert_events, single_results
from pgha.ops.monitoring import AlertSpan

FAULT, HEAL = 100.0, 125.0


def expect(heal: float = HEAL, needs: float = 20.0) -> Event:
    return Event(heal, "drill", "info", "expect_alert", {"alert": "PghaNodeUnreachable", "label": "name",
                                                         "subject": "node0", "fault_time": FAULT,
                                                         "heal_time": heal, "needs_s": needs})


def alert(t: float, state: str, name: str = "node0", fired: bool = True) -> Event:
    return Event(t, "prometheus", "info", "alert", {"alert": "PghaNodeUnreachable", "state": state,
                                                    "labels": {"name": name}, "severity": "critical",
                                                    "fired": fired}, name)


def read(active: list[str] | None = None, error: str | None = None) -> Event:
    return Event(140.0, "prometheus", "info", "alerts_read",
                 {"error": error} if error else {"active": active or [], "waited_s": 4.0})


def test_an_expected_alert_that_fired_and_resolved_passes_with_its_latency() -> None:
    events = [expect(), alert(102.0, "pending"), alert(114.0, "firing"), alert(130.0, "resolved"), read()]
    result = check_alerts(events)
    assert result.passed, result
    assert result.metrics["first_expected_firing_s"] == 14.0 and result.metrics["expected"] == 1
    assert "PghaNodeUnreachable fired for node0 14.0 s after the fault" in result.summary


def test_an_expected_alert_that_never_fired_fails() -> None:
    events = [expect(), alert(102.0, "pending"), alert(110.0, "resolved", fired=False), read()]
    result = check_alerts(events)
    assert not result.passed and "did not fire for node0 although the fault lasted 25.0 s" in result.summary
    # The same alert about another node is not the one expected.
    other = [expect(), alert(114.0, "firing", name="node1"), alert(130.0, "resolved", name="node1"), read()]
    assert not check_alerts(other).passed


def test_a_fault_shorter_than_the_alert_needs_expects_nothing() -> None:
    short = [expect(heal=108.0), alert(102.0, "pending"), alert(112.0, "resolved", fired=False), read()]
    result = check_alerts(short)
    assert result.passed and result.metrics["expected"] == 0 and result.metrics["pending_only"] == 1
    assert any("shorter than the 20 s PghaNodeUnreachable needs" in d for d in result.details), result.details


def test_an_alert_still_active_after_the_drill_fails() -> None:
    result = check_alerts([expect(), alert(114.0, "firing"), read(active=["PghaNodeUnreachable (firing)"])])
    assert not result.passed
    assert "still active 4 s after the load stopped: PghaNodeUnreachable (firing)" in result.summary


def test_a_prometheus_that_does_not_answer_fails() -> None:
    result = check_alerts([expect(), read(error="Prometheus at 127.0.0.1:5440 does not answer")])
    assert not result.passed and "could not be read" in result.summary


def test_the_verdict_is_given_only_when_prometheus_was_read() -> None:
    final = FinalState(primary="node0", rows={}, caught_up={})
    base = [Event(FAULT, "nemesis", "info", "fault", {"fault": "stop", "target": "node0"})]
    without = [r.name for r in single_results(base, final, FAULT, "node0", ("node0", "node1"), "stop")]
    assert "alerts" not in without
    watched = [r.name for r in single_results([*base, read()], final, FAULT, "node0", ("node0", "node1"), "stop")]
    assert watched[-1] == "alerts"
    # A fault with verdicts of its own (a disaster raises everything) is not judged by its alerts.
    disaster = single_results([*base, read()], final, FAULT, "cluster", ("node0",), "disaster", rpo_bound_s=15.0)
    assert "alerts" not in [r.name for r in disaster]


def test_spans_become_history_events_and_timeline_lines() -> None:
    spans = [AlertSpan("PghaNodeUnreachable", {"name": "node0"}, "critical", 102.0, 114.0, 128.0, False),
             AlertSpan("PghaHaproxyDown", {"haproxy": "haproxy"}, "critical", 104.0, None, 106.0, False),
             AlertSpan("PghaPendingRestart", {"name": "node1"}, "warning", None, 90.0, 140.0, True)]
    events = alert_events(spans, since=95.0)
    # The pending restart was firing before the run began: not the run's.
    assert [(e.time, e.value["alert"], e.value["state"]) for e in events] == [
        (102.0, "PghaNodeUnreachable", "pending"), (114.0, "PghaNodeUnreachable", "firing"),
        (130.0, "PghaNodeUnreachable", "resolved"), (104.0, "PghaHaproxyDown", "pending"),
        (108.0, "PghaHaproxyDown", "resolved")]
    assert [describe(c) for c in alert_changes(events)] == [
        "PghaNodeUnreachable (node0) pending", "PghaHaproxyDown (haproxy) pending",
        "PghaHaproxyDown (haproxy) no longer pending (it never fired)", "PghaNodeUnreachable (node0) firing",
        "PghaNodeUnreachable (node0) resolved"]


def test_firing_spans_pair_each_firing_with_its_resolution() -> None:
    events = [alert(102.0, "pending"), alert(114.0, "firing"), alert(130.0, "resolved"),
              alert(120.0, "firing", name="node1")]
    assert firing_spans(events) == [(114.0, 130.0, "PghaNodeUnreachable (node0)"),
                                    (120.0, None, "PghaNodeUnreachable (node1)")]
    lag = Event(140.0, "prometheus", "info", "series", {"series": "lag_bytes", "labels": {"name": "node1"},
                                                        "points": [[2.0, 5.0], [1.0, 0.0]]})
    assert series_of([lag], "lag_bytes") == {"node1": [(1.0, 0.0), (2.0, 5.0)]} and series_of([lag], "other") == {}


def test_what_prometheus_says_at_the_end_decides_whether_an_alert_is_still_active() -> None:
    # Seen pending at the last evaluation, but gone when the drill asked: it resolved.
    span = AlertSpan("PghaPostgresNotRunning", {"name": "node0"}, "critical", 136.0, None, 138.0, True)
    assert [e.value["state"] for e in alert_events([span], since=95.0)] == ["pending"]
    assert [e.value["state"] for e in alert_events([span], since=95.0, still_active=set())] == ["pending", "resolved"]
    assert [e.value["state"] for e in alert_events([span], 95.0, {"PghaPostgresNotRunning"})] == ["pending"]
