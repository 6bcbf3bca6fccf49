"""Log parsing against excerpts of real logs (tests/fixtures/logs), and merging.

The excerpts come from a kill-the-leader drill on the dev profile (node0 killed at 16:07:56,
node2 promoted at 16:08:15, node0 restarted, rewound and streaming from 16:08:24), the bootstrap
of another cluster (etcd) and, for ZooKeeper, lines in the log4j layout pgha configures.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pgha.drill.history import LogLine
from pgha.report.timeline import merge, node_of, parse_log

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def utc(stamp: str) -> float:
    """'16:08:15.944' on the drill's day -> epoch seconds."""
    return datetime.fromisoformat(f"2026-11-27T{stamp}+00:00").timestamp()


def kinds(lines: list[LogLine]) -> list[str]:
    return [line.kind for line in lines]


def find(lines: list[LogLine], kind: str) -> list[LogLine]:
    return [line for line in lines if line.kind == kind]


# ---------------------------------------------------------------- Patroni


def test_patroni_new_leader_acquires_the_lock() -> None:
    lines = parse_log("node2", fixture("patroni-node2-promote.log"), "node2")
    (acquired,) = find(lines, "lock_acquired")
    assert acquired.message == "promoted self to leader by acquiring session lock"
    assert acquired.time == pytest.approx(utc("16:08:15.944"))
    assert (acquired.component, acquired.node) == ("node2", "node2")
    # "updated leader lock during promote" comes twice: kept once.
    assert [line.message for line in find(lines, "promoted")] == ["updated leader lock during promote"]


def test_patroni_drops_steady_no_action_lines() -> None:
    lines = parse_log("node2", fixture("patroni-node2-promote.log"), "node2")
    # Three "following a leader (node0)" lines and a dozen "the leader with the lock": one line kept.
    assert [line.message for line in lines if line.message.startswith("no action.")] == [
        "no action. I am (node2), a secondary, and following a leader (node0)"
    ]


def test_patroni_following_kept_only_when_the_leader_changes() -> None:
    lines = parse_log("node1", fixture("patroni-node1-failover.log"), "node1")
    following = [(line.time, line.message) for line in find(lines, "following")]
    assert following == [
        (utc("16:07:50.488"), "no action. I am (node1), a secondary, and following a leader (node0)"),
        (utc("16:08:15.811"), "following a different leader because i am not the healthiest node"),
        (utc("16:08:15.919"), "no action. I am (node1), a secondary, and following a leader (node2)"),
    ]


def test_patroni_lock_owner_change_is_kept_once() -> None:
    lines = parse_log("node1", fixture("patroni-node1-failover.log"), "node1")
    # "Lock owner: node0" is the steady state at the start; "node2" appears five times.
    assert [line.message for line in find(lines, "lock_owner")] == ["Lock owner: node2; I am node1"]


def test_patroni_lock_free_only_after_an_owner() -> None:
    text = "\n".join([
        "2026-11-27 16:01:37,807 INFO: Lock owner: None; I am node0",  # no owner yet: not news
        "2026-11-27 16:01:40,115 INFO: Lock owner: node0; I am node0",  # our own lock: not lock_owner
        "2026-11-27 16:02:10,000 INFO: Lock owner: None; I am node0",
        "2026-11-27 16:02:11,000 INFO: Lock owner: None; I am node0",
    ])
    lines = parse_log("node0", text, "node0")
    assert [(line.kind, line.time) for line in lines] == [("lock_free", utc("16:02:10"))]


def test_patroni_restart_and_rewind() -> None:
    lines = parse_log("node0", fixture("patroni-node0-rejoin.log"), "node0")
    assert kinds(lines)[:4] == ["patroni_start", "lock_owner", "crash_recovery", "starting"]
    assert find(lines, "patroni_start")[0].time == pytest.approx(utc("16:08:16.438"))
    rewinds = [line.message for line in find(lines, "rewind")]
    assert rewinds[0] == "running pg_rewind from node2"
    assert "pg_rewind exit code=0" in rewinds
    assert rewinds.count("running pg_rewind from node2 in progress") == 1
    # The second "starting as a secondary" (after the rewind) is a new start, not a repeat.
    assert [line.time for line in find(lines, "starting")] == [utc("16:08:16.931"), utc("16:08:23.551")]
    # ... and so is following node2 again once it is back.
    assert [line.time for line in find(lines, "following")] == [utc("16:08:17.557"), utc("16:08:24.413")]


