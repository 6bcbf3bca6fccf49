"""Where the seconds went: the outage cut into stretches, each with its owner (pure)."""

from __future__ import annotations

from pgha.drill.history import CheckerResult, Event, LogLine, RunInfo
from pgha.model.spec import build_spec
from pgha.report.render import render_html, render_markdown
from pgha.report.seconds import stretches

T0 = 1_000.0


def _info(**over: object) -> RunInfo:
    base: dict[str, object] = dict(cluster="lab", profile="seed", fault="stop", target="postgresql0", via="haproxy",
                                   rate=20.0, started=T0 - 10, ended=T0 + 60, old_primary="postgresql0",
                                   new_primary="postgresql1", nodes=["postgresql0", "postgresql1"], ttl=30,
                                   loop_wait=10, haproxy_inter_ms=3000, haproxy_rise=2, push_routing=False)
    return RunInfo(**{**base, **over})  # type: ignore[arg-type]


def _outage(recovered: float | None, failover_s: float | None = None) -> list[CheckerResult]:
    return [CheckerResult("outage", True, "", {"t_recovered": recovered, "failover_s": failover_s,
                                                "routing_s": None})]


def _line(t: float, component: str, node: str | None, kind: str, message: str = "") -> LogLine:
    return LogLine(T0 + t, component, node, kind, message)


LAB_STOP = [
    _line(0.3, "postgresql-postgresql0", "postgresql0", "pg_stopped", "database system is shut down"),
    _line(2.3, "postgresql1", "postgresql1", "lock_free", "Lock owner: None; I am postgresql1"),
    _line(2.4, "postgresql1", "postgresql1", "lock_acquired", "promoted self to leader by acquiring session lock"),
    _line(2.5, "postgresql-postgresql1", "postgresql1", "pg_promoted", "selected new timeline ID: 2"),
    _line(7.9, "haproxy", "postgresql1", "backend_up", "Server primary/postgresql1 is UP"),
]


def test_the_labs_stop_is_cut_into_stretches_with_their_owners() -> None:
    got = stretches(_info(), _outage(T0 + 8.0), LAB_STOP, T0)
    assert [(s.name, round(s.start - T0, 2), round(s.end - T0, 2)) for s in got] == [
        ("the old primary's PostgreSQL stops", 0.0, 0.3),
        ("the loss noticed", 0.3, 2.3),
        ("leader race", 2.3, 2.4),
        ("promotion", 2.4, 2.5),
        ("routing", 2.5, 7.9),
        ("clients reconnect", 7.9, 8.0),
    ]
    routing = got[4]
    # The lab's inter 3s rise 2: a promoted node waits up to 6 s before HAProxy sends it writes.
    assert routing.owner == "HAProxy's health checks (inter 3000 ms, rise 2)"
    assert "up to 6 s" in routing.why
    assert "Patroni's shutdown" in got[1].owner and "loop_wait 10 s" in got[2].owner
    assert abs(sum(s.seconds for s in got) - 8.0) < 1e-9


def test_pushed_routing_and_faster_checks_are_named_as_such() -> None:
    pushed = stretches(_info(push_routing=True), _outage(T0 + 8.0), LAB_STOP, T0)
    assert pushed[4].owner == "pgha's on_role_change hook"
    checks = stretches(_info(haproxy_inter_ms=1000, haproxy_rise=1, haproxy_downinter_ms=500,
                             haproxy_fastinter_ms=500), _outage(T0 + 8.0), LAB_STOP, T0)
    assert checks[4].owner == "HAProxy's health checks (inter 1000 ms, downinter 500 ms, fastinter 500 ms, rise 1)"
    assert "up to 0.5 s" in checks[4].why


def test_a_key_that_must_expire_is_the_ttls_time() -> None:
    freeze = [line for line in LAB_STOP if line.kind != "pg_stopped"]
    got = stretches(_info(fault="freeze"), _outage(T0 + 8.0), freeze, T0)
    assert got[0].name == "the loss noticed" and "ttl (30 s)" in got[0].owner


def test_what_the_logs_do_not_show_is_joined_to_the_next_stretch_not_guessed() -> None:
    no_free = [line for line in LAB_STOP if line.kind != "lock_free"]
    got = stretches(_info(), _outage(T0 + 8.0), no_free, T0)
    assert got[1].name == "the loss noticed and leader race"
    assert (got[1].start, got[1].end) == (T0 + 0.3, T0 + 2.4)
    assert "Patroni's shutdown" in got[1].owner and "HA loop" in got[1].owner


