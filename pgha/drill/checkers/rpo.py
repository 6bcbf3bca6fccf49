"""The recovery point of a disaster: after every node was lost and the cluster was restored from
its repository, which acknowledged writes are gone, each by id and how long before the fault it
was acknowledged. Losing some is what archiving alone promises: a write is safe in the archive
once the WAL segment holding it is archived, which happens when the segment fills or, at the
latest, archive_timeout after the last switch. So the verdict passes when every lost write was
acknowledged less than the bound (archive_timeout plus a margin for the archiver's push) before
the fault, and nothing else went wrong: no write acknowledged after the fault lost, no row that
was never written, no failed write committed, no caught-up replica missing what the primary has."""

from __future__ import annotations

from collections.abc import Sequence

from pgha.drill.checkers.pitr import RESTORED
from pgha.drill.checkers.views import pair_writes
from pgha.drill.checkers.wording import MAX_DETAILS, Metrics, seconds
from pgha.drill.history import CheckerResult, Event, FinalState


def check_rpo(events: Sequence[Event], final: FinalState, fault_time: float | None,
              bound_s: float | None) -> CheckerResult:
    name = "rpo"
    restored = [e for e in events if e.process == "nemesis" and e.op == RESTORED]
    value = restored[-1].value if restored and isinstance(restored[-1].value, dict) else {}
    metrics: Metrics = {"restore_s": value.get("seconds"), "bound_s": bound_s}
    if fault_time is None or not restored:
        return CheckerResult(name, False, "nothing was restored to judge", metrics)
    if "error" in value:
        return CheckerResult(name, False, f"the restore failed: {value['error']}", metrics)
    if final.primary is None or final.primary not in final.rows:
        return CheckerResult(name, False, "no rows were read from a primary after the restore", metrics)
    writes = pair_writes(events)
    on_primary = set(final.rows[final.primary])
    acked = {w.id: w.complete for w in writes if w.result == "ok" and w.complete is not None}
    failed = {w.id for w in writes if w.result == "fail"} - set(acked)
    lost = sorted((t, i) for i, t in acked.items() if i not in on_primary)
    before = [(t, i) for t, i in lost if t < fault_time]
    after = [(t, i) for t, i in lost if t >= fault_time]
    beyond = [(t, i) for t, i in before if bound_s is not None and fault_time - t > bound_s]
    unexpected = sorted(on_primary - {w.id for w in writes})
    committed_failed = sorted(failed & on_primary)
    missing_on_replicas = {node: sorted(set(acked) & on_primary - set(final.rows.get(node, [])))
                           for node, ok in final.caught_up.items() if ok and node != final.primary}
    rpo_s = fault_time - before[0][0] if before else 0.0
    metrics |= {"lost": len(lost), "rpo_s": round(rpo_s, 3), "lost_after_fault": len(after),
                "lost_beyond_bound": len(beyond), "acknowledged": len(acked), "unexpected": len(unexpected),
                "failed_but_committed": len(committed_failed),
                "missing_on_replicas": sum(len(v) for v in missing_on_replicas.values())}
    details = [f"lost: id {i}, acknowledged {fault_time - t:.2f} s before the fault" for t, i in before[:MAX_DETAILS]]
    details += [f"lost: id {i}, acknowledged {t - fault_time:.2f} s after the fault" for t, i in after[:MAX_DETAILS]]
    details += [f"on the primary, never written: {i}" for i in unexpected[:MAX_DETAILS]]
    details += [f"failed, yet committed: {i}" for i in committed_failed[:MAX_DETAILS]]
    details += [f"acknowledged, on the primary, absent on replica {node}: {len(ids)}"
                for node, ids in sorted(missing_on_replicas.items()) if ids]
    problems = [f"{n} {what}" for n, what in (
        (len(beyond), f"acknowledged write(s) lost from more than {seconds(bound_s or 0.0)} before the fault"),
        (len(after), "write(s) acknowledged after the fault lost"),
        (len(unexpected), "row(s) never written"),
        (len(committed_failed), "failed write(s) committed"),
        (int(metrics["missing_on_replicas"] or 0), "acknowledged write(s) missing on replicas")) if n]
    if problems:
        return CheckerResult(name, False, "The restore lost more than the archive allows: " + ", ".join(problems) + ".",
                             metrics, details)
    if not lost:
        summary = f"Restored with every one of the {len(acked)} acknowledged writes (RPO 0)."
    else:
        summary = (f"Restored without the last {seconds(rpo_s)} of writes: {len(lost)} acknowledged write(s) lost, "
                   f"all from the WAL segment not yet archived (bound {seconds(bound_s or 0.0)}).")
    return CheckerResult(name, True, summary, metrics, details)