def test_patroni_skips_lines_without_a_patroni_stamp() -> None:
    lines = parse_log("node0", fixture("patroni-node0-rejoin.log"), "node0")
    # pg_controldata's indented block, "127.0.1.1:5442 - accepting connections", pg_rewind's own
    # output and PostgreSQL's early lines ("... UTC [14034] LOG: ...") are not Patroni lines.
    assert not any("accepting connections" in line.message or "UTC [" in line.message for line in lines)
    assert not any(line.message.startswith(("pg_control", "pg_rewind:")) for line in lines)


def test_patroni_demote_failsafe_dcs_errors() -> None:
    text = "\n".join([
        "2026-11-27 16:20:00,100 ERROR: Error communicating with DCS",
        "2026-11-27 16:20:01,100 ERROR: Error communicating with DCS",
        "2026-11-27 16:20:01,200 INFO: demoting self because DCS is not accessible and I was a leader",
        "2026-11-27 16:20:02,300 INFO: Got response from node1 http://127.0.0.1:8009/patroni: POST /failsafe",
        "2026-11-27 16:20:03,000 INFO: cleared rewind state after becoming the leader",
        "2026-11-27 16:20:04,000 WARNING: Loop time exceeded, rescheduling immediately.",
    ])
    assert kinds(parse_log("node0", text, "node0")) == ["dcs_error", "demoted", "failsafe", "promoted"]


# ---------------------------------------------------------------- PostgreSQL


def test_postgres_promotion() -> None:
    lines = parse_log("postgresql-node2", fixture("postgresql-node2-promote.log"), "node2")
    promoted = find(lines, "pg_promoted")
    assert [p.message for p in promoted] == ["received promote request", "selected new timeline ID: 2"]
    assert promoted[0].time == pytest.approx(utc("16:08:15.947"))
    (ready,) = find(lines, "pg_ready")
    assert ready.message == "database system is ready to accept connections"
    assert ready.time == pytest.approx(utc("16:08:15.998"))
    assert {line.node for line in lines} == {"node2"}


def test_postgres_replication_lost_once_per_outage() -> None:
    lines = parse_log("postgresql-node2", fixture("postgresql-node2-promote.log"), "node2")
    # One "could not receive data" then four "could not connect" retries: one line.
    lost = find(lines, "replication_lost")
    assert [line.time for line in lost] == [utc("16:07:56.065")]
    assert not any("waiting for WAL" in line.message or "read-only transaction" in line.message for line in lines)


def test_postgres_rejoin_divergence_restart_and_streaming() -> None:
    lines = parse_log("postgresql-node0", fixture("postgresql-node0-rejoin.log"), "node0")
    assert kinds(lines) == [
        "standby", "pg_ready_ro", "replication_lost", "diverged", "pg_shutdown", "pg_stopped",
        "recovery", "standby", "pg_ready_ro", "streaming",
    ]
    assert lines[-1].message == "started streaming WAL from primary at 0/4000000 on timeline 2"


def test_postgres_crash_lines() -> None:
    text = "\n".join([
        "2026-11-27 16:30:00.001 UTC [100] LOG:  server process (PID 123) was terminated by signal 9: Killed",
        "2026-11-27 16:30:00.002 UTC [100] LOG:  terminating any other active server processes",
        "2026-11-27 16:30:00.010 UTC [100] LOG:  all server processes terminated; reinitializing",
        "2026-11-27 16:30:00.020 UTC [130] LOG:  database system was not properly shut down; "
        "automatic recovery in progress",
        "2026-11-27 16:30:00.030 UTC [100] LOG:  received immediate shutdown request",
    ])
    assert kinds(parse_log("postgresql-node1", text, "node1")) == [
        "pg_crash", "pg_crash", "pg_crash", "crash_recovery", "pg_shutdown",
    ]


# ---------------------------------------------------------------- HAProxy


def test_haproxy_server_states_and_no_server() -> None:
    lines = parse_log("haproxy", fixture("haproxy.log"), None)
    # Every "[WARNING]/[ALERT] (pid) :" line repeats a timestamped one and is skipped; so are
    # the "Connect from" lines.
    assert len(lines) == 18
    switch = next(
        line for line in lines if line.kind == "backend_up" and line.message.startswith("Server primary/node2")
    )
    assert switch.node == "node2"
    assert switch.time == pytest.approx(utc("16:08:16.428099"))
    assert switch.message == (
        "Server primary/node2 is UP, reason: Layer7 check passed, code: 200. 1 active and 0 backup servers online."
    )
    down = find(lines, "backend_down")
    assert any(line.message.startswith("Server replicas/node2 is DOWN") for line in down)
    assert [line.message for line in find(lines, "no_server")] == [
        "proxy primary has no server available!",
        "proxy replicas has no server available!",
        "proxy primary has no server available!",
    ]
    assert {line.node for line in find(lines, "no_server")} == {None}


# ---------------------------------------------------------------- etcd and ZooKeeper


