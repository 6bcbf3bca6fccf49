"""Backups with pgBackRest on a real cluster: the first full backup at `up`, the WAL archive,
`pgha backup`, `pgha backups`, a point-in-time restore into a new cluster beside the source, and
restores in place (the last tests: they replace the source's data)."""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import processes_under, run_pgha

from pgha.cluster import Cluster

pytestmark = pytest.mark.integration

SOURCE, COPY = "bk", "bk-copy"


@pytest.fixture(scope="module")
def source(pgha_home: Path) -> Iterator[Cluster]:
    run_pgha("up", "--name", SOURCE, "--base-port", "22432", check=True, timeout=300)
    yield Cluster(SOURCE)
    for name in (SOURCE, COPY, "bk-never"):
        run_pgha("down", "--name", name, "--purge", timeout=120)


def _write(cluster: Cluster, first: int, last: int) -> None:
    with psycopg.connect(cluster.clients.entrypoint_dsn(), connect_timeout=10, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
        conn.execute("INSERT INTO orders (id) SELECT generate_series(%s::int, %s::int)", (first, last))


def _ids(cluster: Cluster) -> list[int]:
    with psycopg.connect(cluster.clients.entrypoint_dsn(), connect_timeout=10) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]


def _target_between(cluster: Cluster, before: int, after: int) -> tuple[list[int], datetime.datetime]:
    """100 rows from `before`, a target time a second later, 100 rows from `after` a second after
    it; returns the rows at the target and the target."""
    _write(cluster, before, before + 99)
    rows = _ids(cluster)
    time.sleep(1)
    target = datetime.datetime.now(datetime.UTC)
    time.sleep(1)
    _write(cluster, after, after + 99)
    return rows, target


def _backups(name: str) -> dict[str, object]:
    result = run_pgha("backups", "--name", name, "--json", check=True)
    return dict(json.loads(result.stdout))


def test_up_takes_the_first_full_backup_and_archives(source: Cluster) -> None:
    listed = _backups(SOURCE)
    backups = listed["backups"]
    assert isinstance(backups, list) and [b["type"] for b in backups] == ["full"], listed
    assert listed["problem"] is None and listed["earliest_restorable"] is not None
    assert "taking the first full backup" in source.layout.journal.read_text()
    check = json.loads(run_pgha("check", "--name", SOURCE, "--json").stdout)
    line = next(r for r in check if r["number"] == 9)
    assert line["status"] == "PASS" and "pgbackrest check passed" in line["evidence"], line
    # The repository holds the whole database: only the service account may read it.
    assert (source.layout.backup.stat().st_mode & 0o077) == 0


def test_a_differential_backup_builds_on_the_full_one(source: Cluster) -> None:
    _write(source, 1, 10)
    result = run_pgha("backup", "--name", SOURCE, "--type", "diff", check=True, timeout=300)
    assert "(diff) taken" in result.stdout, result.stdout
    backups = _backups(SOURCE)["backups"]
    assert isinstance(backups, list)
    full, diff = backups[0], backups[-1]
    assert diff["type"] == "diff" and diff["prior"] == full["label"]
    bad = run_pgha("backup", "--name", SOURCE, "--type", "weekly")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --type: 'weekly'"), bad.stderr


