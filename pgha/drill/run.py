"""The drill's schedule: steady state, fault, recovery, heal, rejoin, verdict.

Everything observed goes into one history; the verdict comes from the pure checkers.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pgha.backends.base import Fencing, NetworkFaults
from pgha.cluster import Cluster, ClusterError
from pgha.drill import checkers
from pgha.drill.checkers.alerts import ALERT, ALERTS_READ, EXPECT_ALERT, LAG_SERIES, SERIES
from pgha.drill.checkers.pitr import RESTORED
from pgha.drill.faults import (
    Fault,
    Hosts,
    Nemesis,
    NodeTargets,
    fault_named,
    pause_seconds,
    settle_seconds,
)
from pgha.drill.history import CheckerResult, Event, FinalState, History, RunInfo, sorted_events
from pgha.drill.workload import TABLE, Workload
from pgha.errors import PghaError, first_line
from pgha.model.topology import topology
from pgha.ops import backups, handover, monitoring
from pgha.ops import restore as restore_ops
from pgha.render.alert_rules import cluster_rules, replica_lag_expr
from pgha.render.prometheus import EVALUATION_INTERVAL_S, SCRAPE_INTERVAL_S
from pgha.state.secrets import APP_DATABASE
from pgha.waiting import wait_until

log = logging.getLogger(__name__)

STEADY_SECONDS = 3.0
AFTER_RECOVERY_SECONDS = 2.0
REJOIN_DEADLINE = 120.0
CATCH_UP_DEADLINE = 30.0
# After the load stops, how long the drill waits for the alerts the run raised to resolve.
ALERT_SETTLE_S = 30.0
# What an alert needs beyond its `for:`: the scrape that finds the component silent (its
# interval and timeout), the evaluation after it, and the moments a fault takes to silence it
# (a graceful stop answers until PostgreSQL is down).
ALERT_MARGIN_S = 2.0 * SCRAPE_INTERVAL_S + EVALUATION_INTERVAL_S + 3.0
# What a disaster may lose beyond archive_timeout: the switch, and the archiver's push of the segment.
RPO_MARGIN_S = 5.0



class DrillError(PghaError):
    pass


# How the drill's writers connect: HAProxy's entrypoint, the pooler beside it, or a multi-host URI.
VIAS = ("haproxy", "pooler", "multihost")


@dataclass(frozen=True)
class DrillOptions:
    fault: str
    target: str = "primary"  # primary | replica | a node name | for dcs-down: dcs0.. | all
    via: str = "haproxy"  # one of VIAS
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
    """(target, primary at the start), by the fault's own kind of target."""
    state = cluster.state()
    leader = state.leader.name if state.leader else None
    if leader is None:
        raise DrillError("the cluster has no primary to start from; run `pgha status`")
    fault = fault_named(options.fault)
    if fault.needs_backups and not cluster.spec.backup.enabled:
        raise DrillError(f"fault: {fault.name} needs a cluster with backups (pgha up --backup)")
    if fault.name == "drop-table" and Cluster(pitr_name(cluster.name), cluster.home).layout.root.exists():
        raise DrillError(f"fault: drop-table restores into {pitr_name(cluster.name)!r}, which exists already; "
                         f"`pgha down --name {pitr_name(cluster.name)} --purge` it first")
    if fault.network and not isinstance(cluster.backend(), NetworkFaults):
        raise DrillError(f"fault: {fault.name} needs hosts of their own; bring the cluster up with --backend netns "
                         f"or compose")
    guards = _guards(cluster)
    if fault.needs_fencing and not guards:
        raise DrillError(f"fault: {fault.name} needs fencing guards (pgha up --fencing, on the local or netns "
                         f"backend with etcd)")
    topo = topology(cluster.spec)
    hosts = Hosts(leader=leader, replicas=tuple(m.name for m in state.members if not m.is_leader),
                  nodes=cluster.spec.node_names, dcs=tuple(p.name for p in topo.dcs),
                  haproxies=tuple(p.name for p in topo.haproxies), guards=guards)
    return fault.targets.resolve(fault.name, options.target, hosts), leader


