"""What a line of `pgha check` reports, and what its checkers share: short-timeout sessions,
one-row queries, the replicas, and where fresh sessions through a port land."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg

from pgha.cluster import Cluster
from pgha.errors import first_line
from pgha.model.topology import SERVER_SQL, server_names, topology
from pgha.net.dial import PgTarget
from pgha.net.probe import ClusterState

Status = Literal["PASS", "FAIL", "SKIP"]
CONNECT_TIMEOUT = 3


@dataclass(frozen=True)
class CheckResult:
    number: int
    name: str
    status: Status
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """What a checker finds. The line's number is not the checker's: it is the checker's entry in
    pgha.checks.lines.LINES."""

    name: str
    status: Status
    evidence: str

    def numbered(self, number: int) -> CheckResult:
        return CheckResult(number, self.name, self.status, self.evidence)


Checker = Callable[[Cluster, ClusterState], Outcome]


def connect(target: PgTarget) -> psycopg.Connection[Any]:
    return target.connect(connect_timeout=CONNECT_TIMEOUT, autocommit=True)


def one_row(target: PgTarget, sql: str) -> tuple[Any, ...]:
    with connect(target) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def replica_names(cluster: Cluster, state: ClusterState) -> list[str]:
    # Every node the spec names except the leader: a stopped replica must fail the checks, not
    # vanish from them because Patroni removed its member key.
    leader = state.leader.name if state.leader else None
    return [n for n in cluster.spec.node_names if n != leader]


def sample(cluster: Cluster, target: PgTarget, n: int) -> list[tuple[str, bool] | str]:
    """n fresh sessions: (node reached, in recovery) each, or the error."""
    names = server_names(topology(cluster.spec))
    out: list[tuple[str, bool] | str] = []
    for _ in range(n):
        try:
            addr, port, recovery = one_row(target, f"SELECT {SERVER_SQL}, pg_is_in_recovery()")
            out.append((names.get((str(addr), int(port)), f"{addr}:{port}"), bool(recovery)))
        except psycopg.Error as e:
            out.append(first_line(e))
    return out
