from __future__ import annotations

from pgha.model.spec import build_spec
from pgha.net.probe import BackendServerState, ClusterState, DcsMemberState, MemberState, health_problem

SPEC = build_spec()


def _state(**change: object) -> ClusterState:
    members = (
        MemberState("node0", "127.0.1.1", 5442, "leader", "running", 1, 0),
        MemberState("node1", "127.0.1.1", 5443, "sync_standby", "streaming", 1, 0),
        MemberState("node2", "127.0.1.1", 5444, "replica", "streaming", 1, 0),
    )
    dcs = tuple(DcsMemberState(f"dcs{i}", "x", True, "healthy") for i in range(3))
    haproxy = (
        BackendServerState("primary", "node0", "UP"),
        BackendServerState("primary", "node1", "DOWN"),
        BackendServerState("primary", "node2", "DOWN"),
        BackendServerState("replicas", "node0", "DOWN"),
        BackendServerState("replicas", "node1", "UP"),
        BackendServerState("replicas", "node2", "UP"),
    )
    base = {"members": members, "dcs": dcs, "haproxy": haproxy}
    base.update(change)
    return ClusterState(**base)  # type: ignore[arg-type]


def test_a_healthy_cluster_has_no_problem() -> None:
    assert health_problem(SPEC, _state()) is None


def test_each_unhealthy_part_is_named() -> None:
    s = _state()
    dcs_down = health_problem(SPEC, _state(dcs=(s.dcs[0], DcsMemberState("dcs1", "x", False, "down"), s.dcs[2])))
    assert dcs_down is not None and "dcs1" in dcs_down.message and dcs_down.component == "dcs1"
    assert "node2" in str(health_problem(SPEC, _state(members=s.members[:2])) or "")
    lagging = (*s.members[:2], MemberState("node2", "h", 5444, "replica", "running", 1, None))
    assert "node2" in str(health_problem(SPEC, _state(members=lagging)) or "")
    two_leaders = (s.members[0], MemberState("node1", "h", 5443, "leader", "running", 2, 0), s.members[2])
    assert "one leader" in str(health_problem(SPEC, _state(members=two_leaders)) or "")
    no_sync = (s.members[0], MemberState("node1", "h", 5443, "replica", "streaming", 1, 0), s.members[2])
    assert "synchronous standby" in str(health_problem(SPEC, _state(members=no_sync)) or "")
    stale_route = (BackendServerState("primary", "node0", "UP"), BackendServerState("primary", "node1", "UP"),
                   *s.haproxy[2:])
    assert "node1" in str(health_problem(SPEC, _state(haproxy=stale_route)) or "")
    assert "HAProxy" in str(health_problem(SPEC, _state(haproxy=())) or "")


def test_a_problem_names_the_component_whose_log_says_more() -> None:
    s = _state()
    lagging = (*s.members[:2], MemberState("node2", "h", 5444, "replica", "running", 1, None))
    assert (p := health_problem(SPEC, _state(members=lagging))) is not None and p.component == "node2"
    stale_route = (BackendServerState("primary", "node0", "UP"), BackendServerState("primary", "node1", "UP"),
                   *s.haproxy[2:])
    assert (p := health_problem(SPEC, _state(haproxy=stale_route))) is not None and p.component == "haproxy"
    two_leaders = (s.members[0], MemberState("node1", "h", 5443, "leader", "running", 2, 0), s.members[2])
    assert (p := health_problem(SPEC, _state(members=two_leaders))) is not None and p.component is None
