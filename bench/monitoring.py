"""What monitoring costs and how fast it speaks: footprint at idle, scrape targets up after
`pgha up`, and the time from a frozen primary to the first alert.

    .venv/bin/python bench/monitoring.py [--runs 3] [--idle 60] [--profiles default,default-nofence]
        [--port-shift 0] [--out bench/results/monitoring.md]

Footprint: the same cluster shape (default profile: 3 nodes + 3 etcd + HAProxy + PgBouncer + the
fencing guard) brought up with and without Prometheus, one after the other, each left idle for
--idle seconds; CPU is every process of the cluster and its children (the scrapes cost Patroni,
HAProxy and etcd something too, not only Prometheus), as a share of one core. Targets: from the
start of `pgha up` and from its return (healthy) until Prometheus reports every target up.
Alerts: `pgha drill --fault freeze --hold 20`, per profile (with the fencing guard the primary is
replaced in ~3 s, so the no-primary alert has no time to fire and the node-unreachable alert is
the one that speaks; without it, the no-primary alert fires while Patroni waits out its ttl): the
seconds from the freeze to each alert's firing, and to its resolution after the heal. The effect
on failover figures comes from bench/failover.py with and without monitoring in the same run:

    .venv/bin/python bench/failover.py --profiles default,default-nomon --faults stop,kill \
        --out bench/results/failover-monitoring.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from failover import running, spec_for  # bench/ is this script's directory

from pgha.cluster import Cluster
from pgha.drill.checkers.alerts import alert_changes
from pgha.drill.history import read_history
from pgha.drill.run import DrillOptions, run_drill
from pgha.ops.monitoring import MonitoringError, monitoring_view
from pgha.report import build_report
from pgha.waiting import wait_until

RESULTS = Path(__file__).parent / "results" / "monitoring.md"
TARGETS_GOAL_S = 30.0
ALERT_GOAL_S = 15.0
RSS_GOAL_MIB = 150.0
CPU_GOAL_PERCENT = 3.0


def _processes(cluster: Cluster) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for component in cluster.backend().components():
        for pid in component.pids:
            try:
                proc = psutil.Process(pid)
                found[pid] = proc
                found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.Error:
                continue
    # Patroni detaches the postmaster: every process under the cluster's directory counts too.
    root = str(cluster.layout.root)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(root in part for part in proc.info["cmdline"] or ()):
            found.setdefault(proc.pid, proc)
            try:
                found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.Error:
                continue
    return list(found.values())


def _cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for proc in procs:
        try:
            t = proc.cpu_times()
            seconds[proc.pid] = t.user + t.system
        except psutil.Error:
            continue
    return seconds


def _rss_mib(procs: list[psutil.Process], only: str | None = None) -> float:
    total = 0
    for proc in procs:
        try:
            if only is None or only in proc.name():
                total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


@dataclass(frozen=True)
class Footprint:
    rss_mib: float
    prometheus_rss_mib: float
    cpu_percent: float  # of one core, the whole cluster
    prometheus_cpu_percent: float
    targets: int
    targets_after_start_s: float | None  # from the start of `up` (None: no Prometheus)
    targets_after_healthy_s: float | None


def footprint(profile: str, idle_s: float, port_shift: int) -> Footprint:
    spec = spec_for(profile, port_shift)
    start = time.monotonic()
    with running(spec, purge_after=True) as cluster:
        healthy = time.monotonic()
        targets, all_up = 0, None
        if spec.monitoring.enabled:
            def every_target_up() -> bool:
                nonlocal targets
                try:
                    view = monitoring_view(cluster.reach, cluster.secrets.stats_password)
                except MonitoringError:
                    return False
                targets = view.targets
                return view.targets > 0 and not view.down

            if wait_until(every_target_up, 120, every=0.25):
                all_up = time.monotonic()
        time.sleep(10)  # past the first backup and the replicas' catch-up
        procs = _processes(cluster)
        before = _cpu_seconds(procs)
        time.sleep(idle_s)
        after = _cpu_seconds(procs)
        used = {pid: after[pid] - before[pid] for pid in after if pid in before}
        prom = {p.pid for p in procs if _name(p) == "prometheus"}
        return Footprint(
            rss_mib=_rss_mib(procs), prometheus_rss_mib=_rss_mib(procs, "prometheus"),
            cpu_percent=100 * sum(used.values()) / idle_s,
            prometheus_cpu_percent=100 * sum(v for pid, v in used.items() if pid in prom) / idle_s,
            targets=targets,
            targets_after_start_s=None if all_up is None else all_up - start,
            targets_after_healthy_s=None if all_up is None else all_up - healthy)


def _name(proc: psutil.Process) -> str:
    try:
        return str(proc.name())
    except psutil.Error:
        return ""


@dataclass(frozen=True)
class AlertRun:
    outage_s: float | None
    fired: dict[str, float]  # alert -> seconds from the freeze to its firing
    resolved_after_heal: dict[str, float]  # alert -> seconds from the heal to its resolution
    passed: bool


def alert_runs(profile: str, runs: int, port_shift: int) -> list[AlertRun]:
    found = []
    with running(spec_for(profile, port_shift), purge_after=True) as cluster:
        for i in range(runs):
            outcome = run_drill(cluster, DrillOptions(fault="freeze", target="primary", via="haproxy", hold=20.0))
            build_report(outcome.run_dir)
            events = read_history(outcome.run_dir / "history.jsonl")
            fault = next(e.time for e in events if e.process == "nemesis" and e.op == "fault")
            heal = next(e.time for e in events if e.process == "nemesis" and e.op == "heal")
            fired: dict[str, float] = {}
            resolved: dict[str, float] = {}
            for c in alert_changes(events):
                if c.state == "firing" and c.time >= fault:
                    fired.setdefault(c.alert, c.time - fault)
                if c.state == "resolved" and c.fired and c.time >= heal:
                    resolved[c.alert] = c.time - heal
            outage = next((r.metrics.get("outage_s") for r in outcome.results if r.name == "outage"), None)
            run = AlertRun(float(outage) if isinstance(outage, int | float) else None, fired, resolved,
                           outcome.passed)
            found.append(run)
            print(f"  {profile} freeze #{i + 1}: outage {run.outage_s} s; fired "
                  + (", ".join(f"{a} after {s:.1f} s" for a, s in fired.items()) or "nothing")
                  + f"; {'PASS' if run.passed else 'FAIL'}  {outcome.run_dir}", flush=True)
    return found


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle to measure CPU over")
    parser.add_argument("--profiles", default="default,default-nofence", help="profiles the freeze runs on")
    parser.add_argument("--port-shift", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    home = Path(os.environ.get("PGHA_HOME") or tempfile.mkdtemp(prefix="pgha-bench-monitoring-", dir="/tmp"))
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    os.environ["PGHA_HOME"] = str(home)

    print("footprint: with Prometheus, then without", flush=True)
    on = footprint("default", args.idle, args.port_shift)
    off = footprint("default-nomon", args.idle, args.port_shift)
    for label, f in (("with", on), ("without", off)):
        print(f"  {label}: RSS {f.rss_mib:.0f} MiB, CPU {f.cpu_percent:.1f}% of a core; targets {f.targets} up "
              f"{f.targets_after_start_s} s after the start of up", flush=True)
    added_rss, added_cpu = on.rss_mib - off.rss_mib, on.cpu_percent - off.cpu_percent
    footprint_rows = [
        f"| RSS added | {added_rss:.0f} MiB (Prometheus itself {on.prometheus_rss_mib:.0f}; cluster {off.rss_mib:.0f}"
        f" -> {on.rss_mib:.0f}) | < {RSS_GOAL_MIB:.0f} MiB | {'met' if added_rss < RSS_GOAL_MIB else 'NOT met'} |",
        f"| CPU added at idle | {added_cpu:.1f}% of one core (Prometheus itself {on.prometheus_cpu_percent:.1f}%; "
        f"cluster {off.cpu_percent:.1f}% -> {on.cpu_percent:.1f}%) | < {CPU_GOAL_PERCENT:.0f}% | "
        f"{'met' if added_cpu < CPU_GOAL_PERCENT else 'NOT met'} |",
        f"| every target up | {on.targets} targets; {on.targets_after_start_s or 0:.1f} s after the start of "
        f"`pgha up`, {on.targets_after_healthy_s or 0:.1f} s after it returned | < {TARGETS_GOAL_S:.0f} s | "
        f"{'met' if (on.targets_after_start_s or 1e9) < TARGETS_GOAL_S else 'NOT met'} |",
    ]
    alert_rows = []
    for profile in args.profiles.split(","):
        runs = alert_runs(profile, args.runs, args.port_shift)
        names = sorted({a for r in runs for a in r.fired})
        for alert in names:
            fired = [r.fired[alert] for r in runs if alert in r.fired]
            resolved = [r.resolved_after_heal[alert] for r in runs if alert in r.resolved_after_heal]
            alert_rows.append(f"| {profile} | {alert} | {len(fired)}/{len(runs)} | {_median(fired)} | "
                              f"{max(fired):.1f} | {_median(resolved)} | "
                              f"{_median([r.outage_s for r in runs if r.outage_s is not None])} | "
                              f"{sum(r.passed for r in runs)}/{len(runs)} |")
        if not names:
            alert_rows.append(f"| {profile} | (none fired) | 0/{len(runs)} | - | - | - | - | "
                              f"{sum(r.passed for r in runs)}/{len(runs)} |")
    text = "\n".join([
        "# bench/monitoring.py", "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, local backend, default profile "
        f"(3 nodes + 3 etcd + HAProxy + PgBouncer + fencing guard); Prometheus scrapes every 2 s and evaluates "
        f"every 2 s. Footprint over {args.idle:.0f} s idle, with and without monitoring, one after the other.", "",
        "| measure | figure | goal | |", "|---|---|---|---|", *footprint_rows, "",
        f"Alerts after `pgha drill --fault freeze --hold 20` on the primary, {args.runs} runs per profile "
        "(seconds from the freeze to the alert's firing; from the heal to its resolution):", "",
        "| profile | alert | fired | after, median (s) | max (s) | resolved after the heal, median (s; -: before it) | "
        "write outage, median (s) | drills passed |",
        "|---|---|---:|---:|---:|---:|---:|---:|", *alert_rows, "",
        f"Goal: the first alert about a frozen primary fires < {ALERT_GOAL_S:.0f} s after the freeze.", "",
        f"Rerun: `.venv/bin/python bench/monitoring.py --runs {args.runs} --idle {args.idle:g} "
        f"--profiles {args.profiles} --port-shift {args.port_shift} --out {args.out}`", ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
