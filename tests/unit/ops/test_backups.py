"""What pgha reads from pgBackRest and pg_stat_archiver, and how it checks a restore's target:
pure functions, hand-made inputs."""

from __future__ import annotations

import datetime
import json

import pytest

from pgha.cluster import ClusterError
from pgha.model.backup_info import BackupInfoError, parse_info
from pgha.model.spec import RestoreSource, SpecError, build_spec
from pgha.ops.backups import ArchiveState, archive_problem
from pgha.ops.restore import Target, check_target, parse_target, recovery_failure, restored_spec
from pgha.ops.verify_backup import amcheck_progress

UTC = datetime.UTC
# `pgbackrest info --output=json` of one stanza with one full backup, as pgBackRest 2.45 printed it here.
INFO = [{"archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1", "max": "000000010000000000000006",
                      "min": "000000010000000000000001"}],
         "backup": [{"archive": {"start": "000000010000000000000006", "stop": "000000010000000000000006"},
                     "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1},
                     "error": False, "info": {"delta": 30518138, "repository": {"delta": 6081376, "size": 6081376},
                                              "size": 30518138},
                     "label": "20261207-174033F", "lsn": {"start": "0/6000028", "stop": "0/6000100"}, "prior": None,
                     "reference": None, "timestamp": {"start": 1796665233, "stop": 1796665234}, "type": "full"}],
         "cipher": "aes-256-cbc", "db": [{"id": 1, "repo-key": 1, "system-id": 7716618379828890567, "version": "15"}],
         "name": "bk", "repo": [{"cipher": "aes-256-cbc", "key": 1, "status": {"code": 0, "message": "ok"}}],
         "status": {"code": 0, "lock": {"backup": {"held": False}}, "message": "ok"}}]


def test_the_repository_as_pgbackrest_lists_it() -> None:
    repo = parse_info(json.dumps(INFO), "bk")
    assert repo.status == "ok"
    (backup,) = repo.backups
    assert backup.label == "20261207-174033F"
    assert backup.type == "full"
    assert backup.size == 30518138
    assert backup.stored == 6081376
    assert backup.seconds == 1.0
    assert repo.earliest_restorable == datetime.datetime.fromtimestamp(1796665234, UTC)
    assert (repo.wal_min, repo.wal_max) == ("000000010000000000000001", "000000010000000000000006")
    assert repo.newest == backup


def test_a_failed_backup_is_not_one_to_restore_from() -> None:
    info = json.loads(json.dumps(INFO))
    info[0]["backup"][0]["error"] = True
    assert parse_info(json.dumps(info), "bk").backups == ()


@pytest.mark.parametrize(("text", "message"), [
    (json.dumps(INFO), "knows no stanza 'other'"),
    ("not json", "not in the expected form"),
    (json.dumps([{"name": "other", "status": {}}]), "not in the expected form"),
])
def test_an_unexpected_answer_is_one_line(text: str, message: str) -> None:
    with pytest.raises(BackupInfoError, match=message):
        parse_info(text, "other")


def _archiver(archived: datetime.datetime | None, failed: datetime.datetime | None) -> ArchiveState:
    return ArchiveState("node0", 3 if archived else 0, "000000010000000000000003" if archived else None, archived,
                        2 if failed else 0, "000000010000000000000004" if failed else None, failed,
                        datetime.datetime(2026, 12, 7, 18, 0, tzinfo=UTC))


def test_archiving_fails_when_its_last_attempt_failed() -> None:
    t = datetime.datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
    assert archive_problem(_archiver(t, None)) is None
    assert archive_problem(_archiver(None, None)) is None  # nothing to archive yet
    assert archive_problem(_archiver(t, t - datetime.timedelta(seconds=5))) is None  # failed, then caught up
    problem = archive_problem(_archiver(t, t + datetime.timedelta(seconds=5)))
    assert problem is not None and "000000010000000000000004 has failed 2 time(s)" in problem
    assert archive_problem(_archiver(None, t)) is not None


def test_a_target_is_exactly_one_of_time_lsn_latest() -> None:
    assert parse_target(None, None, True) == Target("latest")
    assert parse_target(None, "0/5000028", False) == Target("lsn", lsn="0/5000028")
    assert parse_target(None, "1a/ff", False) == Target("lsn", lsn="1A/FF")
    when = parse_target("2026-12-07 17:51:34.5", None, False)
    assert when.time == datetime.datetime(2026, 12, 7, 17, 51, 34, 500000, tzinfo=UTC)
    assert when.setting == "2026-12-07 17:51:34.500000+00:00"
    other_zone = parse_target("2026-12-07T19:51:34+02:00", None, False)
    assert other_zone.time == datetime.datetime(2026, 12, 7, 17, 51, 34, tzinfo=UTC)
    # What it renders is what the spec's restore source accepts.
    RestoreSource(cluster="a", repo="/r", target="time", to=other_zone.setting)