def test_etcd_leader_changes_and_member_stops() -> None:
    lines = parse_log("dcs2", fixture("etcd-dcs2.log"), None)
    assert [line.message for line in find(lines, "dcs_leader")] == [
        "raft.node: 5a1cc9a9d7a4fbfc elected leader 5a1cc9a9d7a4fbfc at term 2",
        "raft.node: 5a1cc9a9d7a4fbfc elected leader ca8f4bc69340b462 at term 3",
    ]
    lost = find(lines, "dcs_leader_lost")[-1]
    assert lost.message == "raft.node: 5a1cc9a9d7a4fbfc lost leader 5a1cc9a9d7a4fbfc at term 2"
    assert lost.time == pytest.approx(utc("16:01:58.926"))
    assert "received signal; shutting down" in [line.message for line in find(lines, "dcs_event")]
    assert "peer became inactive (message send to peer failed) (7d6a0d7dc7f620ac)" in [
        line.message for line in find(lines, "dcs_peer")
    ]
    # Non-JSON lines (/health errors, grpc warnings) are skipped, and every line has a DCS kind.
    assert {line.kind for line in lines} <= {"dcs_leader", "dcs_leader_lost", "dcs_event", "dcs_peer"}
    assert not any("/health" in line.message for line in lines)


def test_zookeeper_states_sessions_and_shutdown() -> None:
    lines = parse_log("dcs0", fixture("zookeeper-dcs0.log"), None)
    assert kinds(lines) == [
        "dcs_event", "dcs_looking", "dcs_follower", "session_expired", "dcs_event", "dcs_looking", "dcs_leader",
    ]
    assert lines[3].message == (
        "ZooKeeperServer: Expiring session 0x100000a3c2b0000, timeout of 30000ms exceeded"
    )
    assert lines[-1].time == pytest.approx(utc("15:42:31.250"))


# ---------------------------------------------------------------- components, merging


@pytest.mark.parametrize(
    ("component", "node"),
    [
        ("node0", "node0"),
        ("postgresql-node0", "node0"),
        ("postgresql0", "postgresql0"),
        ("postgresql-postgresql0", "postgresql0"),
        ("haproxy", None),
        ("dcs1", None),
    ],
)
def test_node_of(component: str, node: str | None) -> None:
    assert node_of(component) == node


def test_lab_profile_names_pick_the_right_parsers() -> None:
    patroni = "2026-11-27 16:08:15,944 INFO: promoted self to leader by acquiring session lock"
    postgres = "2026-11-27 16:08:15.947 UTC [13739] LOG:  received promote request"
    assert kinds(parse_log("postgresql0", patroni, "postgresql0")) == ["lock_acquired"]
    assert kinds(parse_log("postgresql-postgresql0", postgres, "postgresql0")) == ["pg_promoted"]
    assert parse_log("postgresql0", postgres, "postgresql0") == []  # a PG line is not a Patroni line


def test_merge_orders_all_components_by_time() -> None:
    groups = [
        parse_log("haproxy", fixture("haproxy.log"), None),
        parse_log("node2", fixture("patroni-node2-promote.log"), "node2"),
        parse_log("postgresql-node2", fixture("postgresql-node2-promote.log"), "node2"),
    ]
    merged = merge(groups, None, None)
    assert len(merged) == sum(map(len, groups))
    assert [line.time for line in merged] == sorted(line.time for line in merged)
    # The failover reads in order: lock (15.944), promote request (15.947), ready (15.998), HAProxy (16.428).
    wanted = ("lock_acquired", "pg_promoted", "pg_ready", "backend_up")
    story = [
        line.kind
        for line in merged
        if line.kind in wanted and line.time > utc("16:08:15") and "replicas/" not in line.message
    ]
    assert story == ["lock_acquired", "pg_promoted", "pg_promoted", "pg_ready", "backend_up"]


def test_merge_window_is_inclusive_and_ties_keep_input_order() -> None:
    a = [LogLine(10.0, "a", None, "k", "a1"), LogLine(20.0, "a", None, "k", "a2")]
    b = [LogLine(10.0, "b", None, "k", "b1"), LogLine(5.0, "b", None, "k", "b0"), LogLine(30.0, "b", None, "k", "b3")]
    assert [line.message for line in merge([a, b], 10.0, 20.0)] == ["a1", "b1", "a2"]
    assert [line.message for line in merge([b, a], None, 10.0)] == ["b0", "b1", "a1"]
    assert [line.message for line in merge([a, b], 25.0, None)] == ["b3"]


