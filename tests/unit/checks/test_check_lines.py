"""The lines of `pgha check` without servers: their order and numbers, how a run numbers them,
what counts as passing, and the paths of each checker that decide from the spec and the probe alone."""

from __future__ import annotations

import inspect
import typing
from types import SimpleNamespace
from typing import Any

import pytest

from pgha.checks import lines
from pgha.checks.lines import LINES, CheckResult, Outcome, all_passed, run_checks
from pgha.cluster import Cluster
from pgha.model.spec import build_spec
from pgha.net.probe import ClusterState, DcsMemberState, MemberState

# What `pgha check` prints today, line by line: the numbers are how users and tests/containers know them.
EXPECTED = [
    (1, "check_replication"),
    (2, "check_replicas_read_only"),
    (3, "check_rw_entrypoint"),
    (4, "check_ro_entrypoint"),
    (5, "check_one_primary"),
    (6, "check_dcs"),
    (7, "check_security"),
    (8, "check_pooler"),
    (9, "check_backups"),
    (10, "check_fencing"),
]


def _state(leader: str | None = None, dcs: tuple[DcsMemberState, ...] = ()) -> ClusterState:
    members = () if leader is None else (MemberState(leader, "127.0.0.1", 5433, "leader", "running", 1, 0),)
    return ClusterState(members=members, dcs=dcs, haproxy=())


def _cluster(profile: str = "seed", **overrides: Any) -> Any:
    """Just what the checkers read before they would dial anything."""
    return SimpleNamespace(name="lab", spec=build_spec(profile, overrides=overrides))


def test_the_lines_in_order_with_their_numbers() -> None:
    assert [(n, check.__name__) for n, check in LINES] == EXPECTED
    numbers = [n for n, _ in LINES]
    assert len(set(numbers)) == len(numbers)
    assert len({check for _, check in LINES}) == len(LINES)


@pytest.mark.parametrize(("number", "check"), LINES, ids=[c.__name__ for _, c in LINES])
def test_each_checker_takes_cluster_and_state(number: int, check: Any) -> None:
    assert callable(check)
    inspect.signature(check).bind(_cluster(), _state())
    hints = typing.get_type_hints(check)
    params = [hints[p] for p in inspect.signature(check).parameters]
    assert params == [Cluster, ClusterState]
    assert hints["return"] is Outcome


def test_a_run_probes_once_and_numbers_each_outcome_by_its_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state("node0")
    calls: list[tuple[object, object]] = []

    def first(cluster: object, st: object) -> Outcome:
        calls.append((cluster, st))
        return Outcome("first", "PASS", "ok")

    def second(cluster: object, st: object) -> Outcome:
        calls.append((cluster, st))
        return Outcome("second", "SKIP", "nothing to do")

    probes: list[int] = []

    def probe() -> ClusterState:
        probes.append(1)
        return state

    cluster = SimpleNamespace(state=probe)
    monkeypatch.setattr(lines, "LINES", ((4, first), (9, second)))
    results = run_checks(cluster)
    assert results == [CheckResult(4, "first", "PASS", "ok"), CheckResult(9, "second", "SKIP", "nothing to do")]
    assert probes == [1]
    assert calls == [(cluster, state), (cluster, state)]


def test_json_of_a_line_keeps_its_keys_in_order() -> None:
    result = Outcome("a name", "FAIL", "why").numbered(7)
    assert list(result.to_json().items()) == [("number", 7), ("name", "a name"), ("status", "FAIL"),
                                              ("evidence", "why")]


@pytest.mark.parametrize(
    ("statuses", "passed"),
    [
        ([], True),
        (["PASS"], True),
        (["SKIP"], True),  # a SKIP is not a failure: `pgha check` exits 0 on the seed profile
        (["PASS", "SKIP", "PASS"], True),
        (["FAIL"], False),
        (["PASS", "SKIP", "FAIL"], False),
    ],
)
def test_only_a_fail_fails_the_run(statuses: list[Any], passed: bool) -> None:
    results = [CheckResult(k + 1, f"line {k + 1}", s, "") for k, s in enumerate(statuses)]
    assert all_passed(results) is passed


def test_the_seed_profile_skips_what_it_does_not_have() -> None:
    cluster, state = _cluster("seed"), _state("postgresql0")
    ro = lines.check_ro_entrypoint(cluster, state)
    assert (ro.status, ro.evidence) == ("SKIP", "profile seed has no read-only entrypoint (as the lab)")
    pooler = lines.check_pooler(cluster, state)
    assert (pooler.name, pooler.status) == ("every pooler pools transactions to the primary", "SKIP")
    assert pooler.evidence == "cluster 'lab' runs without a pooler (profile seed)"
    security = lines.check_security(cluster, state)
    assert security.name == "security: only Patroni writes the DCS; REST changes need the password"
    assert security.status == "SKIP"
    assert security.evidence == ("profile seed is the lab as published: its DCS (zookeeper) takes writes from "
                                 "anyone who reaches it, and nothing is encrypted")


def test_a_lone_primary_skips_the_replica_lines_before_dialling() -> None:
    cluster = _cluster("default", nodes=1)
    state = _state(cluster.spec.node_names[0])
    read_only = lines.check_replicas_read_only(cluster, state)
    assert read_only == Outcome("a write on each replica fails with SQLSTATE 25006", "SKIP",
                                "the cluster has no replicas")
    ro = lines.check_ro_entrypoint(cluster, state)
    assert (ro.name, ro.status, ro.evidence) == ("the read-only entrypoint reaches replicas only", "SKIP",
                                                 "the cluster has no replicas")


def test_no_single_leader_fails_the_routing_lines_before_dialling() -> None:
    cluster, state = _cluster("default"), _state()
    rw = lines.check_rw_entrypoint(cluster, state)
    assert rw == Outcome("the read-write entrypoint reaches the primary and no replica", "FAIL",
                         "Patroni reports no single leader")
    pooler = lines.check_pooler(cluster, state)
    assert (pooler.status, pooler.evidence) == ("FAIL", "Patroni reports no single leader")


def test_the_dcs_line_reads_the_probe() -> None:
    cluster = _cluster("default")
    up = DcsMemberState("etcd0", "127.0.0.1:2379", True, "healthy")
    down = DcsMemberState("etcd1", "127.0.0.1:2380", False, "connection refused")
    assert lines.check_dcs(cluster, _state(dcs=(up,))) == Outcome(
        "the DCS (etcd) answers", "PASS", "etcd0 127.0.0.1:2379: healthy")
    assert lines.check_dcs(cluster, _state(dcs=(up, down))).status == "FAIL"
    assert lines.check_dcs(cluster, _state()) == Outcome("the DCS (etcd) answers", "FAIL", "")
