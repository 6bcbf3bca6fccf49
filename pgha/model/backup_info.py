"""What a pgBackRest repository holds, read from `pgbackrest info --output=json`; pure."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from pgha.errors import PghaError

BACKUP_TYPES = ("full", "diff", "incr")


class BackupInfoError(PghaError):
    """pgBackRest's answer is not what its documented JSON looks like."""


@dataclass(frozen=True)
class Backup:
    label: str
    type: str  # full, diff or incr
    started: datetime.datetime
    stopped: datetime.datetime
    size: int  # the database's size at the backup, in bytes
    stored: int  # what the backup takes in the repository (compressed, only what changed)
    wal_start: str
    wal_stop: str
    prior: str | None  # the backup a diff or incr builds on

    @property
    def seconds(self) -> float:
        return (self.stopped - self.started).total_seconds()


@dataclass(frozen=True)
class RepoInfo:
    stanza: str
    status_code: int  # pgBackRest's: 0 ok, 1 missing stanza path, 2 no valid backups, ...
    status: str
    backups: tuple[Backup, ...]
    wal_min: str | None
    wal_max: str | None

    @property
    def newest(self) -> Backup | None:
        return self.backups[-1] if self.backups else None

    @property
    def earliest_restorable(self) -> datetime.datetime | None:
        """The oldest moment a restore can reach: the end of the oldest backup kept."""
        return self.backups[0].stopped if self.backups else None

    def find(self, label: str) -> Backup | None:
        return next((b for b in self.backups if b.label == label), None)


def _time(value: Any) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(value), tz=datetime.UTC)


def parse_info(text: str, stanza: str) -> RepoInfo:
    """The stanza's entry of pgBackRest's JSON info; raises BackupInfoError on anything else."""
    try:
        data = json.loads(text)
        entry = next(s for s in data if s.get("name") == stanza)
        archive = [a for a in entry.get("archive", []) if a.get("min")]
        backups = tuple(
            Backup(
                label=str(b["label"]),
                type=str(b["type"]),
                started=_time(b["timestamp"]["start"]),
                stopped=_time(b["timestamp"]["stop"]),
                size=int(b["info"]["size"]),
                stored=int(b["info"]["repository"]["delta"]),
                wal_start=str((b.get("archive") or {}).get("start") or ""),
                wal_stop=str((b.get("archive") or {}).get("stop") or ""),
                prior=b.get("prior"),
            )
            for b in entry.get("backup", []) if not b.get("error")
        )
        return RepoInfo(
            stanza=stanza,
            status_code=int(entry["status"]["code"]),
            status=str(entry["status"]["message"]),
            backups=tuple(sorted(backups, key=lambda b: b.stopped)),
            wal_min=str(archive[0]["min"]) if archive else None,
            wal_max=str(archive[-1]["max"]) if archive else None,
        )
    except StopIteration:
        raise BackupInfoError(f"pgBackRest knows no stanza {stanza!r} in this repository") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BackupInfoError(f"pgBackRest's info is not in the expected form ({e.__class__.__name__})") from None
