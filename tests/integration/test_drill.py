"""Short drills on a real default-profile cluster: the checkers' verdicts on real faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from helpers import run_pgha

from pgha.cluster import Cluster

pytestmark = pytest.mark.integration
NAME = "drills"
OUTAGE_BOUND_S = 60.0  # generous: behaviour, not speed (numbers come from bench/failover.py)


@pytest.fixture(scope="module")
def drill_cluster(pgha_home: Path) -> Iterator[Path]:
    run_pgha("up", "--name", NAME, "--base-port", "20432", check=True)
    yield pgha_home / NAME
    run_pgha("down", "--name", NAME, "--purge", timeout=120)


def _drill(*args: str) -> tuple[int, dict[str, object]]:
    result = run_pgha("drill", "--name", NAME, "--json", *args, timeout=600)
    runs = json.loads(result.stdout)
    assert len(runs) == 1, result.stdout + result.stderr
    return result.returncode, runs[0]


def _by_name(run: dict[str, object]) -> dict[str, dict[str, object]]:
    results = run["results"]
    assert isinstance(results, list)
    return {r["name"]: r for r in results}


@pytest.mark.parametrize(("fault", "via"), [("stop", "haproxy"), ("kill", "haproxy"), ("freeze", "haproxy"),
                                            ("stop", "multihost")])
def test_drill_on_the_primary(drill_cluster: Path, fault: str, via: str) -> None:
    # The freeze is held long enough for Prometheus's node-unreachable alert to fire (its 8 s
    # `for:` and the scrapes before it); the others are healed once writes are back.
    rc, run = _drill("--fault", fault, "--via", via, *(("--hold", "20") if fault == "freeze" else ()))
    results = _by_name(run)
    assert rc == 0, results
    outage = results["outage"]["metrics"]
    assert outage["outage_s"] is not None and 0 <= outage["outage_s"] < OUTAGE_BOUND_S
    lost = results["lost_writes"]["metrics"]
    assert lost["lost"] == 0 and lost["acknowledged"] > 20
    assert results["split_brain"]["passed"] and results["split_brain"]["metrics"]["stale_acknowledged"] == 0
    assert results["rejoin"]["passed"]

    run_dir = Path(str(run["run"]))
    for name in ("history.jsonl", "meta.json", "final.json", "results.json", "report.md", "report.html", "plot.png"):
        assert (run_dir / name).exists(), name
    meta = json.loads((run_dir / "meta.json").read_text())
    html = (run_dir / "report.html").read_text()
    assert meta["new_primary"] and meta["new_primary"] in html
    if fault in ("stop", "freeze"):
        assert meta["new_primary"] != meta["old_primary"]
    if fault == "freeze":
        # The fencing guard (default profile) killed the frozen primary and removed its key.
        _assert_fenced(run_dir, meta, outage)
        # Prometheus raised the alert about the lost primary and let it go after the heal; both
        # are on the report's timeline.
        alerts = results["alerts"]
        assert alerts["passed"] and alerts["metrics"]["expected"] == 1, alerts
        assert f"PghaNodeUnreachable fired for {meta['old_primary']}" in str(alerts["summary"]), alerts
        report = (run_dir / "report.md").read_text()
        for state in ("firing", "resolved"):
            assert f"| alert_{state} | PghaNodeUnreachable ({meta['old_primary']}) {state} |" in report
    else:
        assert results["alerts"]["passed"], results["alerts"]
    # pgha's own decisions during the run, copied and on the report's timeline beside Patroni's.
    decisions = (run_dir / "logs" / "pgha.log").read_text()
    assert f"fault: {fault} on {meta['old_primary']}" in decisions and "waiting for writes to recover" in decisions
    timeline = (run_dir / "report.md").read_text()
    assert f"| pgha | pgha | fault: {fault} on {meta['old_primary']} |" in timeline
    if meta["new_primary"] != meta["old_primary"]:
        # Where the seconds went: the default profile pushes routing, so HAProxy's time is pgha's hook's.
        assert "## Where the seconds went" in timeline and "| routing |" in timeline
        assert "pgha's on_role_change hook" in timeline
    assert run_pgha("check", "--name", NAME).returncode == 0


def _assert_fenced(run_dir: Path, meta: dict[str, object], outage: dict[str, object]) -> None:
    """The run's primary was fenced once, and writes came back well within Patroni's ttl (20 s),
    the floor without the guard."""
    final = json.loads((run_dir / "final.json").read_text())
    assert [node for node, _ in final["fences"]] == [meta["old_primary"]], final["fences"]
    assert isinstance(outage["outage_s"], float) and outage["outage_s"] < meta["ttl"] / 2, outage
    report = (run_dir / "report.md").read_text()
    assert "| the primary fenced |" in report and "the fencing guard (fence_after_s 2 s)" in report
    assert f"deleted the leader key of {meta['old_primary']}" in report


def test_a_lost_primary_is_fenced_then_replaced_well_within_the_ttl(drill_cluster: Path) -> None:
    rc, run = _drill("--fault", "node-loss")
    results = _by_name(run)
    assert rc == 0, results
    assert results["lost_writes"]["metrics"]["lost"] == 0 and results["split_brain"]["passed"]
    run_dir = Path(str(run["run"]))
    meta = json.loads((run_dir / "meta.json").read_text())
    _assert_fenced(run_dir, meta, results["outage"]["metrics"])
    # Started again at the heal, the fenced node rejoined as a replica.
    assert results["rejoin"]["passed"] and meta["new_primary"] != meta["old_primary"]
    check = json.loads(run_pgha("check", "--name", NAME, "--json").stdout)
    fencing = next(line for line in check if line["number"] == 10)
    assert fencing["status"] == "PASS" and f"watches {meta['new_primary']}" in fencing["evidence"], fencing


def test_a_stall_shorter_than_the_threshold_is_never_fenced(drill_cluster: Path) -> None:
    rc, run = _drill("--fault", "pause")
    results = _by_name(run)
    assert rc == 0, results
    assert results["not_fenced"]["passed"] and results["not_fenced"]["metrics"]["fences"] == 0
    meta = json.loads((Path(str(run["run"])) / "meta.json").read_text())
    assert meta["new_primary"] == meta["old_primary"]  # nothing happened but a stall
    assert results["outage"]["metrics"]["client_failed"] == 0


@pytest.mark.parametrize("fault", ["switchover", "stop"])
def test_a_planned_hand_over_or_a_graceful_stop_fails_no_write_through_the_pooler(drill_cluster: Path,
                                                                                   fault: str) -> None:
    # switchover: pgha pauses the poolers around Patroni's switchover; stop (SIGTERM to the
    # primary's Patroni): Patroni's before_stop hook pauses them and its watcher resumes them.
    rc, run = _drill("--fault", fault, "--via", "pooler")
    results = _by_name(run)
    assert rc == 0, results
    outage = results["outage"]["metrics"]
    assert outage["client_failed"] == 0 and outage["client_indeterminate"] == 0, results["outage"]
    # They waited instead: some write took longer than a stall, none longer than the bound.
    assert 0.5 < outage["latency_max_s"] < OUTAGE_BOUND_S
    assert results["lost_writes"]["metrics"]["lost"] == 0
    meta = json.loads((Path(str(run["run"])) / "meta.json").read_text())
    assert meta["new_primary"] != meta["old_primary"]
    # Resumed: the pooler takes writes again, and on the new primary.
    cluster = Cluster(NAME)
    with psycopg.connect(cluster.clients.pooler_dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT NOT pg_is_in_recovery()").fetchone() == (True,)
    status = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    assert [(p["answered"], p["waiting"]) for p in status["poolers"]] == [(True, 0)], status["poolers"]
    assert run_pgha("check", "--name", NAME).returncode == 0


def test_a_hand_over_that_cannot_pause_the_pooler_changes_nothing(drill_cluster: Path) -> None:
    cluster = Cluster(NAME)
    before = _roles()
    with psycopg.connect(cluster.clients.pooler_dsn()) as busy:
        # A transaction that runs on: PAUSE waits for it, longer than pooler.pause_timeout_s.
        busy.execute("CREATE TABLE IF NOT EXISTS long_running (x int)")
        busy.commit()
        busy.execute("INSERT INTO long_running VALUES (1)")
        refused = run_pgha("switchover", "--name", NAME, timeout=120)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "did not pause" in refused.stderr and "nothing was changed" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        busy.commit()  # it was never cut off
    assert _roles() == before
    with psycopg.connect(cluster.clients.pooler_dsn(), autocommit=True) as conn:  # resumed
        assert conn.execute("SELECT count(*) >= 1 FROM long_running").fetchone() == (True,)


def test_a_killed_primary_through_the_pooler_loses_no_write(drill_cluster: Path) -> None:
    rc, run = _drill("--fault", "kill", "--via", "pooler")
    results = _by_name(run)
    assert rc == 0, results
    assert results["lost_writes"]["metrics"]["lost"] == 0
    assert results["split_brain"]["passed"]
    outage = results["outage"]["metrics"]
    assert outage["outage_s"] is not None and outage["outage_s"] < OUTAGE_BOUND_S


def test_drills_write_as_the_application_role(drill_cluster: Path) -> None:
    cluster = Cluster(NAME)
    with psycopg.connect(cluster.clients.entrypoint_dsn(), dbname="app", autocommit=True) as conn:
        row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'pgha_drill'").fetchone()
    assert row == ("app",)  # created by the drill's clients, who are not the superuser


def test_a_failing_archive_costs_no_write_and_catches_up(drill_cluster: Path) -> None:
    rc, run = _drill("--fault", "archive-fail")
    results = _by_name(run)
    assert rc == 0, results
    archive = results["archive_caught_up"]
    assert archive["passed"] and "pgbackrest check passed" in str(archive["summary"]), archive
    assert results["outage"]["passed"] and results["lost_writes"]["passed"], results
    assert (drill_cluster / "backup" / "repo").stat().st_mode & 0o777 == 0o750  # writable again


def test_a_dropped_table_comes_back_exactly_as_acknowledged(drill_cluster: Path) -> None:
    rc, run = _drill("--fault", "drop-table")
    results = _by_name(run)
    assert rc == 0, results
    assert list(results) == ["pitr_exact"]
    pitr = results["pitr_exact"]
    metrics = pitr["metrics"]
    assert pitr["passed"] and isinstance(metrics, dict), pitr
    assert metrics["acknowledged_before"] > 0 and metrics["missing"] == 0 and metrics["present_after"] == 0
    # The restored cluster was removed after its rows were read; the drilled one has its table again.
    assert not (drill_cluster.parent / f"{NAME}-pitr").exists()
    clients = Cluster(NAME).clients
    with psycopg.connect(clients.entrypoint_dsn(login=clients.app), connect_timeout=10) as conn:
        row = conn.execute("SELECT to_regclass('pgha_drill')::text").fetchone()
    assert row is not None and row[0] == "pgha_drill"


def test_a_lost_cluster_is_restored_in_place_within_the_archives_bound(drill_cluster: Path) -> None:
    old = {m.name: m.timeline for m in Cluster(NAME).state().members}
    rc, run = _drill("--fault", "disaster")
    results = _by_name(run)
    assert rc == 0, results
    assert list(results) == ["outage", "rpo", "split_brain", "rejoin"]
    rpo = results["rpo"]
    metrics = rpo["metrics"]
    assert isinstance(metrics, dict) and metrics["lost_beyond_bound"] == 0 and metrics["lost_after_fault"] == 0, rpo
    # The writers came back through the entrypoint of the restored cluster: that is the RTO.
    outage = results["outage"]["metrics"]
    assert isinstance(outage, dict) and outage["t_recovered"] is not None, results["outage"]
    # Every node was rebuilt on the restored timeline; none of the lost data directories is left.
    state = Cluster(NAME).state()
    assert state.leader is not None and state.leader.timeline is not None
    assert state.leader.timeline > max(t or 0 for t in old.values())
    assert all(m.timeline == state.leader.timeline for m in state.members), state.members
    assert not list((drill_cluster / "scratch").iterdir())


def test_report_rerenders_the_latest_run(drill_cluster: Path) -> None:
    runs = sorted((drill_cluster / "runs").glob("*"))
    assert runs, "no drill ran before"
    (runs[-1] / "report.html").unlink()
    result = run_pgha("report", "--name", NAME, check=True)
    assert "report.html" in result.stdout
    assert (runs[-1] / "report.html").exists()


def test_bad_drill_input_is_one_line(drill_cluster: Path) -> None:
    for args, message in ((["--fault", "meteor"], "unknown fault"), (["--via", "carrier-pigeon"], "via:"),
                          (["--target", "node9"], "no node named 'node9'"),
                          (["--fault", "isolate"], "needs hosts of their own"),
                          (["--fault", "haproxy-kill", "--target", "haproxy7"], "haproxy-kill takes haproxy")):
        result = run_pgha("drill", "--name", NAME, *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_losing_every_dcs_member_keeps_the_primary_serving_with_failsafe(drill_cluster: Path) -> None:
    rc, run = _drill("--fault", "dcs-down", "--target", "all")
    results = _by_name(run)
    assert rc == 0, results
    # failsafe_mode: the primary reaches every member through the REST API and keeps its role.
    run_dir = Path(str(run["run"]))
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["new_primary"] == meta["old_primary"]
    # Failed twice in about a dozen runs (a ~91 s outage: the primary stopped taking writes until
    # the DCS came back); on failure, say what Patroni and HAProxy logged, so the cause shows.
    story = [f"{datetime.fromtimestamp(line['time'], UTC):%H:%M:%S.%f} {line['component']} {line['kind']}: "
             f"{line['message'][:120]}" for line in json.loads((run_dir / "timeline.json").read_text())
             if line["kind"] in ("failsafe", "demoted", "dcs_error", "backend_down", "backend_up", "no_server",
                                 "error", "race_probe", "lock_acquired", "pg_shutdown")]
    assert results["outage"]["metrics"]["outage_s"] < 5, "\n".join(story[:40])
    assert results["lost_writes"]["metrics"]["lost"] == 0


def _roles() -> dict[str, str]:
    status = json.loads(run_pgha("status", "--name", NAME, "--json").stdout)
    assert status["healthy"], status["problem"]
    return {m["name"]: m["role"] for m in status["members"]}


def test_switchover_hands_over_and_says_what_patroni_refuses(drill_cluster: Path) -> None:
    roles = _roles()
    old = next(n for n, r in roles.items() if r == "leader")
    sync = next(n for n, r in roles.items() if r == "sync_standby")
    result = run_pgha("switchover", "--name", NAME, "--to", sync, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"switched over from {old} to {sync}" in result.stdout
    roles = _roles()
    assert roles[sync] == "leader" and roles[old] in ("replica", "sync_standby")
    # What cannot be done is one line each: the primary itself, no such node, and (synchronous
    # mode) a replica that is not the synchronous standby, in Patroni's own words.
    for target, words in ((sync, "is the primary already"), ("nosuch", "no node named 'nosuch'")):
        refused = run_pgha("switchover", "--name", NAME, "--to", target)
        assert refused.returncode == 2 and words in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    asynchronous = next(n for n, r in _roles().items() if r == "replica")
    refused = run_pgha("switchover", "--name", NAME, "--to", asynchronous)
    assert refused.returncode == 2 and "sync_standby" in refused.stderr, refused.stderr
    assert _roles()[sync] == "leader"
