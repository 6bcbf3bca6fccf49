"""Point-in-time restore from a cluster's repository: by default a new cluster beside the source,
or, asked for in so many words, the cluster itself in place.

Beside: nothing of the source is touched; its repository is only read, and the new cluster
archives to a repository of its own from its first minute. In place: the nodes stop, their data
directories are moved aside whole, the cluster's keys leave the DCS and the first node bootstraps
from the cluster's own repository; the old data is deleted only once the restored cluster is
healthy, and put back (and started again) when it does not get there. Either way the target is
checked against what the repository can reach before anything is stopped or created.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from typing import Literal

import psycopg

from pgha.backends.base import Backups
from pgha.cluster import Cluster, ClusterError, UpResult
from pgha.errors import BackendError, first_line
from pgha.model.backup_info import RepoInfo
from pgha.model.spec import LSN, RestoreSource, Spec, SpecError, build_spec
from pgha.model.topology import topology
from pgha.ops.patroni_api import request_reload
from pgha.ops.patroni_tools import forget_cluster
from pgha.state.ownership import NotOursError

log = logging.getLogger(__name__)

# The spec's settings a restored cluster takes from its source (the rest is planned anew).
_NOT_INHERITED = {"name", "base_port", "ports", "restore_from", "engine"}


@dataclass(frozen=True)
class Target:
    kind: Literal["time", "lsn", "latest"]
    time: datetime.datetime | None = None
    lsn: str | None = None

    def describe(self) -> str:
        if self.kind == "time" and self.time is not None:
            return f"{self.time:%Y-%m-%d %H:%M:%S.%f} UTC"
        return f"LSN {self.lsn}" if self.kind == "lsn" else "the end of the archive"

    @property
    def setting(self) -> str | None:
        if self.kind == "time" and self.time is not None:
            return self.time.astimezone(datetime.UTC).isoformat(sep=" ")
        return self.lsn


def parse_target(to: str | None, to_lsn: str | None, latest: bool) -> Target:
    """Exactly one of the three; a time without a zone is UTC. Raises SpecError (one line)."""
    given = [x for x in (to is not None, to_lsn is not None, latest) if x]
    if len(given) != 1:
        raise SpecError("restore: give exactly one of --to TIME, --to-lsn LSN, --latest")
    if latest:
        return Target("latest")
    if to_lsn is not None:
        lsn = to_lsn.strip().upper()
        if not LSN.fullmatch(lsn):
            raise SpecError(f"--to-lsn: {to_lsn!r} is not an LSN such as 0/5000028")
        return Target("lsn", lsn=lsn)
    assert to is not None
    try:
        when = datetime.datetime.fromisoformat(to.strip())
    except ValueError:
        raise SpecError(f"--to: {to!r} is not a time such as '2026-12-07 17:41:53' (UTC) or ISO 8601 "
                        f"with a zone") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return Target("time", time=when.astimezone(datetime.UTC))


def check_target(target: Target, repo: RepoInfo, now: datetime.datetime) -> None:
    """Refuse a target the repository cannot reach: before its oldest backup ended, or in the
    future; and any target when it holds no backup."""
    if not repo.backups:
        raise ClusterError(f"the repository of {repo.stanza!r} holds no backup to restore from")
    if target.kind != "time" or target.time is None:
        return
    earliest = repo.earliest_restorable
    assert earliest is not None
    if target.time < earliest:
        raise ClusterError(f"--to: {target.describe()} is before the earliest restorable time, "
                           f"{earliest:%Y-%m-%d %H:%M:%S} UTC (the end of the oldest backup kept)")
    if target.time > now:
        raise ClusterError(f"--to: {target.describe()} is in the future (now is {now:%Y-%m-%d %H:%M:%S} UTC)")


def restored_spec(source: Spec, new_name: str, base_port: int, src: RestoreSource) -> Spec:
    settings = {k: v for k, v in source.model_dump(mode="json").items() if k not in _NOT_INHERITED}
    settings["backup"] = {**settings["backup"], "enabled": True}
    return build_spec(source.profile, settings, {"name": new_name, "base_port": base_port,
                                                 "restore_from": src.model_dump(mode="json"),
                                                 "engine": source.engine})


@dataclass(frozen=True)
class RestoreResult:
    name: str
    target: Target
    up: UpResult
    seconds: float


def restore(source: Cluster, new: Cluster, target: Target, base_port: int | None = None) -> RestoreResult:
    """A new cluster `new` from `source`'s repository, recovered to `target`."""
    began = time.monotonic()
    if new.exists or new.layout.root.exists():
        raise ClusterError(f"a cluster named {new.name!r} exists already; pick another --as")
    spec = source.spec
    if not spec.backup.enabled:
        raise ClusterError(f"cluster {source.name!r} keeps no backups (backup.enabled is off in its spec)")
    if not source.layout.backup_repo.is_dir():
        raise ClusterError(f"the repository of {source.name!r} is missing ({source.layout.backup_repo})")
    node = spec.node_names[0]
    repo = source.repo_info(node)
    now = datetime.datetime.now(datetime.UTC)
    check_target(target, repo, now)
    with source.journal():
        _archive_now(source)
    src = RestoreSource(cluster=source.name, repo=str(source.layout.backup_repo), target=target.kind,
                        to=target.setting)
    new_spec = restored_spec(spec, new.name, base_port if base_port is not None else spec.base_port + 100, src)
    try:
        result = new.up(new_spec, secrets=source.secrets)
    except ClusterError as e:
        if not new.exists:  # refused before anything was created (a taken port, ...)
            raise
        # Stopped by up; kept for its logs, which say why (nothing of the source is in danger).
        why = recovery_failure(_postgres_logs(new), target) or str(e)
        raise ClusterError(f"{why}; the restored cluster {new.name!r} is stopped and kept for its logs "
                           f"(`pgha down --name {new.name} --purge` removes it)", e.log_tail) from None
    with new.journal():
        log.info(f"restored from {source.name!r}'s repository to {target.describe()} in "
                 f"{time.monotonic() - began:.1f} s")
    return RestoreResult(new.name, target, result, time.monotonic() - began)


