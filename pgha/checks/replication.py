"""Lines 1 and 2 of `pgha check`: what is written through the entrypoint reaches every replica,
and every replica refuses writes."""

from __future__ import annotations

import secrets

import psycopg
from psycopg import errors as pg_errors

from pgha.checks.result import Outcome, connect, one_row, replica_names
from pgha.cluster import Cluster
from pgha.errors import first_line
from pgha.net.dial import PgTarget
from pgha.net.probe import ClusterState
from pgha.waiting import wait_until

REPLICATION_DEADLINE = 20.0
ROWS = 100


def check_replication(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "a table written through the entrypoint reaches every replica"
    replicas = replica_names(cluster, state)
    table = f"pgha_check_{secrets.token_hex(4)}"
    rw = cluster.clients.entrypoint()
    try:
        with connect(rw) as conn:
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
            conn.execute(f"INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g")
        if not replicas:
            return Outcome(name, "SKIP", f"wrote {ROWS} rows; the cluster has no replicas")
        seen: dict[str, str] = {}
        for node in replicas:
            seen[node] = _wait_rows(cluster.clients.node_target(node), table)
        bad = {n: s for n, s in seen.items() if s != str(ROWS)}
        detail = ", ".join(f"{n}: {s} rows" if s.isdigit() else f"{n}: {s}" for n, s in seen.items())
        if bad:
            return Outcome(name, "FAIL", f"wrote {ROWS} rows in {table}; {detail}")
        return Outcome(name, "PASS", f"{table}: {ROWS} rows on the primary; {detail}")
    except psycopg.Error as e:
        return Outcome(name, "FAIL", f"through the entrypoint: {first_line(e)}")
    finally:
        try:
            with connect(rw) as conn:
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
            (count,) = one_row(target, f"SELECT count(*) FROM {table}")
            last = str(count)
            return bool(count == ROWS)
        except pg_errors.UndefinedTable:
            last = "table missing"
            return False
        except psycopg.Error as e:
            last = first_line(e)
            return True  # a connection error will not go away by waiting for rows

    wait_until(complete, REPLICATION_DEADLINE)
    return last


def check_replicas_read_only(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "a write on each replica fails with SQLSTATE 25006"
    replicas = replica_names(cluster, state)
    if not replicas:
        return Outcome(name, "SKIP", "the cluster has no replicas")
    results: dict[str, str] = {}
    for node in replicas:
        try:
            with connect(cluster.clients.node_target(node)) as conn:
                conn.execute("CREATE TABLE pgha_check_must_fail (x int)")
            results[node] = "write ACCEPTED"
            with connect(cluster.clients.node_target(node)) as conn:
                conn.execute("DROP TABLE IF EXISTS pgha_check_must_fail")
        except psycopg.Error as e:
            results[node] = f"SQLSTATE {e.sqlstate}" if e.sqlstate else first_line(e)
    ok = all(r == "SQLSTATE 25006" for r in results.values())
    detail = ", ".join(f"{n}: {r}" for n, r in results.items())
    return Outcome(name, "PASS" if ok else "FAIL", detail)
