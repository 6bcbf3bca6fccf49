"""The alert rules, run by Prometheus's own promtool against synthetic series: a healthy cluster
fires nothing; each broken one fires exactly the alerts it should, after their `for:` (no server:
`promtool test rules` evaluates the rules itself)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgha.model.spec import build_spec
from pgha.render.alert_rules import JOB_DCS, JOB_HAPROXY, JOB_PATRONI, LAG_BYTES, cluster_rules, render_alert_rules

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's prometheus (make setup installs it)
SCOPE = "default"
NODES = ("node0", "node1", "node2")
MINUTES = 10  # every series runs this long, one sample a second


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _constant(value: float) -> str:
    return f"{value:g}x{MINUTES * 60}"


def _node(name: str, role: str, *, up: bool = True, streaming: bool = True, sync: bool = False,
          replayed: float = 5e8, pending: bool = False) -> list[dict[str, str]]:
    """What Patroni's /metrics gives for one node (and the scrape's `up`, which carries the
    target's labels scope and name, as the scrape configuration sets them); none of it when the
    scrape fails, as a Patroni that does not answer gives nothing."""
    labels = {"job": JOB_PATRONI, "instance": f"{name}:8008", "scope": SCOPE, "name": name}
    out = [_series("up", labels, _constant(1 if up else 0))]
    if not up:
        return out
    primary = role == "primary"
    for metric, value in (("patroni_primary", primary), ("patroni_replica", not primary),
                          ("patroni_postgres_running", 1), ("patroni_postgres_streaming", streaming and not primary),
                          ("patroni_sync_standby", sync), ("patroni_pending_restart", pending),
                          ("patroni_xlog_location", 5e8 if primary else 0),
                          ("patroni_xlog_replayed_location", 0 if primary else replayed)):
        out.append(_series(metric, labels, _constant(float(value))))
    return out


def _healthy_extras(dcs_up: tuple[bool, ...] = (True, True, True), routes: int = 1) -> list[dict[str, str]]:
    haproxy = {"job": JOB_HAPROXY, "instance": "127.0.0.1:5002", "scope": SCOPE, "haproxy": "haproxy"}
    out = [_series("up", haproxy, _constant(1)),
           _series("haproxy_backend_active_servers", {**haproxy, "proxy": "primary"}, _constant(routes))]
    for i, up in enumerate(dcs_up):
        target = _dcs(i)
        out.append(_series("up", target, _constant(1 if up else 0)))
        if up:
            out.append(_series("etcd_server_has_leader", target, _constant(1)))
    return out


def _healthy_nodes() -> list[dict[str, str]]:
    return [*_node("node0", "primary"), *_node("node1", "replica", sync=True), *_node("node2", "replica")]


def _dcs(i: int) -> dict[str, str]:
    return {"job": JOB_DCS, "instance": f"127.0.0.1:{2379 + 10 * i}", "scope": SCOPE, "member": f"dcs{i}"}


def _patroni(name: str) -> dict[str, str]:
    return {"job": JOB_PATRONI, "instance": f"{name}:8008", "scope": SCOPE, "name": name}


RULES = {r.name: r for r in cluster_rules(build_spec("default"))}


def _expected(alert: str, labels: dict[str, str], value: str = "") -> dict[str, Any]:
    """The alert as Prometheus builds it: the series' labels, the rule's, its annotations expanded."""
    rule = RULES[alert]
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule.summary)
    summary = re.sub(r"\{\{ \$value[^}]*\}\}", value, summary)
    return {"exp_labels": {**labels, "severity": rule.severity, "scope": SCOPE},
            "exp_annotations": {"summary": summary, "runbook": rule.runbook}}


def _run(tmp_path: Path, series: list[dict[str, str]], at_s: int, firing: dict[str, list[dict[str, Any]]]) -> None:
    """Every rule evaluated at `at_s`: those in `firing` fire with exactly those alerts, the others
    fire nothing."""
    (tmp_path / "rules.yml").write_text(render_alert_rules(build_spec("default")))
    checks = [{"eval_time": f"{at_s}s", "alertname": name, "exp_alerts": firing.get(name, [])} for name in RULES]
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1s",
            "tests": [{"interval": "1s", "input_series": series, "alert_rule_test": checks}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_pass_promtools_own_check(tmp_path: Path) -> None:
    for spec in (build_spec("default"), build_spec("default", overrides={"dcs": {"members": 1}}),
                 build_spec("default", overrides={"dcs": {"kind": "zookeeper"}})):
        path = tmp_path / "rules.yml"
        path.write_text(render_alert_rules(spec))
        done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_healthy_cluster_fires_nothing(tmp_path: Path) -> None:
    _run(tmp_path, [*_healthy_nodes(), *_healthy_extras()], 120, {})


def test_a_lost_primary_fires_no_primary_unreachable_and_no_route(tmp_path: Path) -> None:
    series = [*_node("node0", "primary", up=False), *_node("node1", "replica", sync=True, streaming=False),
              *_node("node2", "replica", streaming=False), *_healthy_extras(routes=0)]
    _run(tmp_path, series, 60, {
        "PghaNoPrimary": [_expected("PghaNoPrimary", {})],
        "PghaNodeUnreachable": [_expected("PghaNodeUnreachable", _patroni("node0"))],
        "PghaNoHaproxyRoute": [_expected("PghaNoHaproxyRoute", {"job": JOB_HAPROXY, "instance": "127.0.0.1:5002",
                                                                "scope": SCOPE, "haproxy": "haproxy",
                                                                "proxy": "primary"})],
        "PghaReplicaNotStreaming": [_expected("PghaReplicaNotStreaming", _patroni(n)) for n in ("node1", "node2")],
        # No primary: no synchronous standby is asked for (a failover is what is wrong).
    })


def test_two_primaries_fire_at_once(tmp_path: Path) -> None:
    series = [*_node("node0", "primary"), *_node("node1", "primary"), *_node("node2", "replica"), *_healthy_extras()]
    _run(tmp_path, series, 1, {"PghaMoreThanOnePrimary": [_expected("PghaMoreThanOnePrimary", {}, "2")]})


def test_a_lagging_replica_and_a_missing_synchronous_standby(tmp_path: Path) -> None:
    behind = 5e8 - 2 * LAG_BYTES
    series = [*_node("node0", "primary"), *_node("node1", "replica"), *_node("node2", "replica", replayed=behind),
              *_healthy_extras()]
    _run(tmp_path, series, 60, {
        "PghaReplicaLagging": [_expected("PghaReplicaLagging", _patroni("node2"), "32Mi")],
        "PghaNoSynchronousStandby": [_expected("PghaNoSynchronousStandby", {})],
    })


def test_a_pending_restart_waits_five_minutes(tmp_path: Path) -> None:
    series = [*_node("node0", "primary", pending=True), *_node("node1", "replica", sync=True),
              *_node("node2", "replica"), *_healthy_extras()]
    _run(tmp_path, series, 200, {})
    _run(tmp_path, series, 400, {"PghaPendingRestart": [_expected("PghaPendingRestart", _patroni("node0"))]})


@pytest.mark.parametrize(("dcs_up", "alerts"), [
    ((True, True, False), ("PghaDcsMemberDown", "PghaDcsQuorumAtRisk")),
    ((True, False, False), ("PghaDcsMemberDown", "PghaDcsNoQuorum")),
])
def test_dcs_members_lost_one_then_two(tmp_path: Path, dcs_up: tuple[bool, ...], alerts: tuple[str, ...]) -> None:
    down = [_dcs(i) for i, up in enumerate(dcs_up) if not up]
    firing: dict[str, list[dict[str, Any]]] = {"PghaDcsMemberDown": [_expected("PghaDcsMemberDown", d) for d in down]}
    for name in alerts[1:]:
        firing[name] = [_expected(name, {})]
    _run(tmp_path, [*_healthy_nodes(), *_healthy_extras(dcs_up)], 60, firing)