# Where a restore in place keeps a node's data directories: <cluster>/scratch/<what>-<node>.
REPLACED = "replaced"  # the data it replaces, until the restored cluster is healthy
UNRESTORED = "unrestored"  # a failed restore's data, moved aside before the old data goes back


def restore_in_place(cluster: Cluster, target: Target) -> RestoreResult:
    """Replace the cluster's data with its own repository's, recovered to `target` (a new timeline
    in the same repository). The old data directories are deleted only once the restored cluster
    is healthy."""
    began = time.monotonic()
    spec = cluster.spec
    backend = cluster.backups_backend()
    if not cluster.layout.backup_repo.is_dir():
        raise ClusterError(f"the repository of {cluster.name!r} is missing ({cluster.layout.backup_repo})")
    check_target(target, cluster.repo_info(spec.node_names[0]), datetime.datetime.now(datetime.UTC))
    nodes = list(spec.node_names)
    with cluster.journal():
        _archive_now(cluster)
        log.info(f"restoring {cluster.name!r} in place to {target.describe()}: its nodes stop and their data "
                 f"directories are kept aside until the restored cluster is healthy")
        try:
            kept = _stop_and_set_aside(cluster, backend, nodes)
        except ClusterError as e:
            cluster.up(None)  # on the data it had: nothing was moved, or it was moved back
            raise ClusterError(f"{e}; the cluster runs on its own data again") from None
        try:
            forget_cluster(cluster)
            log.info(f"removed {cluster.name!r}'s keys from the DCS: its first node bootstraps from the repository")
        except ClusterError as e:
            back = _put_back(cluster, spec, kept, keys_removed=False)
            raise ClusterError(f"{e}; {back}") from None
        src = RestoreSource(cluster=cluster.name, repo=str(cluster.layout.backup_repo), target=target.kind,
                            to=target.setting)
        cluster.replace_spec(spec.model_copy(update={"restore_from": src}))
    try:
        result = cluster.up(None)
    except (ClusterError, KeyboardInterrupt) as e:
        why = recovery_failure(_postgres_logs(cluster), target) or first_line(e)
        with cluster.journal():
            log.warning(f"the restore in place failed ({why}): putting the cluster's own data back")
            back = _put_back(cluster, spec, kept)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise ClusterError(f"{why}; {back}", e.log_tail if isinstance(e, ClusterError) else None) from None
    with cluster.journal():
        cluster.replace_spec(spec)
        _render_without_restore(cluster)
        for node in kept:
            cluster.backups_backend().remove_set_aside(f"{REPLACED}-{node}")
        log.info(f"restored {cluster.name!r} in place to {target.describe()} in {time.monotonic() - began:.1f} s; "
                 f"the data it replaced is deleted")
        _backup_restored_timeline(cluster, result)
    return RestoreResult(cluster.name, target, result, time.monotonic() - began)


def _stop_and_set_aside(cluster: Cluster, backend: Backups, nodes: list[str]) -> list[str]:
    """Stop the nodes and move their data aside; returns the nodes that had data."""
    try:
        # The fencing guards with them (first): nodes stopped on purpose are not to be fenced;
        # `up` starts the guards again.
        cluster.backend().stop_components([*(g.name for g in topology(cluster.spec).guards), *nodes])
        running = [c.name for c in cluster.backend().components() if c.name in nodes and c.pids]
        if running:
            raise ClusterError(f"could not stop {', '.join(running)}: nothing of its data was moved")
        kept: list[str] = []
        for node in nodes:
            if backend.set_aside_data(node, f"{REPLACED}-{node}"):
                kept.append(node)
    except (BackendError, NotOursError) as e:
        for node in kept:
            backend.put_back_data(node, f"{REPLACED}-{node}")
        raise ClusterError(str(e)) from None
    log.info(f"stopped {', '.join(nodes)}; data directories kept aside: {', '.join(kept) or 'none (all lost)'}")
    return kept