def test_restore_to_a_time_brings_back_exactly_what_was_committed_before_it(source: Cluster) -> None:
    before, target = _target_between(source, 1001, 2001)  # the rows from 2001 on must not come back
    source_backups = len(_backups(SOURCE)["backups"])  # type: ignore[arg-type]

    result = run_pgha("restore", "--name", SOURCE, "--as", COPY, "--to", target.isoformat(), "--base-port", "22532",
                      timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    copy = Cluster(COPY)
    assert _ids(copy) == before
    assert 2001 not in _ids(copy) and 2001 in _ids(source)
    # The copy is a cluster of its own: promoted to a new timeline that its replicas follow,
    # archiving to its own repository, which already holds its first backup.
    state = copy.state()
    assert state.leader is not None and all(m.timeline == state.leader.timeline for m in state.members)
    assert state.leader.timeline is not None and state.leader.timeline >= 2
    check = json.loads(run_pgha("check", "--name", COPY, "--json").stdout)
    assert [r["status"] for r in check] == ["PASS"] * 10, check  # line 10: the fencing guard armed
    assert copy.layout.backup_repo != source.layout.backup_repo
    assert len(_backups(COPY)["backups"]) == 1  # type: ignore[arg-type]
    # The source's repository was only read.
    assert len(_backups(SOURCE)["backups"]) == source_backups  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "2001-01-01 00:00:00"], "before the earliest restorable time"),
    (["--to", "2999-01-01 00:00:00"], "is in the future"),
    (["--to", "2999-01-01", "--latest"], "exactly one of"),
    (["--to-lsn", "nonsense"], "is not an LSN"),
    (["--as", COPY, "--latest"], f"a cluster named {COPY!r} exists already"),
    (["--as", "../etc", "--latest"], "--as: the new cluster's name must be lowercase letters"),
    (["--latest", "--base-port", "22432"], "is already in use"),  # the source's own ports
])
def test_a_restore_that_cannot_be_done_changes_nothing(source: Cluster, pgha_home: Path, args: list[str],
                                                       message: str) -> None:
    before = sorted(p.name for p in pgha_home.iterdir())
    argv = ["restore", "--name", SOURCE, *args]
    if "--as" not in args:
        argv += ["--as", "bk-never"]
    if "--base-port" not in args:
        argv += ["--base-port", "22632"]
    result = run_pgha(*argv, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert sorted(p.name for p in pgha_home.iterdir()) == before
    assert processes_under(pgha_home / "bk-never") == []


def test_verify_backup_restores_checks_counts_and_removes_its_instance(source: Cluster) -> None:
    # The newest backup holds every row written so far: restored to consistency, it has them all.
    run_pgha("backup", "--name", SOURCE, "--type", "incr", check=True, timeout=300)
    result = run_pgha("verify-backup", "--name", SOURCE, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "no corruption" in out and "the scratch instance is removed" in out, out
    rows = len(_ids(source))
    assert f"public.orders {rows}" in out, out
    assert not list(source.layout.scratch.iterdir())
    assert processes_under(source.layout.scratch) == []
    unknown = run_pgha("verify-backup", "--name", SOURCE, "--set", "20990101-000000F")
    assert unknown.returncode == 2 and "no backup labelled '20990101-000000F'" in unknown.stderr


def _archiver(cluster: Cluster) -> tuple[int, object, object]:
    leader = cluster.state().leader
    assert leader is not None
    with psycopg.connect(cluster.clients.node_target(leader.name).dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")  # something to archive, and the archiver woken
        row = conn.execute("SELECT failed_count, last_failed_time, last_archived_time FROM pg_stat_archiver").fetchone()
    assert row is not None
    return int(row[0]), row[1], row[2]


def _segments(cluster: Cluster) -> dict[str, list[int]]:
    """The WAL segments in the repository, per timeline, as numbers (16 MiB segments)."""
    found: dict[str, set[int]] = {}
    for path in (cluster.layout.backup_repo / "archive" / cluster.name).glob("*/*/*"):
        # A segment is <24 hex digits>-<its SHA-1>; backup labels (.backup) and .history are not.
        m = re.fullmatch(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})-[0-9a-f]{40}(\.\w+)?", path.name)
        if m:
            found.setdefault(m[1], set()).add(int(m[2], 16) * 256 + int(m[3], 16))
    return {tl: sorted(segs) for tl, segs in found.items()}


def test_a_failing_archive_is_reported_and_catches_up_without_a_gap(source: Cluster) -> None:
    backend = source.backups_backend()
    backend.break_archive()
    try:
        _write(source, 5001, 5100)  # the primary keeps acknowledging writes
        deadline = time.monotonic() + 60
        failed, failed_at, archived_at = _archiver(source)
        while not (failed and (archived_at is None or failed_at > archived_at)) and time.monotonic() < deadline:
            time.sleep(1)
            failed, failed_at, archived_at = _archiver(source)
        check = json.loads(run_pgha("check", "--name", SOURCE, "--json").stdout)
        line = next(r for r in check if r["number"] == 9)
        assert line["status"] == "FAIL" and "has failed" in line["evidence"], line
        status = json.loads(run_pgha("status", "--name", SOURCE, "--json").stdout)
        assert "has failed" in str(status["backups"]), status["backups"]
        _write(source, 5101, 5200)
    finally:
        backend.heal_archive()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        failed, failed_at, archived_at = _archiver(source)
        if archived_at is not None and failed_at is not None and archived_at > failed_at:
            break
        time.sleep(1)
    check = json.loads(run_pgha("check", "--name", SOURCE, "--json").stdout)
    line = next(r for r in check if r["number"] == 9)
    assert line["status"] == "PASS", line
    for timeline, segments in _segments(source).items():
        assert segments == list(range(segments[0], segments[-1] + 1)), f"a gap in timeline {timeline}"


def test_a_replica_is_rebuilt_from_the_repository(source: Cluster) -> None:
    run_pgha("backup", "--name", SOURCE, "--type", "incr", check=True, timeout=300)
    _write(source, 7001, 7100)  # after the backup: it reaches the new replica through the archive or streaming
    state = source.state()
    replica = next(m.name for m in state.members if not m.is_leader)
    log = source.backend().log_files()[replica]
    seen = log.read_text().count("replica has been created using pgbackrest")
    seen_any = log.read_text().count("replica has been created using")
    result = run_pgha("ctl", "--name", SOURCE, "reinit", source.spec.patroni_scope, replica, "--force", "--wait",
                      timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # patronictl's --wait can return while Patroni still logs "reinitialize in progress" (seen in CI).
    deadline = time.monotonic() + 180
    while log.read_text().count("replica has been created using") == seen_any and time.monotonic() < deadline:
        time.sleep(0.5)
    assert log.read_text().count("replica has been created using pgbackrest") == seen + 1, log.read_text()[-3000:]
    source.wait_healthy(120)
    with psycopg.connect(source.clients.node_target(replica).dsn, connect_timeout=10) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ids = [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]
            conn.rollback()
            if ids == _ids(source):
                break
            time.sleep(0.5)
    assert ids == _ids(source)


def _timelines(cluster: Cluster) -> dict[str, int | None]:
    return {m.name: m.timeline for m in cluster.state().members}


@pytest.mark.parametrize(("args", "message"), [
    (["--in-place", "--latest"], "add --yes to go ahead"),
    (["--in-place", "--yes", "--latest", "--as", "bk-never"], "--as and --base-port do not apply"),
    (["--yes", "--latest"], "--yes confirms --in-place"),
    (["--in-place", "--yes", "--to", "2001-01-01 00:00:00"], "before the earliest restorable time"),
])
def test_a_restore_in_place_that_is_not_confirmed_or_cannot_be_done_changes_nothing(
        source: Cluster, args: list[str], message: str) -> None:
    before, timelines = _ids(source), _timelines(source)
    result = run_pgha("restore", "--name", SOURCE, *args, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert _ids(source) == before and _timelines(source) == timelines


def test_restore_in_place_replaces_the_data_and_every_node_follows_the_new_timeline(source: Cluster) -> None:
    before, target = _target_between(source, 8001, 9001)  # the rows from 9001 on: gone once restored
    old_timeline = max(t or 0 for t in _timelines(source).values())
    backups_before = len(_backups(SOURCE)["backups"])  # type: ignore[arg-type]

    result = run_pgha("restore", "--name", SOURCE, "--in-place", "--yes", "--to", target.isoformat(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _ids(source) == before
    timelines = _timelines(source)
    assert len(timelines) == 3 and len(set(timelines.values())) == 1, timelines
    assert (next(iter(timelines.values())) or 0) > old_timeline
    check = json.loads(run_pgha("check", "--name", SOURCE, "--json").stdout)
    assert [r["status"] for r in check] == ["PASS"] * 10, check  # line 10: the fencing guard armed
    # The data it replaced is gone, the spec names no restore any more, and the restored
    # timeline has a full backup of its own, in the same repository.
    assert not list(source.layout.scratch.iterdir())
    assert Cluster(SOURCE).spec.restore_from is None
    backups = _backups(SOURCE)["backups"]
    assert isinstance(backups, list) and len(backups) == backups_before + 1 and backups[-1]["type"] == "full"
    _write(source, 9101, 9110)  # and it takes writes
    assert _ids(source)[-1] == 9110


def test_a_restore_in_place_that_fails_puts_the_clusters_own_data_back(source: Cluster) -> None:
    before = _ids(source)
    # Far beyond the end of the archive: recovery ends before it, PostgreSQL refuses to promote.
    result = run_pgha("restore", "--name", SOURCE, "--in-place", "--yes", "--to-lsn", "FFFF/0", timeout=600)
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip()
    assert "the archive ends before LSN FFFF/0" in line and "own data is back in place" in line, line
    source.wait_healthy(120)
    assert _ids(source) == before
    assert not list(source.layout.scratch.iterdir())
    assert Cluster(SOURCE).spec.restore_from is None


def test_a_restore_in_place_whose_dcs_step_fails_puts_the_data_back_and_starts_it(
        source: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgha.cluster import ClusterError
    from pgha.ops import restore as restore_ops

    _write(source, 9501, 9510)
    before = _ids(source)

    def refused(cluster: Cluster) -> None:
        raise ClusterError("could not remove the cluster's keys from the DCS: refused (injected by the test)")

    monkeypatch.setattr(restore_ops, "forget_cluster", refused)
    with pytest.raises(ClusterError, match=r"refused \(injected by the test\); the cluster's own data is back"):
        restore_ops.restore_in_place(Cluster(SOURCE), restore_ops.Target("latest"))
    source.wait_healthy(120)
    assert _ids(source) == before
    assert not list(source.layout.scratch.iterdir())
    assert Cluster(SOURCE).spec.restore_from is None


def test_a_cluster_without_backups_says_so(pgha_home: Path) -> None:
    result = run_pgha("backups", "--name", "nosuch")
    assert result.returncode == 2 and "no cluster named 'nosuch'" in result.stderr
