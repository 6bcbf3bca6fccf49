"""The fencing guard's decision as a pure function of what it saw: sequences that must fence and
sequences that must not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgha.components.base import NodeFence, Programs, Site
from pgha.components.render import render_component
from pgha.model.spec import SpecError, build_spec
from pgha.model.topology import topology
from pgha.ops.fencing_guard import (
    DELETE_KEY,
    FENCE,
    NONE,
    Config,
    Decision,
    Memory,
    ReplicaSeen,
    Seen,
    Settings,
    decide,
)
from pgha.render.patroni import dynamic_settings
from pgha.state.layout import Layout
from pgha.state.secrets import Secrets

SYNC = Settings(fence_after_s=2.0, synchronous_mode=True, answering_within_s=0.75)


def gone(name: str, sync: bool = False) -> ReplicaSeen:
    """A replica that answers and says it receives nothing from the primary."""
    return ReplicaSeen(name, answered=True, streaming=False, sync=sync)


def streaming(name: str, sync: bool = False) -> ReplicaSeen:
    return ReplicaSeen(name, answered=True, streaming=True, sync=sync)


def silent(name: str, sync: bool = False) -> ReplicaSeen:
    return ReplicaSeen(name, answered=False, streaming=False, sync=sync)


def run(ticks: list[Seen], settings: Settings = SYNC) -> list[Decision]:
    memory, out = Memory(), []
    for seen in ticks:
        memory, decision = decide(memory, seen, settings)
        out.append(decision)
    return out


def primary_lost_at(t0: float, until: float, replicas: tuple[ReplicaSeen, ...], active: bool = True,
                    step: float = 0.25) -> list[Seen]:
    """node0 leads and answers until t0, then never again; ticks every `step` until `until`."""
    ticks, t = [], 0.0
    while t <= until:
        answered = min(t, t0)
        ticks.append(Seen(t, active, "node0", answered, replicas if t > t0 + 1 else
                          (streaming("node1", True), streaming("node2"))))
        t = round(t + step, 6)
    return ticks


def test_a_lost_primary_confirmed_by_its_replicas_is_fenced_after_fence_after_s() -> None:
    ticks = primary_lost_at(10.0, 13.0, (gone("node1", True), gone("node2")))
    decisions = run(ticks)
    first = next(i for i, d in enumerate(decisions) if d.action == FENCE)
    assert ticks[first].at == 12.0  # silent for exactly fence_after_s
    assert "node0" in decisions[first].reason and "fencing it" in decisions[first].reason
    assert all(d.action == NONE for d in decisions[:first])


def test_a_stall_shorter_than_fence_after_s_never_fences() -> None:
    ticks, t = [], 0.0
    while t <= 30:
        # answers, except for 1.75 s stalls every 5 s, while the replicas report nothing streaming
        stalled_since = (t // 5) * 5
        answered = stalled_since if t - stalled_since < 1.75 else t
        ticks.append(Seen(t, True, "node0", answered, (gone("node1", True), gone("node2"))))
        t = round(t + 0.25, 6)
    assert {d.action for d in run(ticks)} == {NONE}


def test_a_guard_cut_off_from_a_healthy_primary_never_fences() -> None:
    # The guard hears nothing from node0, but both replicas still stream from it.
    ticks = [Seen(t / 4, True, "node0", 0.0, (streaming("node1", True), streaming("node2"))) for t in range(200)]
    decisions = run(ticks)
    assert {d.action for d in decisions} == {NONE}
    assert "still stream from it: not fencing" in decisions[-1].reason


def test_one_replica_still_streaming_is_enough_to_hold_back() -> None:
    ticks = primary_lost_at(1.0, 10.0, (gone("node1", True), streaming("node2")))
    assert {d.action for d in run(ticks)} == {NONE}


def test_no_replica_answering_means_no_confirmation() -> None:
    # The guard is cut off from every node: it cannot tell a dead primary from its own isolation.
    ticks = primary_lost_at(1.0, 10.0, (silent("node1", True), silent("node2")))
    decisions = run(ticks)
    assert {d.action for d in decisions} == {NONE}
    assert "no replica answers" in decisions[-1].reason


def test_with_synchronous_mode_the_synchronous_standby_must_answer() -> None:
    ticks = primary_lost_at(1.0, 10.0, (silent("node1", True), gone("node2")))
    decisions = run(ticks)
    assert {d.action for d in decisions} == {NONE}
    assert "synchronous standby node1 does not answer" in decisions[-1].reason
    # Without a synchronous standby nobody could take over: fencing would only cost availability.
    no_sync = primary_lost_at(1.0, 10.0, (gone("node1"), gone("node2")))
    assert {d.action for d in run(no_sync)} == {NONE}
    # Asynchronous replication: any replica that confirms is enough.
    assert FENCE in {d.action for d in run(no_sync, Settings(2.0, False, 0.75))}


def test_a_standby_guard_never_fences() -> None:
    ticks = primary_lost_at(1.0, 10.0, (gone("node1", True), gone("node2")), active=False)
    decisions = run(ticks)
    assert {d.action for d in decisions} == {NONE}
    assert "does not hold the guards' key" in decisions[-1].reason


def test_a_new_leader_is_not_silent_for_longer_than_it_has_led() -> None:
    # node1 never answered as a primary before (it was a replica); it just took the key.
    memory = Memory("node0", 0.0)
    memory, decision = decide(memory, Seen(100.0, True, "node1", None, (gone("node0"), gone("node2", True))), SYNC)
    assert decision.action == NONE and memory.leader_since == 100.0
    _, decision = decide(memory, Seen(101.0, True, "node1", None, (gone("node0"), gone("node2", True))), SYNC)
    assert decision.action == NONE
    _, decision = decide(memory, Seen(102.0, True, "node1", None, (gone("node0"), gone("node2", True))), SYNC)
    assert decision.action == FENCE


def test_no_leader_key_means_an_election_is_under_way() -> None:
    memory, decision = decide(Memory("node0", 0.0), Seen(5.0, True, None, None), SYNC)
    assert decision.action == NONE and memory.leader is None


def test_a_fenced_leader_whose_key_remains_gets_its_key_deleted_then_is_forgotten_once_it_answers() -> None:
    memory = Memory("node0", 0.0, frozenset({"node0"}))
    memory, decision = decide(memory, Seen(5.0, True, "node0", 1.0, (gone("node1", True),)), SYNC)
    assert decision.action == DELETE_KEY
    # Back as a replica (healed): no longer remembered as fenced.
    memory, _ = decide(memory, Seen(30.0, True, "node1", 30.0, (gone("node0"), streaming("node2", True))), SYNC)
    assert memory.fenced == frozenset()


def test_the_same_situation_is_told_in_the_same_sentence() -> None:
    # The log says each change of mind once: a sentence must not change with the seconds.
    ticks = primary_lost_at(1.0, 2.9, (gone("node1", True), gone("node2")))
    reasons = [d.reason for d in run(ticks) if "stopped answering" in d.reason]
    assert len(reasons) > 2 and len(set(reasons)) == 1


# --- rendering --------------------------------------------------------------------------------


def _guard_files(spec_overrides: dict[str, object]) -> tuple[dict[str, object], Site]:
    spec = build_spec("default", overrides={"name": "c", **spec_overrides})
    topo = topology(spec)
    fences = tuple(NodeFence(n, f"/srv/c/run/{n}.pid", f"/srv/c/data/{n}") for n in spec.node_names)
    site = Site(topo, topo.guards[0], Layout(Path("/srv/c")), Secrets.generate(), Programs("/opt/v/bin/patroni"),
                fences=fences)
    files, unit = render_component(site)
    config = next(f for f in files if f.path.name == "guard.json")
    assert config.mode == 0o600  # it holds the guards' DCS password
    assert unit.exec_start == ["/opt/v/bin/python", "/srv/c/conf/pgha-fencing-guard.py", "/srv/c/conf/guard.json"]
    return json.loads(config.text), site


def test_the_guard_config_names_every_node_its_fence_and_the_guards_own_login(tmp_path: Path) -> None:
    raw, site = _guard_files({})
    assert [n["name"] for n in raw["nodes"]] == ["node0", "node1", "node2"]  # type: ignore[index]
    assert raw["nodes"][1]["fence"] == {"signal": {"pidfile": "/srv/c/run/node1.pid",  # type: ignore[index]
                                                   "pgdata": "/srv/c/data/node1"}}
    assert raw["dcs"]["etcd3"]["username"] == "guard-c"  # type: ignore[index]
    assert raw["dcs"]["etcd3"]["password"] == site.secrets.guard_dcs_password  # type: ignore[index]
    assert raw["fence_after_s"] == 2.0 and raw["probe_timeout_s"] == 0.5
    path = tmp_path / "guard.json"
    path.write_text(json.dumps(raw))
    cfg = Config.load(str(path))  # what the guard itself reads back
    assert cfg.settings == Settings(2.0, True, 0.75) and cfg.node("node2") is not None


def test_fencing_shortens_the_standbys_wal_receiver_timeout_to_its_threshold() -> None:
    params = dynamic_settings(build_spec("default", overrides={"fencing": {"fence_after_s": 3}}))
    assert params["postgresql"]["parameters"]["wal_receiver_timeout"] == "3000ms"
    # The user's own value stays; without fencing PostgreSQL's default stays.
    mine = build_spec("default", overrides={"patroni": {"parameters": {"wal_receiver_timeout": "5s"}}})
    assert dynamic_settings(mine)["postgresql"]["parameters"]["wal_receiver_timeout"] == "5s"
    assert "wal_receiver_timeout" not in dynamic_settings(build_spec("seed"))["postgresql"]["parameters"]


def test_the_default_profile_fences_where_the_backend_can_and_the_seed_never() -> None:
    assert build_spec("default").fencing.enabled
    assert build_spec("default", overrides={"backend": "netns"}).fencing.enabled
    assert not build_spec("default", overrides={"backend": "compose"}).fencing.enabled
    assert not build_spec("default", overrides={"dcs": {"kind": "zookeeper"}}).fencing.enabled
    assert not build_spec("seed").fencing.enabled
    assert not topology(build_spec("seed")).guards
    assert [g.name for g in topology(build_spec("default", overrides={"backend": "netns"})).guards] == \
        ["guard", "guard1"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"backend": "compose", "fencing": {"enabled": True}}, "fencing.enabled: the compose backend has no fence"),
    ({"dcs": {"kind": "zookeeper"}, "fencing": {"enabled": True}}, "not built for zookeeper yet"),
    ({"fencing": {"fence_after_s": 0.5}}, "fencing.fence_after_s: must be >= 1"),
    ({"fencing": {"interval_s": 1.5}}, "must ask at least twice within fence_after_s"),
])
def test_fencing_settings_that_cannot_work_are_refused_in_one_line(overrides: dict[str, object],
                                                                   message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_spec("default", overrides=overrides)


def test_only_a_running_replica_that_answered_lately_is_a_witness() -> None:
    from pgha.ops.fencing_guard import Answer, NodeConfig, Prober

    prober = Prober(NodeConfig("node1", "http://127.0.0.1:1", (), {}), 0.25, 0.5, None)  # never started
    assert prober.replica_seen(10.0, 0.75, True) == ReplicaSeen("node1", False, False, True)  # never answered
    prober.latest = Answer(9.5, primary=False, running=True, streaming=False)
    assert prober.replica_seen(10.0, 0.75, True) == gone("node1", True)
    # Its PostgreSQL down: it receives nothing from anyone, which says nothing about the primary.
    prober.latest = Answer(9.5, primary=False, running=False, streaming=False)
    assert not prober.replica_seen(10.0, 0.75, True).answered
    # An answer older than a probe's cadence and timeout is no answer.
    prober.latest = Answer(9.0, primary=False, running=True, streaming=True)
    assert not prober.replica_seen(10.0, 0.75, True).answered
