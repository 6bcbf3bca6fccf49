"""Line 9 of `pgha check`: the WAL archive works and the repository holds a backup to restore."""

from __future__ import annotations

import datetime

from pgha.checks.result import Outcome
from pgha.cluster import Cluster, ClusterError
from pgha.net.probe import ClusterState
from pgha.ops.backups import archive_problem, archive_state


def check_backups(cluster: Cluster, state: ClusterState) -> Outcome:
    name = "WAL is archived to the backup repository, which holds a backup"
    spec = cluster.spec
    if not spec.backup.enabled:
        why = "as the lab" if spec.profile == "seed" else "backup.enabled is off"
        return Outcome(name, "SKIP", f"the cluster keeps no backups ({why})")
    if state.leader is None:
        return Outcome(name, "FAIL", "no primary to archive from")
    primary = state.leader.name
    try:
        archive = archive_state(cluster, primary)
        problem = archive_problem(archive)
        if problem:
            return Outcome(name, "FAIL", f"on {primary}: {problem}")
        # Switches a segment and waits for it in the repository: the archive works end to end.
        cluster.pgbackrest(primary, ["check"])
        repo = cluster.repo_info(primary)
    except ClusterError as e:
        return Outcome(name, "FAIL", str(e))
    newest = repo.newest
    if newest is None:
        return Outcome(name, "FAIL", f"archiving works, but the repository holds no backup "
                                     f"(`pgha backup --name {cluster.name}`)")
    age = datetime.datetime.now(datetime.UTC) - newest.stopped
    return Outcome(name, "PASS", f"pgbackrest check passed on {primary} ({archive.archived_count} segment(s) "
                                 f"archived, none failing); newest backup {newest.label} ({newest.type}, "
                                 f"{_age(age)} old, {newest.size / 2**20:.0f} MiB); "
                                 f"restorable from {repo.earliest_restorable:%Y-%m-%d %H:%M:%S} UTC")


def _age(delta: datetime.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