@pytest.mark.parametrize(("to", "lsn", "latest", "message"), [
    (None, None, False, "exactly one of"),
    ("2026-12-07", "0/1", False, "exactly one of"),
    ("2026-12-07", None, True, "exactly one of"),
    ("yesterday", None, False, "is not a time"),
    (None, "5000028", False, "is not an LSN"),
    (None, "0/5000028; drop table", False, "is not an LSN"),
])
def test_a_bad_target_is_one_line(to: str | None, lsn: str | None, latest: bool, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_target(to, lsn, latest)


def test_a_target_outside_what_the_repository_reaches_is_refused() -> None:
    repo = parse_info(json.dumps(INFO), "bk")
    end = repo.earliest_restorable
    assert end is not None
    now = end + datetime.timedelta(hours=1)
    check_target(Target("time", time=end + datetime.timedelta(minutes=5)), repo, now)
    check_target(Target("latest"), repo, now)
    with pytest.raises(ClusterError, match="before the earliest restorable time"):
        check_target(Target("time", time=end - datetime.timedelta(seconds=1)), repo, now)
    with pytest.raises(ClusterError, match="in the future"):
        check_target(Target("time", time=now + datetime.timedelta(seconds=1)), repo, now)
    empty = parse_info(json.dumps([{**INFO[0], "backup": []}]), "bk")
    with pytest.raises(ClusterError, match="holds no backup"):
        check_target(Target("latest"), empty, now)


def test_a_restored_cluster_is_its_source_with_new_ports_and_a_restore_source() -> None:
    source = build_spec("default", {"patroni": {"ttl": 25}}, {"name": "shop", "base_port": 12432})
    src = RestoreSource(cluster="shop", repo="/var/lib/pgha/shop/backup/repo", target="latest")
    spec = restored_spec(source, "shop-copy", 12532, src)
    assert spec.name == "shop-copy"
    assert spec.restore_from == src
    assert spec.patroni.ttl == 25
    assert spec.ports.entrypoint_rw == 12532
    assert spec.backup.enabled
    assert spec.model_dump(exclude={"name", "base_port", "ports", "restore_from"}) == \
        source.model_dump(exclude={"name", "base_port", "ports", "restore_from"})


def test_a_failed_recovery_is_explained_in_one_line() -> None:
    target = Target("time", time=datetime.datetime(2026, 12, 7, 17, 0, tzinfo=UTC))
    log = ("LOG:  redo done at 0/9000090\nFATAL:  recovery ended before configured recovery target was reached\n")
    why = recovery_failure(["LOG:  starting point-in-time recovery", log], target)
    assert why is not None and why.startswith("the archive ends before 2026-12-07 17:00:00")
    assert "--latest" in why
    assert recovery_failure(["LOG:  database system is ready to accept connections"], target) is None


def test_what_pg_amcheck_says_it_checked() -> None:
    output = ("0/817 relations (0%),      0/139263 pages (0%)\r"
              "402/817 relations (49%),  70112/139263 pages (50%)\r"
              "817/817 relations (100%), 139263/139263 pages (100%)\n")
    assert amcheck_progress(output) == (817, 139263)
    assert amcheck_progress("") == (0, 0)


def test_pgbackrests_own_error_line_is_the_reason_given() -> None:
    from pgha.backends.base import CommandResult

    warned = CommandResult(56, "", "WARN: unable to check pg2: [DbConnectError] ...\n"
                                    "ERROR: [056]: unable to find standby cluster - cannot proceed\n")
    assert warned.error_line == "ERROR: [056]: unable to find standby cluster - cannot proceed"
    assert CommandResult(1, "", "WARN: only a warning\n").error_line == "WARN: only a warning"
    assert CommandResult(3, "", "").error_line == "exit status 3"


def test_backups_come_from_a_standby_only_where_the_repository_host_reaches_every_node() -> None:
    from pgha.model.spec import build_spec
    from pgha.model.topology import backups_from_standby, topology

    assert backups_from_standby(topology(build_spec("default", overrides={"backend": "netns"})))
    assert not backups_from_standby(topology(build_spec("default", overrides={"backend": "netns", "nodes": 1})))
    assert not backups_from_standby(topology(build_spec("default")))  # local: each node writes the repository
    assert not backups_from_standby(topology(build_spec("default", overrides={"backend": "netns", "tls": False})))