def _guards(cluster: Cluster) -> tuple[str, ...]:
    """The fencing guards, the active one first."""
    backend = cluster.backend()
    if not cluster.spec.fencing.enabled or not isinstance(backend, Fencing):
        return ()
    reports = backend.guard_reports()
    return tuple(r.name for r in sorted(reports, key=lambda r: not (r.state or {}).get("active")))


def _prepare_table(cluster: Cluster) -> None:
    # The drill's clients are the application role: the table is its own, in its own database.
    clients = cluster.clients
    with psycopg.connect(clients.entrypoint_dsn(login=clients.app), connect_timeout=5, autocommit=True) as conn:
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


def _fences(cluster: Cluster, since: float) -> list[tuple[str, float]] | None:
    """Every fence the cluster's guards made since `since`; None for a cluster without fencing."""
    backend = cluster.backend()
    if not cluster.spec.fencing.enabled or not isinstance(backend, Fencing):
        return None
    found = {(str(f["node"]), float(f["at"])) for r in backend.guard_reports() if r.state
             for f in r.state.get("fences", []) if isinstance(f, dict) and float(f.get("at", 0)) >= since}
    return sorted(found, key=lambda f: f[1])


def _final_state(cluster: Cluster) -> FinalState:
    state = cluster.wait_healthy(REJOIN_DEADLINE)
    leader = state.leader.name if state.leader else None
    rows: dict[str, list[int]] = {}
    caught_up: dict[str, bool] = {}
    primary_lsn = None
    if leader is not None:
        with cluster.clients.node_target(leader).connect(connect_timeout=5, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            primary_lsn = row[0] if row else None
    for node in cluster.spec.node_names:
        with cluster.clients.node_target(node, dbname=APP_DATABASE).connect(connect_timeout=5, autocommit=True) as conn:
            if node != leader and primary_lsn is not None:
                def replayed(conn: psycopg.Connection[Any] = conn) -> bool:
                    row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (primary_lsn,)).fetchone()
                    return bool(row and row[0])

                caught_up[node] = bool(wait_until(replayed, CATCH_UP_DEADLINE))
            ids = conn.execute(f"SELECT id FROM {TABLE} ORDER BY id").fetchall()
            rows[node] = [int(r[0]) for r in ids]
    timelines = {m.name: m.timeline for m in state.members}
    archive = _archive_evidence(cluster, leader) if cluster.spec.backup.enabled and leader else None
    return FinalState(primary=leader, rows=rows, caught_up=caught_up, timelines=timelines, archive=archive)


def pitr_name(name: str) -> str:
    """The cluster a drop-table drill restores into, beside the drilled one."""
    return f"{name[:26]}-pitr"