def _put_back(cluster: Cluster, spec: Spec, kept: list[str], keys_removed: bool = True) -> str:
    """Undo a restore in place: the restore's data out, the kept data back, the original spec, and
    the cluster started on its own data again (only if any was kept: with none, its nodes would
    bootstrap an empty cluster); `keys_removed`: the restore's keys leave the DCS first (Patroni
    takes them anew from the data). Returns what the operator should know."""
    try:
        cluster.replace_spec(spec)
        backend = cluster.backups_backend()
        nodes = list(spec.node_names)
        cluster.backend().stop_components([*(g.name for g in topology(spec).guards), *nodes])
        for node in nodes:
            if backend.set_aside_data(node, f"{UNRESTORED}-{node}"):
                backend.remove_set_aside(f"{UNRESTORED}-{node}")
        for node in kept:
            backend.put_back_data(node, f"{REPLACED}-{node}")
        if not kept:
            return (f"the cluster had no data left to put back, so its nodes stay stopped (`pgha restore --name "
                    f"{cluster.name} --in-place --yes` with another target tries again)")
        if keys_removed:
            forget_cluster(cluster)
        cluster.up(None)
    except (ClusterError, BackendError, NotOursError) as e:
        where = ", ".join(str(cluster.layout.scratch / f"{REPLACED}-{n}") for n in kept)
        return f"and putting its own data back failed too ({first_line(e)}); what was kept is in {where or 'nothing'}"
    log.info(f"{cluster.name!r} runs on its own data again")
    return "the cluster's own data is back in place and it runs on it again"


def _render_without_restore(cluster: Cluster) -> None:
    """The nodes' configuration files rendered from the spec without its restore (new replicas
    from the repository again, no bootstrap from it), and Patroni told to read them."""
    try:
        cluster.backend().start()  # every component runs: this only writes the files again
        for node in cluster.spec.node_names:
            request_reload(cluster.reach, cluster.secrets.rest_password, node)
    except BackendError as e:
        log.warning(f"the restored cluster runs, but its configuration files still name the restore: {e} "
                    f"(`pgha down` and `pgha up` render them again)")


def _backup_restored_timeline(cluster: Cluster, result: UpResult) -> None:
    """A full backup of the restored timeline: the next replica and the next restore start from it."""
    primary = result.state.leader.name if result.state.leader else None
    if primary is None:
        return
    try:
        cluster.backup(primary)
        log.info(f"took a full backup of the restored timeline from {primary}")
    except ClusterError as e:
        log.warning(f"the restored cluster runs, but its first backup failed: {e} (`pgha backup` tries again)")


# PostgreSQL's own words when recovery cannot reach its target, and what they mean for a restore.
_RECOVERY_FAILURES = (
    ("recovery ended before configured recovery target was reached",
     "the archive ends before {target}: no transaction committed after it was archived "
     "(restore with --latest, or to an earlier time)"),
    ("requested timeline", "the archive holds no timeline that reaches {target}"),
    ("could not locate required checkpoint record", "the backup's WAL is missing from the archive"),
)


def recovery_failure(logs: list[str], target: Target) -> str | None:
    """Why recovery stopped, from the new cluster's PostgreSQL logs; None if they do not say."""
    for text in logs:
        for words, meaning in _RECOVERY_FAILURES:
            if words in text:
                return meaning.format(target=target.describe())
    return None


def _postgres_logs(cluster: Cluster) -> list[str]:
    texts = []
    for name, path in cluster.backend().log_files().items():
        if name.startswith("postgresql-") and path.is_file():
            texts.append(path.read_text(errors="replace"))
    return texts


def _archive_now(source: Cluster) -> None:
    """With the source running, commit a transaction (recovery to a time stops only at a commit
    after it, so a target up to now needs one) and switch and archive the WAL segment that holds
    it; a source that is down has archived what it could."""
    state = source.state()
    if state.leader is None:
        log.info(f"{source.name!r} has no primary now: restoring from what its archive holds")
        return
    try:
        with source.clients.node_target(state.leader.name).connect(connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT pg_current_xact_id()")  # an xid, so its commit is written with a time
        source.pgbackrest(state.leader.name, ["check"])
        log.info(f"{state.leader.name} switched its WAL segment and it is archived: a restore reaches up to now")
    except (ClusterError, psycopg.Error) as e:
        log.warning(f"could not archive the current WAL of {source.name!r} before a restore: {e}")