def test_patroni_frozen_leader_thaws_and_demotes() -> None:
    lines = parse_log("node1", fixture("patroni-node1-freeze.log"), "node1")
    # Before the freeze node1 only said "the leader with the lock": that makes node2's lock news.
    assert (lines[0].kind, lines[0].message) == ("lock_owner", "Lock owner: node2; I am node1")
    assert lines[0].time == pytest.approx(utc("16:16:12.129"))
    assert [line.message for line in find(lines, "demoted")] == [
        "Demoting self (immediate-nolock)",
        "demoting self because I do not have the lock and I was a leader",
        "starting after demotion in progress",  # repeated six times in the log
    ]
    assert kinds(lines)[-2:] == ["starting", "starting"]
    assert find(lines, "rewind")[0].time == pytest.approx(utc("16:16:19.513"))


@pytest.mark.parametrize("settings", [
    {"profile": "default"},
    {"profile": "seed"},
    {"profile": "default", "backend": "netns", "haproxy": {"hosts": 2}, "dcs": {"members": 3}},
    {"profile": "default", "dcs": {"kind": "zookeeper", "members": 3}, "nodes": 3},
    {"profile": "default", "node_prefix": "db"},
])
def test_every_component_a_cluster_can_have_gets_its_own_parser(settings: dict[str, object]) -> None:
    """Each log a cluster writes goes to the parser of its kind: the second HAProxy host's log
    ("haproxy1") to HAProxy's, not Patroni's."""
    from pgha.model.spec import build_spec
    from pgha.model.topology import topology
    from pgha.report.timeline import parser_for

    topo = topology(build_spec(file_settings=settings))
    expected = {parser_for("haproxy"): [p.name for p in topo.haproxies],
                parser_for("dcs0"): [p.name for p in topo.dcs],
                parser_for("node0"): [p.name for p in topo.nodes],
                parser_for("postgresql-node0"): [f"postgresql-{p.name}" for p in topo.nodes]}
    assert len(set(expected)) == 4  # four different parsers
    for parser, components in expected.items():
        for component in components:
            assert parser_for(component) is parser, component
    assert all(node_of(p.name) is None for p in (*topo.haproxies, *topo.dcs))
    assert [node_of(p.name) for p in topo.nodes] == [node_of(f"postgresql-{p.name}") for p in topo.nodes] \
        == [p.name for p in topo.nodes]


def test_a_haproxy_host_beyond_the_first_parses_as_haproxy() -> None:
    lines = parse_log("haproxy1", fixture("haproxy.log"), None)
    assert lines and kinds(lines) == kinds(parse_log("haproxy", fixture("haproxy.log"), None))
    assert {line.component for line in lines} == {"haproxy1"}


@pytest.mark.parametrize("prefix", ["dcs", "dcs1", "haproxy", "haproxy2", "switch"])
def test_a_node_prefix_that_would_name_another_component_is_refused(prefix: str) -> None:
    from pgha.model.spec import SpecError, build_spec

    with pytest.raises(SpecError, match="taken by another component"):
        build_spec(file_settings={"node_prefix": prefix})


def test_members_asked_for_their_state_are_kept_short_and_once() -> None:
    text = "\n".join([
        "2026-11-27 16:08:15,700 INFO: Got response from node1 http://127.0.1.1:5453/patroni: {\"state\": \"running\"}",
        "2026-11-27 16:08:15,753 WARNING: Request failed to node0: GET http://127.0.1.1:5452/patroni (refused)",
        "2026-11-27 16:08:16,753 WARNING: Request failed to node0: GET http://127.0.1.1:5452/patroni (refused)",
    ])
    lines = parse_log("node2", text, "node2")
    assert [(line.kind, line.message) for line in lines] == [
        ("race_probe", "asked node1 for its state: it answered"),
        ("race_probe", "asked node0 for its state: no answer"),
    ]


def test_a_guards_decisions_are_each_news_and_its_fences_stand_out() -> None:
    text = "\n".join([
        "2026-12-07 22:31:41,687 INFO: the primary node0 stopped answering: fenced if it stays silent for 2 s",
        "2026-12-07 22:31:44,042 WARNING: the primary node0 has been silent for 2.4 s and no replica receives "
        "from it: fencing it",
        "2026-12-07 22:31:44,049 WARNING: fenced node0: SIGKILL to 14 processes of its Patroni and PostgreSQL",
        "2026-12-07 22:31:44,175 WARNING: deleted the leader key of node0: the replicas hold their election now",
        "2026-12-07 22:31:44,515 INFO: the primary node1 answers",
        "Traceback (most recent call last):",  # not a decision
    ])
    lines = parse_log("guard1", text, node_of("guard1"))
    assert node_of("guard1") is None
    assert [line.kind for line in lines] == ["guard", "fenced", "fenced", "fenced", "guard"]
    assert lines[3].message.startswith("deleted the leader key of node0")