def _switch_wal(cluster: Cluster) -> None:
    state = cluster.state()
    if state.leader is None:
        raise DrillError("no primary to switch the WAL segment on")
    with cluster.clients.node_target(state.leader.name).connect(connect_timeout=5, autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")


def _epoch(t: datetime | None) -> float | None:
    return t.timestamp() if t is not None else None


def _archive_evidence(cluster: Cluster, leader: str) -> dict[str, float | int | str | None]:
    """`pgbackrest check` first (it switches a segment and waits for it in the repository), then
    pg_stat_archiver as it stands after it."""
    try:
        cluster.pgbackrest(leader, ["check"])
        check = "passed"
    except ClusterError as e:
        check = str(e)
    a = backups.archive_state(cluster, leader)
    return {"failed_count": a.failed_count, "last_failed_time": _epoch(a.last_failed_time),
            "last_archived_time": _epoch(a.last_archived_time), "check": check}


def _drill_logs(cluster: Cluster) -> dict[str, Path]:
    """Every component's log, and pgha's own decisions beside them."""
    return {**cluster.backend().log_files(), "pgha": cluster.layout.journal}


def _copy_logs(cluster: Cluster, offsets: dict[str, int], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for name, path in _drill_logs(cluster).items():
        try:
            with open(path, "rb") as f:
                f.seek(offsets.get(name, 0))
                (into / f"{name}.log").write_bytes(f.read())
        except FileNotFoundError:
            continue


def _log_offsets(cluster: Cluster) -> dict[str, int]:
    out = {}
    for name, path in _drill_logs(cluster).items():
        try:
            out[name] = path.stat().st_size
        except FileNotFoundError:
            out[name] = 0
    return out


def expected_alert(cluster: Cluster, fault: Fault, target: str, landed: float, healed: float) -> Event | None:
    """What the run must show from Prometheus about the faulted node, HAProxy or DCS member
    (None: the cluster runs no Prometheus, the fault raises no alert, or not about this target)."""
    spec = cluster.spec
    rule = next((r for r in cluster_rules(spec) if r.name == fault.alert), None)
    if not spec.monitoring.enabled or rule is None or not rule.about:
        return None
    topo = topology(spec)
    names = {"name": spec.node_names, "haproxy": tuple(p.name for p in topo.haproxies),
             "member": tuple(p.name for p in topo.dcs)}
    if target not in names.get(rule.about, ()):
        return None
    return Event(healed, "drill", "info", EXPECT_ALERT,
                 {"alert": rule.name, "label": rule.about, "subject": target, "fault_time": landed,
                  "heal_time": healed, "needs_s": rule.for_s + ALERT_MARGIN_S})


def alert_events(spans: list[monitoring.AlertSpan], since: float, still_active: set[str] | None = None) -> list[Event]:
    """The history's record of each alert instance the run raised: pending, firing, resolved
    (pure). An instance already active when the run began is not the run's, and is left out.
    `still_active`: the alerts Prometheus said were active at the end, which decide over the
    samples' timing (an alert that resolved between its last sample and the question)."""
    events = []
    for span in spans:
        if still_active is not None:
            span = replace(span, active_at_end=span.name in still_active)
        if span.began <= since + EVALUATION_INTERVAL_S:
            continue
        base = {"alert": span.name, "labels": span.labels, "severity": span.severity}
        node = span.labels.get("name")
        if span.pending_at is not None:
            events.append(Event(span.pending_at, "prometheus", "info", ALERT, {**base, "state": "pending"}, node))
        if span.firing_at is not None:
            events.append(Event(span.firing_at, "prometheus", "info", ALERT, {**base, "state": "firing"}, node))
        if not span.active_at_end:
            # Resolved at the first evaluation that no longer found it.
            events.append(Event(span.last_seen + EVALUATION_INTERVAL_S, "prometheus", "info", ALERT,
                                {**base, "state": "resolved", "fired": span.firing_at is not None}, node))
    return events


def _validate(options: DrillOptions) -> None:
    fault_named(options.fault)
    if options.via not in VIAS:
        raise DrillError(f"via: must be {', '.join(VIAS[:-1])} or {VIAS[-1]}")
    if not 0.5 <= options.rate <= 500:
        raise DrillError("rate: must be between 0.5 and 500 writes per second")


class Session:
    """One continuous write load with a history, during which faults come and go."""

    def __init__(self, cluster: Cluster, options: DrillOptions, label: str) -> None:
        self.cluster = cluster
        self.options = options
        spec = cluster.spec
        log.info("waiting for a healthy cluster")
        cluster.wait_healthy(60)
        state = cluster.state()
        self.old_primary = state.leader.name if state.leader else None
        started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_dir = cluster.layout.runs / f"{started_at}-{label}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.offsets = _log_offsets(cluster)
        self.history = History(self.run_dir / "history.jsonl")
        # A planned switchover is pgha's: the poolers are paused around it.
        self.nemesis = Nemesis(cluster.backend(), tuple(p.name for p in topology(spec).dcs),
                               cluster.secrets.rest_password, cluster_nodes=spec.node_names,
                               primary=self.old_primary, pause_s=pause_seconds(spec.fencing.fence_after_s
                                                                               if spec.fencing.enabled else None),
                               hand_over=lambda leader: handover.hand_over(cluster, leader, None),
                               rolling_restart=lambda: handover.restart(cluster, True),
                               switch_wal=(lambda: _switch_wal(cluster)) if spec.backup.enabled else None,
                               drop_table=self._drop_table if spec.backup.enabled else None,
                               restore_to_drop=self._restore_to_drop if spec.backup.enabled else None,
                               restore_in_place=self._restore_in_place if spec.backup.enabled else None)
        self._dropped_at: float | None = None
        _prepare_table(cluster)
        if fault_named(options.fault).archive_before_load:
            # `pgbackrest check` switches the WAL segment and waits until the repository has it.
            cluster.pgbackrest(self.old_primary or spec.node_names[0], ["check"])
            log.info("the drill's table is in the WAL archive: what the load writes from now on is at risk")
        via = options.via
        app = cluster.clients.app
        if via == "pooler" and not spec.pooler.enabled:
            raise DrillError(f"via pooler: cluster {cluster.name!r} runs without one (pgha up --pooler)")
        write_dsn = {"haproxy": lambda: cluster.clients.entrypoint_dsn(login=app),
                     "pooler": lambda: cluster.clients.pooler_dsn(login=app),
                     "multihost": lambda: cluster.clients.multihost_uri(with_password=True, login=app)}[via]()
        read_dsn = cluster.clients.entrypoint_dsn(readonly=True, login=app) if spec.ports.entrypoint_ro else None
        self.workload = Workload(cluster.reach, self.history, write_dsn, read_dsn,
                                 {n: cluster.clients.node_target(n) for n in spec.node_names}, options.rate)
        self.started = time.time()
        self.cycles: list[tuple[float, str, str]] = []  # (fault time, fault, target)

    def phase(self, name: str) -> None:
        self.history.append(Event(time.time(), "drill", "info", "phase", {"phase": name}))

    def __enter__(self) -> Session:
        self.workload.start()
        log.info(f"steady load at {self.options.rate:g} writes/s via {self.options.via}")
        time.sleep(STEADY_SECONDS)
        self.phase("steady")
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        log.info("stopping the load")
        self.workload.stop_writes()
        self.workload.stop_monitor()
        self.phase("done")
        if exc_type is None:
            self._record_alerts()
        self.history.close()

    def _record_alerts(self) -> None:
        """Which alerts the run raised, from the cluster's Prometheus, once those still active
        have resolved (or ALERT_SETTLE_S has passed), for the alerts verdict and the timeline;
        and each replica's lag over the run, for the report's picture."""
        cluster = self.cluster
        spec = cluster.spec
        if not spec.monitoring.enabled:
            return
        reach, password, scope = cluster.reach, cluster.secrets.stats_password, spec.patroni_scope
        log.info("waiting for the alerts the run raised to resolve")
        began = time.time()
        active: list[str] = []

        def settled() -> bool:
            nonlocal active
            active = monitoring.active_since(reach, password, scope, self.started)
            return not active

        try:
            wait_until(settled, ALERT_SETTLE_S, every=1.0)
            now = time.time()
            spans = monitoring.alert_history(reach, password, scope, self.started, now, EVALUATION_INTERVAL_S)
        except monitoring.MonitoringError as e:
            log.warning(f"could not read the run's alerts: {e}")
            self.history.append(Event(time.time(), "prometheus", "info", ALERTS_READ, {"error": str(e)}))
            return
        for event in alert_events(spans, self.started, {a.split(" (")[0] for a in active}):
            self.history.append(event)
        try:
            lag = monitoring.over_time(reach, password, replica_lag_expr(scope), self.started, now, 1.0)
        except monitoring.MonitoringError as e:
            log.warning(f"could not read the replicas' lag from Prometheus: {e}")
            lag = []
        for labels, points in lag:
            self.history.append(Event(now, "prometheus", "info", SERIES,
                                      {"series": LAG_SERIES, "labels": {"name": labels.get("name", "?")},
                                       "points": [[round(t, 3), v] for t, v in points]}, labels.get("name")))
        fired = sorted({s.name for s in spans if s.firing_at is not None and s.began > self.started})
        log.info(f"alerts fired during the run: {', '.join(fired) or 'none'}"
                 + (f"; still active: {', '.join(active)}" if active else ""))
        self.history.append(Event(now, "prometheus", "info", ALERTS_READ,
                                  {"active": active, "waited_s": round(now - began, 1), "instances": len(spans)}))

    def cycle(self, fault_name: str, target_spec: str) -> None:
        """Inject one fault, hold it until writes recover (or a deadline), heal, wait for rejoin."""
        fault = fault_named(fault_name)
        target, leader = _resolve_target(self.cluster, replace(self.options, fault=fault_name, target=target_spec))
        # A soak's earlier faults move the primary and the guards' lease: the fault sees them now.
        self.nemesis.primary = leader
        if fault.needs_fencing:
            self.nemesis.active_guard = next(iter(_guards(self.cluster)), None)
        log.info(f"fault: {fault_name} on {target}")
        began = time.time()
        healed = False
        try:
            # The fault's time is when it landed, not when its action began (stall-then-kill
            # stalls first, then kills): outage and recovery are judged from that moment.
            landed = self.nemesis.inject(fault_name, target)
            self.cycles.append((landed, fault_name, target))
            self.history.append(Event(landed, "nemesis", "info", "fault", {"fault": fault_name, "target": target}))
            self.phase("fault")
            if fault.awaits_recovery:
                self._await_recovery(landed, fault)
            else:
                time.sleep(AFTER_RECOVERY_SECONDS)  # what the writers meet after it, on the record
            if fault.held and self.options.hold:
                time.sleep(self.options.hold)
            log.info(f"heal: {fault_name} on {target}")
            healed_at = time.time()
            self.history.append(Event(healed_at, "nemesis", "info", "heal", {"fault": fault_name, "target": target}))
            expected = expected_alert(self.cluster, fault, target, landed, healed_at)
            if expected is not None:
                self.history.append(expected)
            self.nemesis.heal(fault_name, target)
            self._start_fenced(began)
            healed = True
            self.phase("healed")
        finally:
            if not healed:
                self.history.append(Event(time.time(), "nemesis", "info", "heal",
                                          {"fault": fault_name, "target": target}))
                self.nemesis.heal(fault_name, target)
                self._start_fenced(began)
        log.info("waiting for the faulted node to rejoin")
        try:
            self.cluster.wait_healthy(REJOIN_DEADLINE)
            self.phase("rejoined")
        except ClusterError as e:
            log.info(f"not healthy after heal: {e}")
        time.sleep(AFTER_RECOVERY_SECONDS)

    def _start_fenced(self, since: float) -> None:
        """A node a guard fenced stays down until the fault is healed, as a powered-off host stays
        off until someone turns it on: the heal starts it again, and it rejoins as a replica."""
        for node in sorted({n for n, _ in _fences(self.cluster, since) or []}):
            log.info(f"{node} was fenced during the fault: starting it again as part of the heal")
            self.nemesis.nodes().start_node(node)

    def _await_recovery(self, landed: float, fault: Fault) -> None:
        spec = self.cluster.spec
        log.info("waiting for writes to recover")
        deadline = landed + (self.options.recovery_deadline or (3 * spec.patroni.ttl + 30))
        settled = landed + settle_seconds(fault, spec.patroni.ttl,
                                          spec.fencing.fence_after_s if spec.fencing.enabled else None)
        recovered = wait_until(lambda: time.time() >= settled and _recovered(
            self.history.events, landed, AFTER_RECOVERY_SECONDS), deadline - time.time())
        self.phase("recovered" if recovered else "deadline")
        if recovered:
            log.info(f"writes recovered; healing {time.time() - landed:.1f} s after the fault landed")
        else:
            log.warning(f"writes did not recover within {deadline - landed:.0f} s of the fault: healing it anyway")

    def _drop_table(self) -> float:
        clients = self.cluster.clients
        with psycopg.connect(clients.entrypoint_dsn(login=clients.app), connect_timeout=5, autocommit=True) as conn:
            self._dropped_at = time.time()
            conn.execute(f"DROP TABLE {TABLE}")
        log.info(f"dropped the drill's table {TABLE}: pgha restores the cluster to the moment before")
        return self._dropped_at

    def _restore_to_drop(self) -> None:
        """The cluster restored to T (the moment before the drop) as a new cluster beside it; its
        rows go into the history, then it is removed."""
        if self._dropped_at is None:
            raise DrillError("the table was not dropped: nothing to restore to")
        t = self._dropped_at
        new = Cluster(pitr_name(self.cluster.name), self.cluster.home)
        value: dict[str, Any] = {"cluster": new.name, "target": t}
        try:
            target = restore_ops.Target("time", time=datetime.fromtimestamp(t, UTC))
            result = restore_ops.restore(self.cluster, new, target)
            clients = new.clients
            with psycopg.connect(clients.entrypoint_dsn(login=clients.app), connect_timeout=10) as conn:
                value["rows"] = [int(r[0]) for r in conn.execute(f"SELECT id FROM {TABLE} ORDER BY id").fetchall()]
            value["seconds"] = round(result.seconds, 2)
        except (PghaError, psycopg.Error) as e:
            value["error"] = first_line(e)
            log.warning(f"the restore to the moment before the drop failed: {value['error']}")
        finally:
            if new.layout.root.exists():
                new.down(purge=True)
                log.info(f"removed the restored cluster {new.name!r} after reading its rows")
        self.history.append(Event(time.time(), "nemesis", "info", RESTORED, value))
        # The drill's table again, so the cluster is as a drill found it (rows are the restore's).
        _prepare_table(self.cluster)

    def _restore_in_place(self) -> None:
        """The cluster restored in place to the end of its archive, as `pgha restore --in-place
        --latest --yes` does; how long it took (or why it failed) goes into the history."""
        value: dict[str, Any] = {"cluster": self.cluster.name, "in_place": True}
        try:
            result = restore_ops.restore_in_place(self.cluster, restore_ops.Target("latest"))
            value["seconds"] = round(result.seconds, 2)
        except PghaError as e:
            value["error"] = first_line(e)
            log.warning(f"the restore in place failed: {value['error']}")
        self.history.append(Event(time.time(), "nemesis", "info", RESTORED, value))

    def finish(self, results_for: Callable[[list[Event], FinalState], list[CheckerResult]]) -> DrillOutcome:
        log.info("reading the final state")
        try:
            final = _final_state(self.cluster)
        except (ClusterError, psycopg.Error) as e:
            final = FinalState(primary=None, rows={}, caught_up={})
            log.info(f"could not read the final state: {e}")
        final = replace(final, fences=_fences(self.cluster, self.started))
        results = results_for(self.history.events, final)
        spec = self.cluster.spec
        first_fault, first_target = (self.cycles[0][1], self.cycles[0][2]) if self.cycles else ("none", "none")
        fault_label = first_fault if len(self.cycles) <= 1 else "soak"
        info = RunInfo(
            cluster=self.cluster.name, profile=spec.profile, fault=fault_label, target=first_target,
            via=self.options.via, rate=self.options.rate, started=self.started, ended=time.time(),
            old_primary=self.old_primary, new_primary=final.primary, nodes=list(spec.node_names),
            ttl=spec.patroni.ttl, loop_wait=spec.patroni.loop_wait, synchronous_mode=spec.patroni.synchronous_mode,
            haproxy_inter_ms=spec.haproxy.inter_ms, haproxy_rise=spec.haproxy.rise,
            haproxy_fastinter_ms=spec.haproxy.fastinter_ms, haproxy_downinter_ms=spec.haproxy.downinter_ms,
            push_routing=spec.haproxy.push_routing, retry_timeout=spec.patroni.retry_timeout,
            haproxy_fall=spec.haproxy.fall, haproxy_maxconn=spec.haproxy.maxconn,
            haproxy_timeout_connect_ms=spec.haproxy.timeout_connect_ms,
            fence_after_s=spec.fencing.fence_after_s if spec.fencing.enabled else None,
        )
        _write_json(self.run_dir / "meta.json", asdict(info))
        _write_json(self.run_dir / "final.json", asdict(final))
        _write_json(self.run_dir / "results.json", [asdict(r) for r in results])
        _copy_logs(self.cluster, self.offsets, self.run_dir / "logs")
        return DrillOutcome(self.run_dir, info, results)

    def node_target(self, target: str) -> str:
        spec = self.cluster.spec
        return target if target in spec.node_names else (self.old_primary or spec.node_names[0])


def run_drill(cluster: Cluster, options: DrillOptions) -> DrillOutcome:
    with cluster.journal():
        return _run_drill(cluster, options)


def _run_drill(cluster: Cluster, options: DrillOptions) -> DrillOutcome:
    _validate(options)
    resolved, _ = _resolve_target(cluster, options)  # refuse a bad target before any load starts
    # The run is named by the target as asked (primary, replica), or by what it resolved to when
    # the fault takes no node (disaster: cluster).
    named = options.target if isinstance(fault_named(options.fault).targets, NodeTargets) else resolved
    session = Session(cluster, options, f"{options.fault}-{named}")
    with session:
        session.cycle(options.fault, options.target)
    fault_time, fault, target = session.cycles[0]
    spec = cluster.spec
    ttl = spec.patroni.ttl
    rpo_bound = spec.backup.archive_timeout_s + RPO_MARGIN_S if spec.backup.enabled else None
    return session.finish(lambda events, final: single_results(events, final, fault_time, target,
                                                               spec.node_names, fault, ttl, rpo_bound))


def single_results(events: list[Event], final: FinalState, fault_time: float, target: str,
                   nodes: tuple[str, ...], fault: str = "", ttl: float = 0.0,
                   rpo_bound_s: float | None = None) -> list[CheckerResult]:
    """The verdicts of one drill in report order: the standard ones (see instead_for), then the
    fault's extra verdicts when it hit a node (pure)."""
    evidence = checkers.Evidence(sorted_events(events), final, target, fault_time=fault_time,
                                 deadline_s=REJOIN_DEADLINE, ttl=ttl, rpo_bound_s=rpo_bound_s)
    chosen = fault_named(fault) if fault else None
    extra = chosen.extra_verdicts if chosen and (target in nodes or chosen.extra_for_any_target) else ()
    # With a Prometheus, what it raised is judged too (not for faults on the data: a disaster
    # raises everything, and is judged by its restore).
    watched = any(e.process == "prometheus" for e in events) and (chosen is None or chosen.only_verdicts is None)
    verdicts = (*(chosen.only_verdicts if chosen and chosen.only_verdicts is not None else checkers.STANDARD),
                *extra, *(("alerts",) if watched else ()))
    return list(checkers.compose(evidence, verdicts, checkers.instead_for(target in nodes)).values())


def soak_results(events: list[Event], final: FinalState, cycles: list[tuple[float, str, str]],
                 node_target: Callable[[str], str]) -> list[CheckerResult]:
    """Lost writes and split-brain over the whole soak; outage and rejoin per fault (pure)."""
    evs = sorted_events(events)
    whole = checkers.Evidence(evs, final, target="")
    watched = any(e.process == "prometheus" for e in evs)
    results = list(checkers.compose(whole, ("lost_writes", "split_brain", *(("alerts",) if watched else ()))).values())
    bounds = [t for t, _, _ in cycles[1:]] + [float("inf")]
    for i, ((fault_time, fault, target), end) in enumerate(zip(cycles, bounds, strict=True), start=1):
        window = checkers.Evidence([e for e in evs if e.time < end], final, target, fault_time=fault_time,
                                   deadline_s=REJOIN_DEADLINE)
        judged = checkers.compose(window, ("outage", "rejoin"), checkers.instead_for(node_target(target) == target))
        results += [replace(r, name=f"{r.name} #{i} ({fault} on {target})") for r in judged.values()]
    return results


def run_soak(cluster: Cluster, options: DrillOptions, faults: list[str], duration: float,
             seed: int | None = None) -> DrillOutcome:
    """Random faults one after another under one continuous load, with one verdict."""
    with cluster.journal():
        return _run_soak(cluster, options, faults, duration, seed)


def _run_soak(cluster: Cluster, options: DrillOptions, faults: list[str], duration: float,
              seed: int | None) -> DrillOutcome:
    for f in faults:
        _validate(replace(options, fault=f))
        if fault_named(f).only_verdicts is not None:
            raise DrillError(f"fault: {f} has verdicts of its own and cannot be part of a soak; drill it alone")
    rng = random.Random(seed)
    session = Session(cluster, options, "soak")
    end = time.monotonic() + duration
    with session:
        while time.monotonic() < end:
            session.cycle(rng.choice(faults), options.target)
    return session.finish(lambda events, final: soak_results(events, final, session.cycles, session.node_target))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
