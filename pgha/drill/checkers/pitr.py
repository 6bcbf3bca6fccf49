"""A point-in-time restore judged against what the writers were told: after the drill's table was
dropped at T, the cluster restored to T must hold every row acknowledged before T and none sent
after T (a row in flight at T, sent before and acknowledged after, may go either way)."""

from __future__ import annotations

from collections.abc import Sequence

from pgha.drill.checkers.views import pair_writes
from pgha.drill.history import CheckerResult, Event

RESTORED = "restored"  # the nemesis's event: {"cluster", "target", "rows", "seconds"} or {"error"}


def check_pitr_exact(events: Sequence[Event], fault_time: float | None) -> CheckerResult:
    name = "pitr_exact"
    restored = [e for e in events if e.process == "nemesis" and e.op == RESTORED]
    if fault_time is None or not restored:
        return CheckerResult(name, False, "nothing was restored to judge")
    value = restored[-1].value if isinstance(restored[-1].value, dict) else {}
    if "rows" not in value:
        return CheckerResult(name, False, f"the restore failed: {value.get('error', 'no rows read')}")
    target = float(value.get("target", fault_time))
    present = {int(i) for i in value["rows"]}
    writes = pair_writes(events)
    acked_before = {int(w.id) for w in writes if w.result == "ok" and w.complete is not None
                    and w.complete < target}
    sent_after = {int(w.id) for w in writes if w.invoke > target}
    in_flight = [w for w in writes if w.invoke <= target and (w.complete is None or w.complete >= target)]
    missing = sorted(acked_before - present)
    extra = sorted(present & sent_after)
    metrics: dict[str, float | int | str | None] = {
        "acknowledged_before": len(acked_before), "missing": len(missing), "sent_after": len(sent_after),
        "present_after": len(extra), "in_flight": len(in_flight), "restore_s": value.get("seconds"),
        "restored_cluster": value.get("cluster")}
    details = [*(f"acknowledged before T, missing: {i}" for i in missing[:20]),
               *(f"sent after T, present: {i}" for i in extra[:20])]
    if missing or extra:
        return CheckerResult(name, False, f"the restore to T is not exact: {len(missing)} row(s) acknowledged before "
                                          f"T missing, {len(extra)} sent after T present", metrics, details)
    return CheckerResult(name, True, f"restored to T in {value.get('seconds', 0):.1f} s: all {len(acked_before)} rows "
                                     f"acknowledged before T, none of the {len(sent_after)} sent after it", metrics)
