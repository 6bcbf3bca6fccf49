"""What `pgha top` shows: the cluster as its Prometheus sees it now, and the last minutes of the
few series an operator watches (WAL written, replication lag, sessions through the entrypoints).

`read_top` asks Prometheus; `top_view` builds the view from the answers and is pure, so the
frame the terminal shows can be tested without a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pgha.model.topology import RO_PROXY, RW_PROXY
from pgha.net.reach import Reach
from pgha.ops import monitoring
from pgha.ops.monitoring import Alert, Sample, Series
from pgha.render.alert_rules import JOB_DCS, JOB_HAPROXY, JOB_PATRONI, replica_lag_expr

WINDOW_S = 300.0  # how far back the sparklines reach
STEP_S = 10.0
_PATRONI = ("primary", "sync_standby", "replica", "postgres_running", "postgres_timeline", "xlog_location",
            "xlog_replayed_location")


@dataclass(frozen=True)
class MemberRow:
    name: str
    role: str  # primary | sync standby | replica | stopped (Patroni answers, PostgreSQL does not) | silent
    timeline: int | None
    lag_bytes: float | None  # behind the primary's WAL (replicas only)
    lag_history: tuple[float, ...]


@dataclass(frozen=True)
class TopView:
    scope: str
    at: float
    members: tuple[MemberRow, ...]
    wal_rate: tuple[float, ...]  # bytes/s the primary wrote, oldest first
    sessions: dict[str, float]  # HAProxy -> client sessions through its entrypoints now
    session_history: tuple[float, ...]
    dcs: dict[str, bool]  # DCS member -> answering its metrics
    haproxies_up: dict[str, bool]
    alerts: tuple[Alert, ...]

    @property
    def primary(self) -> str | None:
        return next((m.name for m in self.members if m.role == "primary"), None)


def _values(points: list[tuple[float, float]]) -> tuple[float, ...]:
    return tuple(v for _, v in points)


def top_view(scope: str, at: float, nodes: Sequence[str], up: list[Sample], patroni: list[Sample],
             lag: list[Series], wal: list[Series], sessions: list[Sample], session_history: list[Series],
             alerts: tuple[Alert, ...]) -> TopView:
    """The view from Prometheus's answers (pure). Every node of the spec has a row, even one
    Prometheus has never heard of."""
    answering = {(s["job"], s.get("name") or s.get("haproxy") or s.get("member") or ""): v == 1 for s, v in up}
    by_node: dict[str, dict[str, float]] = {}
    for labels, value in patroni:
        metric = labels.get("__name__", "").removeprefix("patroni_")
        by_node.setdefault(labels.get("name", "?"), {})[metric] = value
    primary_wal = next((m.get("xlog_location") for m in by_node.values() if m.get("primary") == 1), None)
    lag_by_node = {labels.get("name", "?"): _values(points) for labels, points in lag}
    rows = []
    for node in nodes:
        m = by_node.get(node, {})
        if not answering.get((JOB_PATRONI, node), False):
            role = "silent"
        elif m.get("postgres_running") == 0:
            role = "stopped"
        elif m.get("primary") == 1:
            role = "primary"
        elif m.get("sync_standby") == 1:
            role = "sync standby"
        else:
            role = "replica"
        behind = None
        if role in ("sync standby", "replica") and primary_wal is not None and "xlog_replayed_location" in m:
            behind = max(0.0, primary_wal - m["xlog_replayed_location"])
        timeline = m.get("postgres_timeline")
        rows.append(MemberRow(node, role, int(timeline) if timeline else None, behind, lag_by_node.get(node, ())))
    return TopView(
        scope=scope, at=at, members=tuple(rows),
        wal_rate=_values(wal[0][1]) if wal else (),
        sessions={labels.get("haproxy", "?"): value for labels, value in sessions},
        session_history=_values(session_history[0][1]) if session_history else (),
        dcs={name: ok for (job, name), ok in sorted(answering.items()) if job == JOB_DCS},
        haproxies_up={name: ok for (job, name), ok in sorted(answering.items()) if job == JOB_HAPROXY},
        alerts=alerts,
    )


def read_top(reach: Reach, password: str, scope: str, nodes: Sequence[str]) -> TopView:
    """One frame of `pgha top`: a handful of queries to the cluster's Prometheus."""
    s = f'scope="{scope}"'
    now = time.time()
    start = now - WINDOW_S

    def q(promql: str) -> list[Sample]:
        return monitoring.instant(reach, password, promql)

    def r(promql: str) -> list[Series]:
        return monitoring.over_time(reach, password, promql, start, now, STEP_S)

    entrypoints = f'{s},proxy=~"{RW_PROXY}|{RO_PROXY}"'
    return top_view(
        scope, now, nodes,
        up=q(f"up{{{s}}}"),
        patroni=q(f'{{__name__=~"patroni_({"|".join(_PATRONI)})",{s}}}'),
        lag=r(replica_lag_expr(scope)),
        wal=r(f"sum(rate(patroni_xlog_location{{{s}}}[30s]) * on(scope, name) patroni_primary{{{s}}})"),
        sessions=q(f"sum by (haproxy) (haproxy_frontend_current_sessions{{{entrypoints}}})"),
        session_history=r(f"sum(haproxy_frontend_current_sessions{{{entrypoints}}})"),
        alerts=monitoring.parse_alerts(monitoring.raw_alerts(reach, password)),
    )


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 30) -> str:
    """The last `width` values as block characters, scaled from 0 to their maximum (pure)."""
    shown = [v for v in values if v == v][-width:]  # NaN != NaN: gaps are left out
    if not shown:
        return ""
    top = max(shown)
    if top <= 0:
        return SPARKS[0] * len(shown)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in shown)


def human_bytes(value: float | None) -> str:
    if value is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
