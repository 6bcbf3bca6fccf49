"""The scrape configuration: what the alert rules read is what it scrapes, labelled as they expect,
and Prometheus's own promtool accepts it (no server)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pgha.model.spec import build_spec
from pgha.model.topology import topology
from pgha.render.alert_rules import render_alert_rules
from pgha.render.prometheus import ScrapeFiles, render_prometheus_config

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's prometheus (make setup installs it)
SPECS = {"local": build_spec("default"), "netns": build_spec("default", overrides={"backend": "netns"}),
         "zookeeper": build_spec("default", overrides={"dcs": {"kind": "zookeeper"}})}


def _files(root: Path, tls: bool) -> ScrapeFiles:
    names = ("rules.yml", "ca.crt", "prometheus-dcs.crt", "prometheus-dcs.key", "stats-password")
    for name in names:
        (root / name).write_text("")
    path = [str(root / n) for n in names]
    return ScrapeFiles(path[0], *(path[1:4] if tls else (None, None, None)), path[4])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_rules_read_only_jobs_it_scrapes_with_the_labels_they_name(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    topo = topology(spec)
    config = yaml.safe_load(render_prometheus_config(topo, _files(tmp_path, spec.tls), "stats"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(re.findall(r'job="(\w+)"', render_alert_rules(spec))) <= set(jobs)
    for job in jobs.values():
        for group in job["static_configs"]:
            assert group["labels"]["scope"] == spec.patroni_scope
    assert [g["labels"]["name"] for g in jobs["patroni"]["static_configs"]] == list(spec.node_names)
    assert jobs["patroni"]["honor_labels"] is True
    if spec.tls:
        assert all(job["scheme"] == "https" and job["tls_config"]["ca_file"] for job in jobs.values())
        if "dcs" in jobs:
            assert jobs["dcs"]["tls_config"]["cert_file"].endswith("prometheus-dcs.crt")
    assert ("dcs" in jobs) == (spec.dcs.kind == "etcd")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_promtool_accepts_the_configuration_and_its_rules(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    files = _files(tmp_path, spec.tls)
    Path(files.rules).write_text(render_alert_rules(spec))
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus_config(topology(spec), files, "stats"))
    done = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
