"""The WAL archive after a fault on the backup repository: archiving failed while the fault
held, and everything was archived after the heal (`pgbackrest check` passed: the archiver works
through segments in order, so the one it switched last arriving means none before it is missing)."""

from __future__ import annotations

from collections.abc import Sequence

from pgha.drill.history import CheckerResult, Event, FinalState


def _heal_time(events: Sequence[Event]) -> float | None:
    heals = [e.time for e in events if e.process == "nemesis" and e.op == "heal"]
    return heals[-1] if heals else None


def check_archive_caught_up(events: Sequence[Event], final: FinalState, fault_time: float | None) -> CheckerResult:
    name = "archive_caught_up"
    archive = final.archive
    if archive is None:
        return CheckerResult(name, False, "the cluster keeps no backups: nothing was archived to judge")
    failed_at, archived_at = archive.get("last_failed_time"), archive.get("last_archived_time")
    failed_count, check = archive.get("failed_count"), archive.get("check")
    metrics: dict[str, float | int | str | None] = {"failed_count": failed_count, "check": check}
    if not isinstance(failed_at, float | int) or (fault_time is not None and failed_at < fault_time):
        return CheckerResult(name, False, "archiving never failed during the fault: the fault did not take effect",
                             metrics)
    heal = _heal_time(events)
    if heal is not None:
        metrics["failed_before_heal_s"] = round(heal - failed_at, 2) if failed_at <= heal else None
    if check != "passed":
        return CheckerResult(name, False, f"after the heal the archive did not catch up: pgbackrest check: {check}",
                             metrics)
    if not isinstance(archived_at, float | int) or archived_at <= failed_at:
        return CheckerResult(name, False, "after the heal nothing was archived after the last failure", metrics)
    return CheckerResult(name, True, f"archiving failed while the repository was unwritable ({failed_count} failed "
                                     f"attempt(s)) and caught up after the heal: pgbackrest check passed", metrics)
