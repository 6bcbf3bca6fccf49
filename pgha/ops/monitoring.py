"""What the cluster's Prometheus says: its scrape targets and the alerts that fire (for `pgha
status`), and which alerts went pending, fired and resolved over a stretch of time (for a drill's
history). Its HTTP API, with the stats user's password; over HTTPS with TLS."""

from __future__ import annotations

import base64
import math
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
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


Sample = tuple[dict[str, str], float]  # a series' labels and its value
Series = tuple[dict[str, str], list[tuple[float, float]]]  # a series' labels and its (time, value) points


def instant(reach: Reach, password: str, promql: str) -> list[Sample]:
    """An instant query's vector: each series' labels and value (NaN and Inf kept as floats)."""
    data = _api(reach, password, f"/api/v1/query?query={urllib.parse.quote(promql)}")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise MonitoringError(f"Prometheus answered {promql!r} with something other than a vector")
    return [({str(k): str(v) for k, v in (r.get("metric") or {}).items()}, float(r["value"][1]))
            for r in data.get("result") or []]


def over_time(reach: Reach, password: str, promql: str, start: float, end: float, step_s: float) -> list[Series]:
    """A range query's matrix: each series' labels and its points from `start` to `end`."""
    query = urllib.parse.quote(promql)
    data = _api(reach, password, f"/api/v1/query_range?query={query}&start={start:.3f}&end={end:.3f}&step={step_s:g}")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise MonitoringError(f"Prometheus answered {promql!r} with something other than a matrix")
    return [({str(k): str(v) for k, v in (r.get("metric") or {}).items()},
             [(float(t), float(v)) for t, v in r.get("values") or []]) for r in data.get("result") or []]


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


@dataclass(frozen=True)
class AlertSpan:
    """One alert instance (a rule and the labels its expression gave) over a stretch of time, as
    Prometheus's own ALERTS series recorded it at each evaluation."""

    name: str
    labels: dict[str, str] = field(hash=False)  # the instance's labels (name, haproxy, member, ...)
    severity: str
    pending_at: float | None  # first evaluation that found it pending (None: it was firing already)
    firing_at: float | None  # first evaluation that found it firing (None: it never fired)
    last_seen: float  # the last evaluation that found it active
    active_at_end: bool  # still active at the end of the stretch

    @property
    def began(self) -> float:
        return self.pending_at if self.pending_at is not None else (self.firing_at or self.last_seen)

    def subject(self) -> str:
        """What the alert is about: the node, HAProxy or DCS member it names (else the cluster)."""
        return self.labels.get("name") or self.labels.get("haproxy") or self.labels.get("member") or "cluster"


# Labels of ALERTS that say which series it is, not what the alert is about.
_SERIES_LABELS = {"__name__", "alertname", "alertstate", "severity", "scope"}


def parse_alert_samples(result: list[dict[str, Any]], until: float, evaluation_s: float) -> list[AlertSpan]:
    """AlertSpans from the raw samples of a range selector over ALERTS (an instant query of
    `ALERTS{...}[Ns]` at `until`), in the order they began (pure). An instance whose last sample
    is within two evaluations of `until` is still active."""
    instances: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}
    for series in result:
        metric = series.get("metric") or {}
        labels = {k: str(v) for k, v in metric.items() if k not in _SERIES_LABELS}
        key = (str(metric.get("alertname", "?")), tuple(sorted(labels.items())))
        times = sorted(float(t) for t, _ in series.get("values") or [])
        if not times:
            continue
        seen = instances.setdefault(key, {"labels": labels, "severity": str(metric.get("severity", "")),
                                          "pending": [], "firing": []})
        seen["pending" if metric.get("alertstate") == "pending" else "firing"].extend(times)
    spans = []
    for (name, _), seen in instances.items():
        every = sorted(seen["pending"] + seen["firing"])
        firing_at = min(seen["firing"]) if seen["firing"] else None
        pending = [t for t in seen["pending"] if firing_at is None or t <= firing_at]
        spans.append(AlertSpan(name, seen["labels"], seen["severity"], min(pending) if pending else None, firing_at,
                               every[-1], until - every[-1] <= 2 * evaluation_s))
    return sorted(spans, key=lambda a: (a.began, a.name))


def alert_history(reach: Reach, password: str, scope: str, since: float, until: float,
                  evaluation_s: float) -> list[AlertSpan]:
    """Every alert of the cluster `scope` that was pending or firing between `since` and `until`."""
    seconds = max(1, math.ceil(until - since))
    query = urllib.parse.quote(f'ALERTS{{scope="{scope}"}}[{seconds}s]')
    data = _api(reach, password, f"/api/v1/query?query={query}&time={until:.3f}")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise MonitoringError("Prometheus answered the ALERTS query with something other than a matrix")
    return parse_alert_samples(data.get("result") or [], until, evaluation_s)


def active_since(reach: Reach, password: str, scope: str, since: float) -> list[str]:
    """The alerts of cluster `scope` active now that became active at or after `since`."""
    data = raw_alerts(reach, password)
    found = []
    for a in data.get("alerts") or []:
        labels = a.get("labels") or {}
        began = _rfc3339(str(a.get("activeAt", "")))
        if labels.get("scope") == scope and (began is None or began >= since):
            found.append(f"{labels.get('alertname', '?')} ({a.get('state', '?')})")
    return sorted(found)


def _rfc3339(stamp: str) -> float | None:
    try:  # Python 3.11 reads Prometheus's nanoseconds and its 'Z'
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def raw_alerts(reach: Reach, password: str) -> dict[str, Any]:
    """/api/v1/alerts as Prometheus answers it."""
    data = _api(reach, password, "/api/v1/alerts")
    return data if isinstance(data, dict) else {}


def monitoring_view(reach: Reach, password: str) -> MonitoringView:
    ep = reach.prometheus()
    scheme = "https" if ep is not None and ep.tls else "http"
    targets, down = parse_targets(_api(reach, password, "/api/v1/targets?state=active"))
    return MonitoringView(f"{scheme}://{ep.host}:{ep.port}" if ep else "", targets, down,
                          parse_alerts(raw_alerts(reach, password)))
