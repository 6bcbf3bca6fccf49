"""Point-in-time restore: a new cluster beside the source, made from the source's repository.

Nothing of the source is touched: its repository is only read, and the new cluster archives to
a repository of its own from its first minute. The target is checked against what the repository
can reach before anything is created.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from typing import Literal

import psycopg

from pgha.cluster import Cluster, ClusterError, UpResult
from pgha.model.backup_info import RepoInfo
from pgha.model.spec import LSN, RestoreSource, Spec, SpecError, build_spec

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
