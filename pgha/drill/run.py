"""The drill's schedule: steady state, fault, recovery, heal, rejoin, verdict.

Everything observed goes into one history; the verdict comes from the pure checkers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pgha.cluster import Cluster, ClusterError
from pgha.drill import checkers
from pgha.drill.history import CheckerResult, Event, FinalState, History, RunInfo
from pgha.drill.nemesis import FAULTS, Nemesis
from pgha.drill.workload import TABLE, Workload

STEADY_SECONDS = 3.0
AFTER_RECOVERY_SECONDS = 2.0
REJOIN_DEADLINE = 120.0
CATCH_UP_DEADLINE = 30.0

Say = Callable[[str], None]


class DrillError(RuntimeError):
    pass


@dataclass(frozen=True)
class DrillOptions:
    fault: str
    target: str = "primary"  # primary | replica | a node name | for dcs-down: dcs0.. | all
    via: str = "haproxy"  # haproxy | multihost
    rate: float = 20.0
    hold: float | None = None  # seconds to keep a held fault beyond recovery
    recovery_deadline: float | None = None


@dataclass(frozen=True)
class DrillOutcome:
    run_dir: Path
    info: RunInfo
    results: list[CheckerResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def _resolve_target(cluster: Cluster, options: DrillOptions) -> tuple[str, str | None]:
    """(target, primary at the start)."""
    state = cluster.state()
    leader = state.leader.name if state.leader else None
    if leader is None:
        raise DrillError("the cluster has no primary to start from; run `pgha status`")
    spec = cluster.spec
    if options.fault == "dcs-down":
        if options.target in ("primary", "replica"):
            return "dcs0", leader
        if options.target != "all" and options.target not in [f"dcs{i}" for i in range(spec.dcs.members)]:
            raise DrillError(f"target: dcs-down takes dcs0..dcs{spec.dcs.members - 1} or all")
        return options.target, leader
    if options.target == "primary":
        return leader, leader
    if options.target == "replica":
        replicas = [m.name for m in state.members if not m.is_leader]
        if not replicas:
            raise DrillError("target: the cluster has no replica")
        return sorted(replicas)[0], leader
    spec.node_index(options.target)
    return options.target, leader


def _prepare_table(cluster: Cluster) -> None:
    with psycopg.connect(cluster.entrypoint_dsn(), connect_timeout=5, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.execute(f"TRUNCATE {TABLE}")


def _recovered(events: list[Event], since: float, need: float) -> bool:
    """Writes have succeeded continuously for `need` seconds after the first failure (or, with no
    failure, for `need` seconds after `since`)."""
    writes = [e for e in events if e.op == "write" and e.type != "invoke" and e.time >= since]
    failures = [e.time for e in writes if e.type != "ok"]
    start = max(failures) if failures else since
    oks = [e.time for e in writes if e.type == "ok" and e.time > start]
    return bool(oks) and oks[-1] - start >= need and time.time() - start >= need


def _final_state(cluster: Cluster) -> FinalState:
    state = cluster.wait_healthy(REJOIN_DEADLINE)
    leader = state.leader.name if state.leader else None
    rows: dict[str, list[int]] = {}
    caught_up: dict[str, bool] = {}
    primary_lsn = None
    if leader is not None:
        with psycopg.connect(cluster.node_dsn(leader), connect_timeout=5, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            primary_lsn = row[0] if row else None
    for node in cluster.spec.node_names:
        deadline = time.monotonic() + CATCH_UP_DEADLINE
        with psycopg.connect(cluster.node_dsn(node), connect_timeout=5, autocommit=True) as conn:
            if node != leader and primary_lsn is not None:
                while time.monotonic() < deadline:
                    row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (primary_lsn,)).fetchone()
                    if row and row[0]:
                        caught_up[node] = True
                        break
                    time.sleep(0.2)
                else:
                    caught_up[node] = False
            ids = conn.execute(f"SELECT id FROM {TABLE} ORDER BY id").fetchall()
            rows[node] = [int(r[0]) for r in ids]
    timelines = {m.name: m.timeline for m in state.members}
    return FinalState(primary=leader, rows=rows, caught_up=caught_up, timelines=timelines)


def _copy_logs(cluster: Cluster, offsets: dict[str, int], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for name, path in cluster.backend().log_files().items():
        try:
            with open(path, "rb") as f:
                f.seek(offsets.get(name, 0))
                (into / f"{name}.log").write_bytes(f.read())
        except FileNotFoundError:
            continue


def _log_offsets(cluster: Cluster) -> dict[str, int]:
    out = {}
    for name, path in cluster.backend().log_files().items():
        try:
            out[name] = path.stat().st_size
        except FileNotFoundError:
            out[name] = 0
    return out


def run_drill(cluster: Cluster, options: DrillOptions, say: Say) -> DrillOutcome:
    if options.fault not in FAULTS:
        raise DrillError(f"fault: unknown fault {options.fault!r} (choose from {', '.join(FAULTS)})")
    if options.via not in ("haproxy", "multihost"):
        raise DrillError("via: must be haproxy or multihost")
    if not 0.5 <= options.rate <= 500:
        raise DrillError("rate: must be between 0.5 and 500 writes per second")
    fault = FAULTS[options.fault]
    spec = cluster.spec
    say("waiting for a healthy cluster")
    cluster.wait_healthy(60)
    target, old_primary = _resolve_target(cluster, options)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = cluster.layout.runs / f"{started_at}-{options.fault}-{target}"
    run_dir.mkdir(parents=True, exist_ok=True)
    offsets = _log_offsets(cluster)
    history = History(run_dir / "history.jsonl")
    backend = cluster.backend()
    nemesis = Nemesis(spec, backend, cluster.secrets.rest_password)
    _prepare_table(cluster)
    write_dsn = cluster.entrypoint_dsn() if options.via == "haproxy" else cluster.multihost_uri(with_password=True)
    read_dsn = cluster.entrypoint_dsn(readonly=True) if spec.ports.entrypoint_ro else None
    workload = Workload(spec, history, write_dsn, read_dsn,
                        {n: cluster.node_dsn(n) for n in spec.node_names}, options.rate)
    deadline_s = options.recovery_deadline or (3 * spec.patroni.ttl + 30)
    started = time.time()
    healed = False
    workload.start()
    try:
        def phase(name: str) -> None:
            history.append(Event(time.time(), "drill", "info", "phase", {"phase": name}))

        say(f"steady load at {options.rate:g} writes/s via {options.via}")
        time.sleep(STEADY_SECONDS)
        phase("steady")
        say(f"fault: {options.fault} on {target}")
        fault_time = time.time()
        history.append(Event(fault_time, "nemesis", "info", "fault", {"fault": options.fault, "target": target}))
        nemesis.inject(options.fault, target)
        phase("fault")
        say("waiting for writes to recover")
        deadline = fault_time + deadline_s
        while time.time() < deadline and not _recovered(history.events, fault_time, AFTER_RECOVERY_SECONDS):
            time.sleep(0.2)
        phase("recovered" if time.time() < deadline else "deadline")
        if fault.held and options.hold:
            time.sleep(options.hold)
        say(f"heal: {options.fault} on {target}")
        history.append(Event(time.time(), "nemesis", "info", "heal", {"fault": options.fault, "target": target}))
        nemesis.heal(options.fault, target)
        healed = True
        phase("healed")
        say("waiting for the faulted node to rejoin")
        try:
            cluster.wait_healthy(REJOIN_DEADLINE)
            phase("rejoined")
        except ClusterError as e:
            say(f"not healthy after heal: {e}")
        time.sleep(AFTER_RECOVERY_SECONDS)
    finally:
        if not healed:
            history.append(Event(time.time(), "nemesis", "info", "heal", {"fault": options.fault, "target": target}))
            nemesis.heal(options.fault, target)
        say("stopping the load")
        workload.stop_writes()
        workload.stop_monitor()
        history.append(Event(time.time(), "drill", "info", "phase", {"phase": "done"}))
        history.close()

    say("reading the final state")
    try:
        final = _final_state(cluster)
    except (ClusterError, psycopg.Error) as e:
        final = FinalState(primary=None, rows={}, caught_up={})
        say(f"could not read the final state: {e}")
    events = history.events
    node_target = target if target in spec.node_names else (old_primary or spec.node_names[0])
    results = checkers.run_all(events, final, node_target, fault_time=fault_time, deadline_s=REJOIN_DEADLINE)
    info = RunInfo(
        cluster=cluster.name, profile=spec.profile, fault=options.fault, target=target, via=options.via,
        rate=options.rate, started=started, ended=time.time(), old_primary=old_primary,
        new_primary=final.primary, nodes=list(spec.node_names), ttl=spec.patroni.ttl,
        loop_wait=spec.patroni.loop_wait, synchronous_mode=spec.patroni.synchronous_mode,
    )
    _write_json(run_dir / "meta.json", asdict(info))
    _write_json(run_dir / "final.json", asdict(final))
    _write_json(run_dir / "results.json", [asdict(r) for r in results])
    _copy_logs(cluster, offsets, run_dir / "logs")
    build_report_files(run_dir, say)
    return DrillOutcome(run_dir, info, results)


def build_report_files(run_dir: Path, say: Say) -> None:
    try:
        from pgha.report import build_report
    except ImportError:  # the report package is optional for a drill's verdict
        say("report: not available")
        return
    _md, html = build_report(run_dir)
    say(f"report: {html}")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
