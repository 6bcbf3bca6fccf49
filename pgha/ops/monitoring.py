"""What the cluster's Prometheus says, for `pgha status`: its scrape targets and the alerts that
fire (its HTTP API, with the stats user's password; over HTTPS with TLS)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from pgha.net.dial import http_request
from pgha.net.reach import Reach
from pgha.state.secrets import STATS_USER

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # pending | firing
    severity: str
    summary: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "state": self.state, "severity": self.severity, "summary": self.summary}


@dataclass(frozen=True)
class MonitoringView:
    url: str
    targets: int
    down: tuple[str, ...]  # "job target: why", for each target whose last scrape failed
    alerts: tuple[Alert, ...]

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.state == "firing")

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "targets": self.targets, "targets_up": self.targets - len(self.down),
                "down": list(self.down), "alerts": [a.to_json() for a in self.alerts]}


class MonitoringError(Exception):
    """Prometheus did not answer as it should (one line)."""


def _api(reach: Reach, password: str, path: str) -> Any:
    ep = reach.prometheus()
    if ep is None:
        raise MonitoringError("the cluster runs no Prometheus (monitoring.enabled is false)")
    auth = base64.b64encode(f"{STATS_USER}:{password}".encode()).decode()
    try:
        status, body = http_request(ep, path, TIMEOUT_S, headers={"Authorization": f"Basic {auth}"})
    except OSError as e:
        raise MonitoringError(f"Prometheus at {ep} does not answer ({e.__class__.__name__})") from None
    if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
        raise MonitoringError(f"Prometheus at {ep} answered {path} with HTTP {status}")
    return body["data"]


def parse_targets(data: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    """(how many active targets, those whose last scrape failed) from /api/v1/targets (pure)."""
    active = data.get("activeTargets") or []
    down = tuple(f"{_target_name(t)}: {t.get('lastError') or 'down'}" for t in active if t.get("health") != "up")
    return len(active), down


def _target_name(target: dict[str, Any]) -> str:
    """The component a target is (the labels pgha's scrape configuration gives), else its URL."""
    labels = target.get("labels") or {}
    name = labels.get("name") or labels.get("haproxy") or labels.get("member") or target.get("scrapeUrl", "?")
    return f"{labels.get('job', '?')} {name}"


def parse_alerts(data: dict[str, Any]) -> tuple[Alert, ...]:
    """The alerts of /api/v1/alerts, firing first (pure)."""
    alerts = [Alert(str(a.get("labels", {}).get("alertname", "?")), str(a.get("state", "?")),
                    str(a.get("labels", {}).get("severity", "")), str(a.get("annotations", {}).get("summary", "")))
              for a in data.get("alerts") or []]
    return tuple(sorted(alerts, key=lambda a: (a.state != "firing", a.name, a.summary)))


def monitoring_view(reach: Reach, password: str) -> MonitoringView:
    ep = reach.prometheus()
    scheme = "https" if ep is not None and ep.tls else "http"
    targets, down = parse_targets(_api(reach, password, "/api/v1/targets?state=active"))
    return MonitoringView(f"{scheme}://{ep.host}:{ep.port}" if ep else "", targets, down,
                          parse_alerts(_api(reach, password, "/api/v1/alerts")))
