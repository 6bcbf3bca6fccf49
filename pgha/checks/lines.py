"""The lab's checks, run against a live cluster; each returns PASS/FAIL/SKIP with its evidence.

This module lists the lines of `pgha check` in order and runs them; each checker lives in its
group's module. A new check is one module (or one function in a group's module) plus one entry
in LINES.
"""

from __future__ import annotations

from pgha.checks.backups import check_backups
from pgha.checks.dcs import check_dcs
from pgha.checks.fencing import check_fencing
from pgha.checks.pooler import check_pooler
from pgha.checks.replication import check_replicas_read_only, check_replication
from pgha.checks.result import Checker, CheckResult, Outcome, Status
from pgha.checks.routing import check_one_primary, check_ro_entrypoint, check_rw_entrypoint
from pgha.checks.security import check_security
from pgha.cluster import Cluster

__all__ = [
    "LINES",
    "CheckResult",
    "Checker",
    "Outcome",
    "Status",
    "all_passed",
    "check_backups",
    "check_dcs",
    "check_fencing",
    "check_one_primary",
    "check_pooler",
    "check_replicas_read_only",
    "check_replication",
    "check_ro_entrypoint",
    "check_rw_entrypoint",
    "check_security",
    "run_checks",
]

# (number, checker), in the order `pgha check` runs and prints them. A line's number is how it is
# known (the table's "#", `--json`'s "number", what tests/containers looks for): a line keeps its
# number, and a new line takes the next one.
LINES: tuple[tuple[int, Checker], ...] = (
    (1, check_replication),
    (2, check_replicas_read_only),
    (3, check_rw_entrypoint),
    (4, check_ro_entrypoint),
    (5, check_one_primary),
    (6, check_dcs),
    (7, check_security),
    (8, check_pooler),
    (9, check_backups),
    (10, check_fencing),
)


def run_checks(cluster: Cluster) -> list[CheckResult]:
    state = cluster.state()
    return [check(cluster, state).numbered(number) for number, check in LINES]


def all_passed(results: list[CheckResult]) -> bool:
    return all(r.status != "FAIL" for r in results)
