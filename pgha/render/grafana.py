"""Spec -> a Grafana dashboard for one cluster, as JSON (pure).

Grafana is not packaged for Debian, so pgha does not run one; users who do import this file
(Dashboards -> Import) and pick their Prometheus as the data source. The panels read the same
series as the alert rules and `pgha top` (roles, replica lag, WAL written, sessions through the
entrypoints, targets answering, the DCS's leader, the alerts firing); `dashboard_queries` lists
every expression, and the integration test runs each against a real Prometheus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pgha.model.spec import Spec
from pgha.model.topology import RO_PROXY, RW_PROXY
from pgha.render.alert_rules import replica_lag_expr

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANEL_WIDTH, PANEL_HEIGHT = 12, 8


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    legend: str
    unit: str  # Grafana's unit id
    description: str


def panels(spec: Spec) -> list[Panel]:
    scope = spec.patroni_scope
    s = f'scope="{scope}"'
    entrypoints = f'{s},proxy=~"{RW_PROXY}|{RO_PROXY}"'
    found = [
        Panel("Primary (1) per node", f"patroni_primary{{{s}}}", "{{name}}", "none",
              "Patroni's own view: exactly one node should be 1; none or two is an alert."),
        Panel("Replica lag behind the primary", replica_lag_expr(scope), "{{name}}", "bytes",
              "Bytes of WAL each replica has yet to replay; Patroni promotes no replica beyond "
              "maximum_lag_on_failover."),
        Panel("WAL written by the primary",
              f"sum(rate(patroni_xlog_location{{{s}}}[1m]) * on(scope, name) patroni_primary{{{s}}})",
              "WAL/s", "Bps", "How fast the primary writes WAL: the write load as the database sees it."),
        Panel("Sessions through HAProxy",
              f"sum by (haproxy, proxy) (haproxy_frontend_current_sessions{{{entrypoints}}})",
              "{{haproxy}} {{proxy}}", "none", "Client sessions open on each entrypoint."),
        Panel("Targets answering", f"up{{{s}}}", "{{job}} {{name}}{{haproxy}}{{member}}", "none",
              "1 when Prometheus's last scrape of the component succeeded."),
        Panel("Alerts firing", f'ALERTS{{{s},alertstate="firing"}}', "{{alertname}} {{name}}{{haproxy}}{{member}}",
              "none", "pgha's alert rules (conf/prometheus-rules.yml), each with a runbook line."),
    ]
    if spec.dcs.kind == "etcd":
        found.append(Panel("etcd members with a leader", f"etcd_server_has_leader{{{s}}}", "{{member}}", "none",
                           "0 on every member: the DCS has lost its quorum and no failover can happen."))
    return found


def dashboard_queries(spec: Spec) -> list[str]:
    return [p.expr for p in panels(spec)]


def _panel(k: int, p: Panel) -> dict[str, Any]:
    return {
        "id": k + 1, "type": "timeseries", "title": p.title, "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": (k % 2) * PANEL_WIDTH, "y": (k // 2) * PANEL_HEIGHT, "w": PANEL_WIDTH, "h": PANEL_HEIGHT},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [{"refId": "A", "datasource": DATASOURCE, "expr": p.expr, "legendFormat": p.legend}],
    }


def render_dashboard(spec: Spec) -> str:
    scope = spec.patroni_scope
    board = {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "title": f"pgha {scope}", "uid": f"pgha-{scope}"[:40], "tags": ["pgha", "patroni", "postgresql"],
        "timezone": "utc", "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": [_panel(k, p) for k, p in enumerate(panels(spec))],
    }
    return json.dumps(board, indent=2) + "\n"
