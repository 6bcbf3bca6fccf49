"""The lost-writes verdict: every acknowledged write is on the final primary and on every caught-up
replica; nothing is there that was never written or that definitely failed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgha.drill.checkers.views import pair_writes
from pgha.drill.checkers.wording import MAX_DETAILS, Metrics
from pgha.drill.history import CheckerResult, Event, FinalState


def _ids(ids: Iterable[Any]) -> str:
    shown = sorted(ids)
    more = f" (+{len(shown) - MAX_DETAILS} more)" if len(shown) > MAX_DETAILS else ""
    return ", ".join(map(str, shown[:MAX_DETAILS])) + more


def check_lost_writes(events: Iterable[Event], final: FinalState) -> CheckerResult:
    """Every acknowledged write must be on the final primary and on every caught-up replica.

    Also errors: ids on the primary that no one invoked, and ids whose write definitely failed.
    Indeterminate writes ("info", or never completed) may or may not be there; both are fine.
    A caught-up replica missing from final.rows counts as having no rows.
    """
    writes = pair_writes(events)
    acked = {w.id for w in writes if w.result == "ok"}
    failed = {w.id for w in writes if w.result == "fail"} - acked
    indeterminate = {w.id for w in writes if w.result in ("info", None)} - acked
    invoked = {w.id for w in writes}
    metrics: Metrics = {
        "acknowledged": len(acked),
        "failed": len(failed),
        "indeterminate": len(indeterminate),
    }
    if final.primary is None:
        return CheckerResult(
            "lost_writes", False, "There was no primary to verify the writes against.", metrics
        )
    if final.primary not in final.rows:
        return CheckerResult(
            "lost_writes", False, f"No rows were read from the final primary {final.primary}.", metrics
        )

    on_primary = set(final.rows[final.primary])
    lost = acked - on_primary
    unexpected = on_primary - invoked
    failed_but_committed = failed & on_primary
    details: list[str] = []
    if lost:
        details.append(f"lost (acknowledged, absent on {final.primary}): {_ids(lost)}")
    if unexpected:
        details.append(f"unexpected (on {final.primary}, never invoked): {_ids(unexpected)}")
    if failed_but_committed:
        details.append(f"failed but committed (on {final.primary}): {_ids(failed_but_committed)}")

    missing_on_replicas = 0
    for node, caught_up in sorted(final.caught_up.items()):
        if node == final.primary:
            continue
        if not caught_up:
            details.append(f"{node} not checked: it had not caught up")
            continue
        missing = acked - set(final.rows.get(node, []))
        missing_on_replicas += len(missing)
        if missing:
            details.append(f"acknowledged but absent on replica {node}: {_ids(missing)}")

    metrics |= {
        "lost": len(lost),
        "unexpected": len(unexpected),
        "failed_but_committed": len(failed_but_committed),
        "missing_on_replicas": missing_on_replicas,
        "indeterminate_committed": len(indeterminate & on_primary),
        "rows_on_primary": len(on_primary),
    }
    problems = [
        f"{n} {what}"
        for n, what in (
            (len(lost), "acknowledged write(s) lost"),
            (len(unexpected), "row(s) never written"),
            (len(failed_but_committed), "failed write(s) committed"),
            (missing_on_replicas, "acknowledged write(s) missing on replicas"),
        )
        if n
    ]
    if problems:
        summary = f"Writes went wrong on {final.primary}: " + ", ".join(problems) + "."
    else:
        summary = (
            f"All {len(acked)} acknowledged writes are on {final.primary} and on every caught-up "
            f"replica; {metrics['indeterminate_committed']} indeterminate write(s) committed."
        )
    return CheckerResult("lost_writes", not problems, summary, metrics, details)