def test_no_failover_or_no_recovery_has_nothing_to_explain() -> None:
    assert stretches(_info(new_primary="postgresql0"), _outage(T0 + 3.0), LAB_STOP, T0) == []
    assert stretches(_info(new_primary=None), _outage(T0 + 3.0), LAB_STOP, T0) == []
    assert stretches(_info(), _outage(None), LAB_STOP, T0) == []


def test_the_report_shows_the_stretches() -> None:
    info, results = _info(), _outage(T0 + 8.0)
    seconds = stretches(info, results, LAB_STOP, T0)
    # build_report puts the nemesis's fault on the timeline: the renderers' time zero, as here.
    timeline = [_line(0.0, "nemesis", "postgresql0", "fault", "fault stop on postgresql0"), *LAB_STOP]
    md = render_markdown(info, results, timeline, "narrative", "plot.png", seconds)
    assert "## Where the seconds went" in md
    assert "| routing | +2.50 | +7.90 | 5.40 | HAProxy's health checks (inter 3000 ms, rise 2) |" in md
    page = render_html(info, results, timeline, "narrative", b"", seconds)
    assert "<h2>Where the seconds went</h2>" in page and "leader race" in page
    assert "Where the seconds went" not in render_markdown(info, results, LAB_STOP, "narrative", "plot.png")


def test_a_log_line_later_than_the_first_write_ends_at_that_write() -> None:
    # HAProxy logs a pushed routing change a moment after the first write went through.
    got = stretches(_info(push_routing=True), _outage(T0 + 7.85), LAB_STOP, T0)
    assert [s.name for s in got][-2:] == ["routing", "clients reconnect"]
    assert got[-2].end == got[-1].start == got[-1].end == T0 + 7.85


def test_a_replica_asking_the_others_marks_the_key_free_but_the_stopping_primary_does_not() -> None:
    probes = [
        # The old primary asks the replicas while it shuts down: nobody has noticed anything yet.
        _line(1.2, "postgresql0", "postgresql0", "race_probe", "asked postgresql1 for its state: it answered"),
        # A replica asks: the key is free and the race is on.
        _line(2.2, "postgresql1", "postgresql1", "race_probe", "asked postgresql0 for its state: no answer"),
    ]
    timeline = [line for line in LAB_STOP if line.kind != "lock_free"] + probes
    got = stretches(_info(), _outage(T0 + 8.0), timeline, T0)
    assert [(s.name, round(s.end - T0, 2)) for s in got][:3] == [
        ("the old primary's PostgreSQL stops", 0.3), ("the loss noticed", 2.2), ("leader race", 2.4)]


def test_writes_failing_after_the_routing_are_the_entrypoints_time_not_the_writers() -> None:
    fails = [ev for i in range(3) for ev in (
        Event(T0 + 8.0 + i, f"writer-{i}", "invoke", "write", i),
        Event(T0 + 10.0 + i, f"writer-{i}", "fail", "write", i, error="connection timeout expired"))]
    # Sent before HAProxy routed (at +7.9) and failing after it: the failover's, not counted.
    early = [Event(T0 + 7.0, "writer-9", "invoke", "write", 9),
             Event(T0 + 9.0, "writer-9", "fail", "write", 9, error="connection timeout expired")]
    got = stretches(_info(), _outage(T0 + 20.0), LAB_STOP, T0, [*early, *fails])
    last = got[-1]
    assert last.name == "clients reconnect" and last.owner == "the entrypoint (haproxy)"
    assert '3 failed, 3 of them with "connection timeout expired"' in last.why
    # Failures before HAProxy routed to the new primary are the failover's, not the entrypoint's.
    assert stretches(_info(), _outage(T0 + 20.0), LAB_STOP, T0, early)[-1].owner == "the writers"


