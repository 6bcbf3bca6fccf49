"""What pgha reads from Prometheus's API, and the password hash its web configuration holds
(no servers)."""

from __future__ import annotations

import bcrypt

from pgha.components.monitor import password_hash
from pgha.ops.monitoring import parse_alerts, parse_targets


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
