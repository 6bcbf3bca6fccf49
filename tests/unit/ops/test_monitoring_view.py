"""What pgha reads from Prometheus's API, and the password hash its web configuration holds
(no servers)."""

from __future__ import annotations

import bcrypt

from pgha.components.monitor import password_hash
from pgha.ops.monitoring import parse_alert_samples, parse_alerts, parse_targets


def test_targets_that_failed_their_last_scrape_are_named_with_why() -> None:
    data = {"activeTargets": [
        {"labels": {"job": "patroni"}, "scrapeUrl": "http://127.0.1.1:5452/metrics", "health": "up", "lastError": ""},
        {"labels": {"job": "patroni", "name": "node1"}, "scrapeUrl": "http://127.0.1.1:5453/metrics",
         "health": "down", "lastError": "connection refused"},
        {"labels": {"job": "dcs"}, "scrapeUrl": "http://127.0.1.1:5462/metrics", "health": "unknown"},
    ]}
    assert parse_targets(data) == (3, ("patroni node1: connection refused",
                                       "dcs http://127.0.1.1:5462/metrics: down"))
    assert parse_targets({}) == (0, ())


def test_firing_alerts_come_first() -> None:
    data = {"alerts": [
        {"labels": {"alertname": "PghaReplicaNotStreaming", "severity": "warning"}, "state": "pending",
         "annotations": {"summary": "replica node2 is not streaming from the primary"}},
        {"labels": {"alertname": "PghaNodeUnreachable", "severity": "critical"}, "state": "firing",
         "annotations": {"summary": "Patroni on node2 does not answer its metrics"}},
    ]}
    alerts = parse_alerts(data)
    assert [(a.name, a.state) for a in alerts] == [("PghaNodeUnreachable", "firing"),
                                                    ("PghaReplicaNotStreaming", "pending")]


def test_the_hash_is_the_same_for_the_same_secrets_and_verifies() -> None:
    first, again = password_hash("s3cret", "default"), password_hash("s3cret", "default")
    assert first == again and first.startswith("$2b$10$")
    assert bcrypt.checkpw(b"s3cret", first.encode()) and not bcrypt.checkpw(b"other", first.encode())
    assert password_hash("s3cret", "other-cluster") != first


def _series(alertstate: str, times: list[float], **labels: str) -> dict[str, object]:
    return {"metric": {"__name__": "ALERTS", "alertname": "PghaNodeUnreachable", "alertstate": alertstate,
                       "severity": "critical", "scope": "demo", **labels},
            "values": [[t, "1"] for t in times]}


def test_alert_samples_become_one_span_per_instance_pending_then_firing() -> None:
    result = [_series("pending", [100.0, 102.0, 104.0, 106.0, 108.0, 110.0], name="node0"),
              _series("firing", [112.0, 114.0, 116.0], name="node0"),
              _series("pending", [104.0, 106.0], name="node1")]
    spans = parse_alert_samples(result, until=130.0, evaluation_s=2.0)
    assert [(s.subject(), s.pending_at, s.firing_at, s.last_seen, s.active_at_end) for s in spans] == [
        ("node0", 100.0, 112.0, 116.0, False), ("node1", 104.0, None, 106.0, False)]
    assert spans[0].labels == {"name": "node0"} and spans[0].severity == "critical"


def test_an_alert_seen_at_the_last_evaluation_is_still_active() -> None:
    spans = parse_alert_samples([_series("firing", [120.0, 122.0, 124.0], haproxy="haproxy")], 126.0, 2.0)
    assert len(spans) == 1 and spans[0].active_at_end and spans[0].pending_at is None
    assert spans[0].subject() == "haproxy" and spans[0].began == 120.0
    assert parse_alert_samples([{"metric": {"alertname": "X"}, "values": []}], 1.0, 2.0) == []
