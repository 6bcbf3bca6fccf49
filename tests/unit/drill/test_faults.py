"""The fault table: each fault injects and heals what it says, through the backend only; targets
resolve by the fault's kind of target; the CLI's help lists every fault (no servers)."""

from __future__ import annotations

from typing import Any

import pytest

from pgha.drill.faults import (
    FAULTS,
    PAUSE_SECONDS,
    SETTLE_MARGIN_S,
    STALL_SECONDS,
    Hosts,
    Nemesis,
    TargetError,
    fault_named,
    help_text,
    settle_seconds,
)
from pgha.errors import BackendError
from pgha.ops import patroni_api as switchover_module

NETWORK_METHODS = ("isolate", "cut", "partition", "lose_packets", "lag", "heal_network")


class Recorder:
    """A backend that only writes down what it was asked to do, with a fake clock."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.now = 1000.0

    def __getattr__(self, name: str) -> Any:
        # Only the network backend's class has the NetworkFaults methods (isinstance checks them).
        if name.startswith("_") or name in NETWORK_METHODS:
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))

    def set_aside_data(self, node: str, instance: str) -> bool:
        self.calls.append(("set_aside_data", node, instance))
        return node != "node1"  # node1 had no data directory left

    def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))
        self.now += seconds

    def clock(self) -> float:
        return self.now


class NetworkRecorder(Recorder):
    """Declares the NetworkFaults methods, as a backend with hosts of their own does."""

    def isolate(self, component: str) -> None:
        self.calls.append(("isolate", component))

    def cut(self, component: str, others: list[str]) -> None:
        self.calls.append(("cut", component, others))

    def partition(self, minority: list[str]) -> None:
        self.calls.append(("partition", minority))

    def lose_packets(self, component: str, percent: int) -> None:
        self.calls.append(("lose_packets", component, percent))

    def lag(self, component: str, ms: int) -> None:
        self.calls.append(("lag", component, ms))

    def heal_network(self) -> None:
        self.calls.append(("heal_network",))


DCS = ("dcs0", "dcs1", "dcs2")

# fault, target -> (what inject asks of the backend, what heal asks of it); written out by hand.
EXPECTED: dict[str, tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {
    "stop": ("node0", [("stop_node", "node0")], [("start_node", "node0")]),
    "kill": ("node0", [("crash_node", "node0")], [("start_node", "node0")]),
    "node-loss": ("node0", [("kill_node", "node0")], [("start_node", "node0")]),
    # The active guard (guard1 here) first: the lease the standby waits out starts with it.
    "node-and-guard-loss": ("node0", [("kill_component", "guard1"), ("kill_node", "node0")],
                            [("start_node", "node0"), ("start_component", "guard1")]),
    "freeze": ("node0", [("freeze_node", "node0")], [("thaw_node", "node0")]),
    "crash-postgres": ("node0", [("kill_postgres", "node0")], []),
    "dcs-down": ("majority", [("stop_dcs_member", 0), ("stop_dcs_member", 1)],
                 [("start_dcs_member", 0), ("start_dcs_member", 1)]),
    "stall-then-kill": ("node0", [("freeze_walsenders", "node0"), ("sleep", STALL_SECONDS), ("kill_node", "node0")],
                        [("start_node", "node0")]),
    "haproxy-kill": ("haproxy1", [("kill_component", "haproxy1")], [("start_component", "haproxy1")]),
    "isolate": ("dcs1", [("isolate", "dcs1")], [("heal_network",)]),
    "isolate-dcs": ("node1", [("cut", "node1", list(DCS))], [("heal_network",)]),
    "partition": ("node1", [("partition", ["node1", "dcs0"])], [("heal_network",)]),
    "loss": ("node2", [("lose_packets", "node2", 30)], [("heal_network",)]),
    "lag": ("node2", [("lag", "node2", 200)], [("heal_network",)]),
    "archive-fail": ("repository", [("break_archive",), ("switch_wal",)], [("heal_archive",), ("switch_wal",)]),
    "drop-table": ("table", [("drop_table",)], [("restore_to_drop",)]),
    # Every node killed first, then each data directory that is there moved aside and removed.
    # A stall below the fencing threshold: stopped, a moment, resumed within the inject.
    "pause": ("node0", [("freeze_node", "node0"), ("sleep", PAUSE_SECONDS), ("thaw_node", "node0")], []),
    # The active guard's host loses the primary (node0 here), nothing else.
    "isolate-guard": ("guard", [("cut", "guard", ["node0"])], [("heal_network",)]),
    "disaster": ("cluster", [("kill_node", "node0"), ("kill_node", "node1"), ("kill_node", "node2"),
                             ("set_aside_data", "node0", "lost-node0"), ("remove_set_aside", "lost-node0"),
                             ("set_aside_data", "node1", "lost-node1"),
                             ("set_aside_data", "node2", "lost-node2"), ("remove_set_aside", "lost-node2")],
                 [("restore_in_place",)]),
}


def nemesis(backend: Recorder) -> Nemesis:
    return Nemesis(backend, DCS, "rest-pw", ("node0", "node1", "node2"), sleep=backend.sleep, clock=backend.clock,
                   primary="node0", active_guard="guard1",
                   switch_wal=lambda: backend.calls.append(("switch_wal",)),
                   restore_in_place=lambda: backend.calls.append(("restore_in_place",)),
                   drop_table=lambda: backend.calls.append(("drop_table",)) or backend.now,
                   restore_to_drop=lambda: backend.calls.append(("restore_to_drop",)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fault_injects_and_heals_what_it_says(name: str) -> None:
    target, injected, healed = EXPECTED[name]
    backend = NetworkRecorder()
    n = nemesis(backend)
    n.inject(name, target)
    assert backend.calls == injected
    backend.calls.clear()
    n.heal(name, target)
    assert backend.calls == healed


def test_every_fault_in_the_table_is_exercised_here() -> None:
    assert set(EXPECTED) | {"switchover", "rolling-restart"} == set(FAULTS)


def test_a_fault_lands_when_its_harmful_action_starts() -> None:
    backend = Recorder()
    began = backend.now
    assert nemesis(backend).inject("stall-then-kill", "node0") == pytest.approx(began + STALL_SECONDS)
    backend = Recorder()
    assert nemesis(backend).inject("kill", "node0") == pytest.approx(backend.now)


def test_dcs_down_on_all_or_one_member() -> None:
    backend = Recorder()
    nemesis(backend).inject("dcs-down", "all")
    assert backend.calls == [("stop_dcs_member", 0), ("stop_dcs_member", 1), ("stop_dcs_member", 2)]
    backend.calls.clear()
    nemesis(backend).inject("dcs-down", "dcs2")
    assert backend.calls == [("stop_dcs_member", 2)]


@pytest.mark.parametrize("name", [n for n, f in FAULTS.items() if f.network])
def test_a_network_fault_needs_a_backend_with_hosts_of_their_own(name: str) -> None:
    backend = Recorder()
    with pytest.raises(BackendError, match="--backend netns"):
        nemesis(backend).inject(name, "node0")
    assert backend.calls == []


def test_switchover_posts_to_the_leaders_rest_api(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[tuple[Any, ...]] = []

    def fake_http(endpoint: Any, path: str, timeout: float, **kw: Any) -> tuple[int, Any]:
        posted.append((endpoint, path, kw["method"], kw["body"], kw["headers"]["Authorization"]))
        return (503, "no candidates") if kw["body"]["leader"] == "node9" else (200, "ok")

    monkeypatch.setattr(switchover_module, "http_request", fake_http)
    backend = Recorder()
    reach = type("Reach", (), {"rest": staticmethod(lambda node: f"rest-of-{node}")})()
    backend.reach = reach  # type: ignore[attr-defined]
    nemesis(backend).inject("switchover", "node0")
    assert posted[0][:4] == ("rest-of-node0", "switchover", "POST", {"leader": "node0"})
    assert posted[0][4].startswith("Basic ")
    with pytest.raises(BackendError, match="Patroni refused the switchover from node9: HTTP 503 no candidates"):
        nemesis(backend).inject("switchover", "node9")


def test_planned_faults_go_through_the_clusters_own_operations() -> None:
    done: list[str] = []
    backend = Recorder()
    n = Nemesis(backend, DCS, "rest-pw", sleep=backend.sleep, clock=backend.clock,
                hand_over=lambda leader: done.append(f"hand over from {leader}"),
                rolling_restart=lambda: done.append("rolling restart"))
    n.inject("switchover", "node1")
    n.inject("rolling-restart", "node1")
    assert done == ["hand over from node1", "rolling restart"] and backend.calls == []
    with pytest.raises(BackendError, match="rolling-restart needs the cluster's own restart"):
        nemesis(Recorder()).inject("rolling-restart", "node1")


HOSTS = Hosts(leader="node1", replicas=("node2", "node0"), nodes=("node0", "node1", "node2"),
              dcs=DCS, haproxies=("haproxy", "haproxy1"))


@pytest.mark.parametrize(("fault", "target", "resolved"), [
    ("stop", "primary", "node1"),
    ("stop", "replica", "node0"),
    ("freeze", "node2", "node2"),
    ("dcs-down", "primary", "dcs0"),  # the default target of a DCS fault: the first member
    ("dcs-down", "majority", "majority"),
    ("dcs-down", "dcs2", "dcs2"),
    ("haproxy-kill", "primary", "haproxy"),
    ("haproxy-kill", "haproxy1", "haproxy1"),
    ("isolate", "dcs1", "dcs1"),
    ("isolate", "haproxy1", "haproxy1"),
    ("isolate", "primary", "node1"),
    ("loss", "replica", "node0"),
])
def test_targets_resolve_by_the_faults_kind_of_target(fault: str, target: str, resolved: str) -> None:
    f = fault_named(fault)
    assert f.targets.resolve(f.name, target, HOSTS) == resolved


@pytest.mark.parametrize(("fault", "target", "message"), [
    ("stop", "dcs0", "no node named 'dcs0': stop takes primary, replica, node0, node1, node2$"),
    ("partition", "haproxy", "partition takes primary, replica, node0, node1, node2$"),
    ("dcs-down", "node0", "dcs-down takes dcs0, dcs1, dcs2, majority, all"),
    ("haproxy-kill", "haproxy7", "haproxy-kill takes haproxy, haproxy1"),
    ("isolate", "nodeX", "isolate takes primary, replica, node0, node1, node2, dcs0, dcs1, dcs2, haproxy, haproxy1$"),
])
def test_a_target_the_fault_does_not_take_is_refused(fault: str, target: str, message: str) -> None:
    f = fault_named(fault)
    with pytest.raises(TargetError, match=message):
        f.targets.resolve(f.name, target, HOSTS)


def test_replica_target_without_a_replica() -> None:
    alone = Hosts(leader="node0", replicas=(), nodes=("node0",), dcs=DCS, haproxies=("haproxy",))
    with pytest.raises(TargetError, match="no replica"):
        fault_named("stop").targets.resolve("stop", "replica", alone)


def test_unknown_fault_names_the_choices() -> None:
    with pytest.raises(TargetError, match=r"unknown fault 'bogus' \(choose from stop, kill"):
        fault_named("bogus")


def test_the_help_lists_every_fault_with_its_targets() -> None:
    text = help_text()
    for f in FAULTS.values():
        line = next(line for line in text.splitlines() if line.startswith(f"{f.name}: "))
        assert f.description in line and f.targets.help in line
        assert ("--backend netns or compose" in line) == f.network


def test_cut_off_faults_bring_the_self_demotion_verdict() -> None:
    from pgha.drill.history import FinalState
    from pgha.drill.run import single_results

    final = FinalState(primary="node0", rows={}, caught_up={})
    names = {f: [r.name for r in single_results([], final, 0.0, "node0", ("node0",), f, 20.0)]
             for f in ("isolate", "partition", "loss", "stop")}
    assert names["isolate"][-1] == names["partition"][-1] == "self_demotion"
    assert "self_demotion" not in names["loss"] and "self_demotion" not in names["stop"]


def test_extra_verdicts_name_checkers_that_exist() -> None:
    from pgha.drill.checkers import CHECKERS, STANDARD

    for f in FAULTS.values():
        assert set(f.extra_verdicts) <= set(CHECKERS) - set(STANDARD), f.name


def test_a_fault_is_held_as_long_as_whoever_could_react_needs() -> None:
    # Patroni reacts to a network fault once the leader key runs out; a guard-only partition can
    # only move a fencing guard, which would have fenced within a few of its thresholds.
    assert settle_seconds(FAULTS["isolate"], 20, 2.0) == 20 + SETTLE_MARGIN_S
    assert settle_seconds(FAULTS["isolate-guard"], 20, 2.0) == 3 * 2.0 + SETTLE_MARGIN_S
    assert settle_seconds(FAULTS["isolate-guard"], 20, None) == 0.0
    assert settle_seconds(FAULTS["stop"], 20, 2.0) == 0.0


def test_a_fault_that_needs_a_guard_says_so_without_one() -> None:
    backend = Recorder()
    n = nemesis(backend)
    n.active_guard = None
    with pytest.raises(BackendError, match="needs a cluster with fencing guards"):
        n.inject("node-and-guard-loss", "node0")
    assert backend.calls == []
