"""The lab's checks, run against a live cluster; each returns PASS/FAIL/SKIP with its evidence."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors

from pgha.checks import tls as tls_probe
from pgha.cluster import Cluster
from pgha.model.topology import SERVER_SQL, server_names, topology
from pgha.net.dial import PgTarget, http_request
from pgha.net.probe import ClusterState
from pgha.security.dcs_auth import anonymous_write_refused
from pgha.waiting import wait_until

Status = Literal["PASS", "FAIL", "SKIP"]
CONNECT_TIMEOUT = 3
REPLICATION_DEADLINE = 20.0
ROWS = 100


@dataclass(frozen=True)
class CheckResult:
    number: int
    name: str
    status: Status
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _connect(target: PgTarget) -> psycopg.Connection[Any]:
    return target.connect(connect_timeout=CONNECT_TIMEOUT, autocommit=True)


def _one(target: PgTarget, sql: str) -> tuple[Any, ...]:
    with _connect(target) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def _replicas(cluster: Cluster, state: ClusterState) -> list[str]:
    # Every node the spec names except the leader: a stopped replica must fail the checks, not
    # vanish from them because Patroni removed its member key.
    leader = state.leader.name if state.leader else None
    return [n for n in cluster.spec.node_names if n != leader]


def check_replication(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = "a table written through the entrypoint reaches every replica"
    replicas = _replicas(cluster, state)
    table = f"pgha_check_{secrets.token_hex(4)}"
    rw = cluster.entrypoint()
    try:
        with _connect(rw) as conn:
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
            conn.execute(f"INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g")
        if not replicas:
            return CheckResult(1, name, "SKIP", f"wrote {ROWS} rows; the cluster has no replicas")
        seen: dict[str, str] = {}
        for node in replicas:
            seen[node] = _wait_rows(cluster.node_target(node), table)
        bad = {n: s for n, s in seen.items() if s != str(ROWS)}
        detail = ", ".join(f"{n}: {s} rows" if s.isdigit() else f"{n}: {s}" for n, s in seen.items())
        if bad:
            return CheckResult(1, name, "FAIL", f"wrote {ROWS} rows in {table}; {detail}")
        return CheckResult(1, name, "PASS", f"{table}: {ROWS} rows on the primary; {detail}")
    except psycopg.Error as e:
        return CheckResult(1, name, "FAIL", f"through the entrypoint: {_err(e)}")
    finally:
        try:
            with _connect(rw) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        except psycopg.Error:
            pass


def _wait_rows(target: PgTarget, table: str) -> str:
    """The replica's row count once it has every row; or what it had (or why it could not be
    read) when the deadline passed."""
    last = "not checked"

    def complete() -> bool:
        nonlocal last
        try:
            (count,) = _one(target, f"SELECT count(*) FROM {table}")
            last = str(count)
            return bool(count == ROWS)
        except pg_errors.UndefinedTable:
            last = "table missing"
            return False
        except psycopg.Error as e:
            last = _err(e)
            return True  # a connection error will not go away by waiting for rows

    wait_until(complete, REPLICATION_DEADLINE)
    return last


def check_replicas_read_only(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = "a write on each replica fails with SQLSTATE 25006"
    replicas = _replicas(cluster, state)
    if not replicas:
        return CheckResult(2, name, "SKIP", "the cluster has no replicas")
    results: dict[str, str] = {}
    for node in replicas:
        try:
            with _connect(cluster.node_target(node)) as conn:
                conn.execute("CREATE TABLE pgha_check_must_fail (x int)")
            results[node] = "write ACCEPTED"
            with _connect(cluster.node_target(node)) as conn:
                conn.execute("DROP TABLE IF EXISTS pgha_check_must_fail")
        except psycopg.Error as e:
            results[node] = f"SQLSTATE {e.sqlstate}" if e.sqlstate else _err(e)
    ok = all(r == "SQLSTATE 25006" for r in results.values())
    detail = ", ".join(f"{n}: {r}" for n, r in results.items())
    return CheckResult(2, name, "PASS" if ok else "FAIL", detail)


def _sample(cluster: Cluster, target: PgTarget, n: int) -> list[tuple[str, bool] | str]:
    """n fresh sessions: (node reached, in recovery) each, or the error."""
    names = server_names(topology(cluster.spec))
    out: list[tuple[str, bool] | str] = []
    for _ in range(n):
        try:
            addr, port, recovery = _one(target, f"SELECT {SERVER_SQL}, pg_is_in_recovery()")
            out.append((names.get((str(addr), int(port)), f"{addr}:{port}"), bool(recovery)))
        except psycopg.Error as e:
            out.append(_err(e))
    return out


def check_rw_entrypoint(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = "the read-write entrypoint reaches the primary and no replica"
    leader = state.leader
    if leader is None:
        return CheckResult(3, name, "FAIL", "Patroni reports no single leader")
    spec = cluster.spec
    samples = _sample(cluster, cluster.entrypoint(), 5)
    errors = [s for s in samples if isinstance(s, str)]
    hits = [s for s in samples if not isinstance(s, str)]
    wrong = [s for s in hits if s != (leader.name, False)]
    evidence = (f"port {spec.ports.entrypoint_rw}: {len(hits)}/5 connections reached "
                f"{sorted({n for n, _ in hits})} (the primary is {leader.name})")
    if errors:
        return CheckResult(3, name, "FAIL", f"{evidence}; errors: {errors[0]}")
    if wrong:
        return CheckResult(3, name, "FAIL", f"{evidence}; reached a node in recovery or not the primary")
    return CheckResult(3, name, "PASS", evidence)


def check_pooler(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = "every pooler pools transactions to the primary"
    spec = cluster.spec
    if not spec.ports.pooler:
        return CheckResult(8, name, "SKIP", f"cluster {cluster.name!r} runs without a pooler (profile {spec.profile})")
    leader = state.leader
    if leader is None:
        return CheckResult(8, name, "FAIL", "Patroni reports no single leader")
    evidence, failed = [], []
    for k, port in enumerate(spec.ports.pooler):
        samples = _sample(cluster, PgTarget(cluster.pooler_dsn(k=k)), 3)
        errors = [s for s in samples if isinstance(s, str)]
        hits = [s for s in samples if not isinstance(s, str)]
        evidence.append(f"port {port}: {len(hits)}/3 transactions on {sorted({n for n, _ in hits})}")
        if errors:
            failed.append(f"port {port}: {errors[0]}")
        elif any(s != (leader.name, False) for s in hits):
            failed.append(f"port {port} reached a node in recovery or not the primary")
        if spec.tls:
            plain = PgTarget(cluster.pooler_dsn(k=k, sslmode="disable"))
            try:
                _one(plain, "SELECT 1")
                failed.append(f"port {port} took a cleartext client")
            except psycopg.Error:
                evidence.append(f"port {port} refused cleartext")
    text = f"{'; '.join(evidence)} (the primary is {leader.name})"
    return CheckResult(8, name, "FAIL" if failed else "PASS", f"{text}; {failed[0]}" if failed else text)


def check_ro_entrypoint(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = "the read-only entrypoint reaches replicas only"
    spec = cluster.spec
    if spec.ports.entrypoint_ro is None:
        return CheckResult(4, name, "SKIP", f"profile {spec.profile} has no read-only entrypoint (as the lab)")
    replicas = _replicas(cluster, state)
    if not replicas:
        return CheckResult(4, name, "SKIP", "the cluster has no replicas")
    samples = _sample(cluster, cluster.entrypoint(readonly=True), 2 * len(replicas) + 2)
    errors = [s for s in samples if isinstance(s, str)]
    hits = [s for s in samples if not isinstance(s, str)]
    seen = sorted({n for n, _ in hits})
    evidence = f"port {spec.ports.entrypoint_ro}: reached {seen}; replicas are {sorted(replicas)}"
    if errors:
        return CheckResult(4, name, "FAIL", f"{evidence}; errors: {errors[0]}")
    if any(not rec or node not in replicas for node, rec in hits):
        return CheckResult(4, name, "FAIL", f"{evidence}; reached a node that is not a replica")
    return CheckResult(4, name, "PASS", evidence)


def check_one_primary(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = "exactly one primary, per Patroni and per pg_is_in_recovery()"
    leaders = [m.name for m in state.members if m.is_leader]
    writable: list[str] = []
    unreachable: list[str] = []
    for node in cluster.spec.node_names:
        try:
            (recovery,) = _one(cluster.node_target(node), "SELECT pg_is_in_recovery()")
            if not recovery:
                writable.append(node)
        except psycopg.Error:
            unreachable.append(node)
    evidence = f"Patroni leader(s): {leaders or 'none'}; not in recovery: {writable or 'none'}"
    if unreachable:
        evidence += f"; unreachable: {unreachable}"
    ok = len(leaders) == 1 and writable == leaders and not unreachable
    return CheckResult(5, name, "PASS" if ok else "FAIL", evidence)


def check_dcs(cluster: Cluster, state: ClusterState) -> CheckResult:
    name = f"the DCS ({cluster.spec.dcs.kind}) answers"
    detail = ", ".join(f"{d.name} {d.address}: {d.detail}" for d in state.dcs)
    ok = bool(state.dcs) and all(d.healthy for d in state.dcs)
    return CheckResult(6, name, "PASS" if ok else "FAIL", detail)


def check_security(cluster: Cluster, state: ClusterState) -> CheckResult:
    """What is promised against local users and the network, verified from outside: the DCS
    refuses a write without credentials (a probe that never writes); Patroni's REST API refuses
    a change without its password (a switchover request with no candidate, which does nothing
    even where it is let through); with TLS, every hop is encrypted and verified and refuses
    cleartext (pgha.checks.tls)."""
    spec = cluster.spec
    name = "security: only Patroni writes the DCS; REST changes need the password"
    if spec.tls:
        name += "; TLS on every hop"
    if not spec.dcs.authentication:
        return CheckResult(7, name, "SKIP", f"profile {spec.profile} is the lab as published: its DCS "
                                            f"({spec.dcs.kind}) takes writes from anyone who reaches it, "
                                            "and nothing is encrypted")
    try:
        refused, evidence = anonymous_write_refused(spec, cluster.reach.dcs_client(0))
    except OSError as e:
        refused, evidence = False, f"the DCS did not answer: {e}"
    node = state.leader.name if state.leader else spec.node_names[0]
    try:
        status, _ = http_request(cluster.reach.rest(node), "switchover", CONNECT_TIMEOUT, method="POST", body={})
        rest_ok = status == 401
        rest = f"{node}'s REST API answered an unauthenticated POST with HTTP {status}"
    except OSError as e:
        rest_ok, rest = False, f"{node}'s REST API did not answer: {e}"
    findings = [(refused, evidence), (rest_ok, rest)]
    if spec.tls:
        findings += tls_probe.transport(cluster, state)
    else:
        findings.append((True, "TLS off (spec.tls: the cluster's hosts share this machine's loopback)"))
    failed = [text for ok, text in findings if not ok]
    if failed:
        return CheckResult(7, name, "FAIL", "; ".join(failed))
    return CheckResult(7, name, "PASS", "; ".join(text for _, text in findings))


def _err(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else e.__class__.__name__


CHECKS: tuple[Callable[[Cluster, ClusterState], CheckResult], ...] = (
    check_replication,
    check_replicas_read_only,
    check_rw_entrypoint,
    check_ro_entrypoint,
    check_one_primary,
    check_dcs,
    check_security,
    check_pooler,
)


def run_checks(cluster: Cluster) -> list[CheckResult]:
    state = cluster.state()
    return [check(cluster, state) for check in CHECKS]


def all_passed(results: list[CheckResult]) -> bool:
    return all(r.status != "FAIL" for r in results)
