"""Backups of a running cluster with pgBackRest: take one, list what the repository holds, and
how the WAL archive keeps up (pg_stat_archiver on the primary)."""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from pgha.cluster import Cluster, ClusterError, journaled
from pgha.errors import first_line
from pgha.model.backup_info import BACKUP_TYPES, Backup, RepoInfo
from pgha.net.probe import ClusterState

log = logging.getLogger(__name__)

ARCHIVER_SQL = ("SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
                "last_failed_time, now() FROM pg_stat_archiver")


@dataclass(frozen=True)
class ArchiveState:
    """pg_stat_archiver on the primary (counts since its statistics were last reset)."""

    node: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime.datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime.datetime | None
    now: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime.datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"node": self.node, "archived_count": self.archived_count, "last_archived_wal": self.last_archived_wal,
                "last_archived_time": iso(self.last_archived_time), "failed_count": self.failed_count,
                "last_failed_wal": self.last_failed_wal, "last_failed_time": iso(self.last_failed_time)}


def archive_problem(state: ArchiveState) -> str | None:
    """Why the archive is failing, or None: its last attempt failed (a failure after the last
    success). An old last success alone says nothing: an idle primary switches no segment.
    `pgbackrest check` proves the rest (a segment switched now arrives in the repository)."""
    if state.last_failed_time is not None and (
            state.last_archived_time is None or state.last_failed_time > state.last_archived_time):
        return f"archiving {state.last_failed_wal} has failed {state.failed_count} time(s), last at " \
               f"{state.last_failed_time:%H:%M:%S} UTC, with no success since"
    if state.last_archived_time is None:
        return None if state.archived_count == 0 else "pg_stat_archiver has no time of the last archived WAL"
    return None


def archive_state(cluster: Cluster, node: str) -> ArchiveState:
    try:
        with cluster.clients.node_target(node).connect(connect_timeout=5, autocommit=True) as conn:
            row = conn.execute(ARCHIVER_SQL).fetchone()
    except psycopg.Error as e:
        raise ClusterError(f"could not read pg_stat_archiver on {node}: {first_line(e)}") from None
    assert row is not None
    return ArchiveState(node, int(row[0]), row[1], row[2], int(row[3]), row[4], row[5], row[6])


def primary_of(cluster: Cluster, state: ClusterState | None = None) -> str:
    state = state or cluster.state()
    if state.leader is None:
        raise ClusterError(f"cluster {cluster.name!r} has no primary now; backups are taken from the primary")
    return state.leader.name


_ARTICLED = {"full": "a full", "diff": "a differential", "incr": "an incremental"}


@journaled
def take_backup(cluster: Cluster, kind: str = "full") -> Backup:
    """One backup of the type asked (a diff or incr needs a full one before it), taken on the
    primary; returns it as the repository lists it."""
    if kind not in BACKUP_TYPES:
        raise ClusterError(f"--type: {kind!r} is not one of {', '.join(BACKUP_TYPES)}")
    primary = primary_of(cluster)
    before = {b.label for b in cluster.repo_info(primary).backups}
    where = "from a standby" if cluster.backs_up_from_standby else f"on the primary {primary}"
    log.info(f"taking {_ARTICLED[kind]} backup {where}")
    began = time.monotonic()
    cluster.backup(primary, kind)
    new = [b for b in cluster.repo_info(primary).backups if b.label not in before]
    if not new:
        raise ClusterError("pgbackrest reported success, but the repository lists no new backup")
    backup = new[-1]
    log.info(f"backup {backup.label} ({backup.type}) is in the repository after {time.monotonic() - began:.1f} s: "
             f"{backup.size / 2**20:.1f} MiB of data, {backup.stored / 2**20:.1f} MiB stored")
    return backup


@dataclass(frozen=True)
class BackupsView:
    repo: RepoInfo
    archive: ArchiveState | None  # None: no primary to ask
    problem: str | None

    def to_json(self) -> dict[str, Any]:
        r = self.repo
        return {
            "stanza": r.stanza,
            "status": r.status,
            "backups": [{"label": b.label, "type": b.type, "started": b.started.isoformat(),
                         "stopped": b.stopped.isoformat(), "size": b.size, "stored": b.stored,
                         "wal_start": b.wal_start, "wal_stop": b.wal_stop, "prior": b.prior} for b in r.backups],
            "wal": {"min": r.wal_min, "max": r.wal_max},
            "earliest_restorable": r.earliest_restorable.isoformat() if r.earliest_restorable else None,
            "archived_until": self.archive.last_archived_time.isoformat()
            if self.archive and self.archive.last_archived_time else None,
            "archive": self.archive.to_json() if self.archive else None,
            "problem": self.problem,
        }


def backups_view(cluster: Cluster) -> BackupsView:
    """What the repository holds, read through any running node, and the archive's state on the
    primary when there is one."""
    state = cluster.state()
    running = [m.name for m in state.members if m.state in ("running", "streaming")] or list(cluster.spec.node_names)
    node = state.leader.name if state.leader else running[0]
    repo = cluster.repo_info(node)
    archive = archive_state(cluster, state.leader.name) if state.leader else None
    problem = archive_problem(archive) if archive else None
    return BackupsView(repo, archive, problem)