def test_each_stretch_says_what_the_default_profile_sets_instead() -> None:
    default = build_spec("default")
    lab = _info(fault="freeze", retry_timeout=10, haproxy_fall=3, haproxy_maxconn=100,
                haproxy_timeout_connect_ms=4000)
    freeze = [line for line in LAB_STOP if line.kind != "pg_stopped"]
    fails = [Event(T0 + 8.0, "writer-1", "invoke", "write", 1),
             Event(T0 + 9.0, "writer-1", "fail", "write", 1, error="connection timeout expired")]
    got = {s.key: s for s in stretches(lab, _outage(T0 + 20.0), freeze, T0, fails, default=default)}
    # Read from the default spec, not written down here: what differs, and the run's own value.
    d = default.patroni
    # The default profile does not wait for the key to expire at all: its guard fences and deletes it.
    assert got["noticed"].instead == (f"a fencing guard (fencing.enabled): the primary fenced after "
                                      f"{default.fencing.fence_after_s:g} s of silence, confirmed by its replicas, "
                                      "and its leader key deleted instead of expiring")
    unfenced = build_spec("default", overrides={"fencing": {"enabled": False}})
    got_unfenced = {s.key: s for s in stretches(lab, _outage(T0 + 20.0), freeze, T0, fails, default=unfenced)}
    assert got_unfenced["noticed"].instead == \
        f"ttl {d.ttl} s (this run: 30 s): Patroni's floor (it raises anything lower to 20)"
    assert got["race"].instead == f"loop_wait {d.loop_wait} s (this run: 10 s), retry_timeout {d.retry_timeout} s " \
                                  f"(this run: 10 s)"
    assert got["routing"].instead.startswith("the new primary pushes its role to every HAProxy")
    assert f"inter {default.haproxy.inter_ms} ms (this run: 3000 ms)" in got["routing"].instead
    assert got["promotion"].instead == ""
    assert got["reconnect"].instead == (f"maxconn {default.haproxy.maxconn} (this run: 100), timeout connect "
                                        f"{default.haproxy.timeout_connect_ms} ms (this run: 4000 ms), fall "
                                        f"{default.haproxy.fall} (this run: 3)")
    md = render_markdown(lab, _outage(T0 + 20.0), freeze, "n", "plot.png", list(got.values()))
    assert "| the default profile sets instead |" in md


def test_a_default_run_has_nothing_to_set_instead() -> None:
    default = build_spec("default")
    p = default.patroni
    run = _info(ttl=p.ttl, loop_wait=p.loop_wait, retry_timeout=p.retry_timeout,
                haproxy_inter_ms=default.haproxy.inter_ms, haproxy_rise=default.haproxy.rise,
                haproxy_downinter_ms=default.haproxy.downinter_ms, haproxy_fastinter_ms=default.haproxy.fastinter_ms,
                push_routing=True)
    got = stretches(run, _outage(T0 + 8.0), LAB_STOP, T0, default=default)
    assert got and all(s.instead == "" for s in got)
    assert "sets instead" not in render_markdown(run, _outage(T0 + 8.0), LAB_STOP, "n", "plot.png", got)


def test_after_a_fence_the_wait_for_the_fenced_members_answer_is_the_races_not_the_noticing() -> None:
    # The netns isolate run of 2026-12-08: the key deleted at +2.64, a replica that may not win
    # says so at once, the synchronous standby's race waits out its request to the fenced node.
    fenced = [
        _line(2.64, "guard", None, "fenced", "deleted the leader key of node0: the replicas hold their election now"),
        _line(2.76, "node1", "node1", "following", "following a different leader because i am not the healthiest"),
        _line(3.65, "node2", "node2", "race_probe", "asked node0 for its state: no answer"),
        _line(3.85, "node2", "node2", "lock_acquired", "promoted self to leader by acquiring session lock"),
        _line(3.85, "postgresql-node2", "node2", "pg_promoted", "received promote request"),
        _line(3.95, "haproxy", "node2", "backend_up", "Server primary/node2 is UP"),
    ]
    info = _info(profile="default", fault="isolate", old_primary="node0", new_primary="node2",
                 nodes=["node0", "node1", "node2"], ttl=20, loop_wait=1, push_routing=True, fence_after_s=2.0)
    got = stretches(info, _outage(T0 + 4.05), fenced, T0)
    assert [(s.name, round(s.end - T0, 2)) for s in got][:3] == [
        ("the primary fenced", 2.64), ("the loss noticed", 2.76), ("leader race", 3.85)]
    assert "1 s as pgha runs it" in got[2].why
