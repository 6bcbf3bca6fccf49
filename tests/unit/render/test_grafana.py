"""The Grafana dashboard: valid JSON Grafana imports (a data-source input, one panel per query),
and every query PromQL that Prometheus's own parser accepts (promtool, no server)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pgha.model.spec import build_spec
from pgha.render.grafana import dashboard_queries, render_dashboard

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SPECS = {"etcd": build_spec("default", overrides={"name": "demo"}),
         "zookeeper": build_spec("seed", overrides={"name": "lab"})}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_dashboard_is_one_panel_per_query_of_the_clusters_scope(name: str) -> None:
    spec = SPECS[name]
    board = json.loads(render_dashboard(spec))
    assert board["uid"] == f"pgha-{spec.patroni_scope}" and board["__inputs"][0]["pluginId"] == "prometheus"
    exprs = [p["targets"][0]["expr"] for p in board["panels"]]
    assert exprs == dashboard_queries(spec) and len({p["id"] for p in board["panels"]}) == len(exprs)
    assert all(f'scope="{spec.patroni_scope}"' in e for e in exprs)
    # The DCS panel reads etcd's own series: a ZooKeeper cluster has none.
    assert any("etcd_server_has_leader" in e for e in exprs) == (spec.dcs.kind == "etcd")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_query_parses(tmp_path: Path, name: str) -> None:
    # As recording rules, promtool's rule checker parses each expression with Prometheus's parser.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"pgha:panel{k}", "expr": e}
                                                        for k, e in enumerate(dashboard_queries(SPECS[name]))]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "panels.yml")], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
