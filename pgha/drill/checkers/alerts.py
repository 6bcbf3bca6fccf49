"""Verdict alerts: the cluster's Prometheus raised what the fault should raise, and let it go
again (pure).

The drill records, from Prometheus after the load stops, every alert of the cluster that went
pending, fired or resolved during the run (process "prometheus", op "alert"), what it could read
at the end ("alerts_read": still active, or why Prometheus did not answer), and for a fault that
should raise an alert about what it hit, what it expects ("drill" "expect_alert": the alert, the
node/HAProxy/DCS member, how long the fault lasted and how long the alert needs to fire). An
alert is expected only when the fault lasted longer than the alert needs: a failover that a
fencing guard finishes in 3 s is over before a 10 s `for:` could fire, and that is no failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgha.drill.history import CheckerResult, Event

ALERT = "alert"
ALERTS_READ = "alerts_read"
EXPECT_ALERT = "expect_alert"
# A series Prometheus kept over the run (op), and the one the drill records: each replica's lag
# behind the primary's WAL in bytes (value: series, labels, points [[t, v], ...]).
SERIES = "series"
LAG_SERIES = "lag_bytes"


@dataclass(frozen=True)
class AlertChange:
    time: float
    alert: str
    state: str  # pending | firing | resolved
    labels: dict[str, str]
    fired: bool  # (resolved) whether it had fired before


def alert_changes(events: Sequence[Event]) -> list[AlertChange]:
    """The alerts' changes of state the drill recorded, in time order."""
    found = []
    for e in events:
        if e.process != "prometheus" or e.op != ALERT or not isinstance(e.value, dict):
            continue
        v: dict[str, Any] = e.value
        found.append(AlertChange(e.time, str(v.get("alert", "?")), str(v.get("state", "?")),
                                 {str(k): str(x) for k, x in (v.get("labels") or {}).items()}, bool(v.get("fired"))))
    return sorted(found, key=lambda c: c.time)


def series_of(events: Sequence[Event], name: str) -> dict[str, list[tuple[float, float]]]:
    """A recorded series by the node it is about: its (time, value) points."""
    found: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        if e.process == "prometheus" and e.op == SERIES and isinstance(e.value, dict) and e.value.get("series") == name:
            about = str((e.value.get("labels") or {}).get("name", "?"))
            found.setdefault(about, []).extend((float(t), float(v)) for t, v in e.value.get("points") or [])
    return {k: sorted(v) for k, v in found.items()}


def firing_spans(events: Sequence[Event]) -> list[tuple[float, float | None, str]]:
    """(fired, resolved or None, which alert about what) for every alert that fired in the run."""
    spans: list[tuple[float, float | None, str]] = []
    fired: dict[tuple[str, tuple[tuple[str, str], ...]], AlertChange] = {}
    for c in alert_changes(events):
        key = (c.alert, tuple(sorted(c.labels.items())))
        if c.state == "firing":
            fired[key] = c
        elif c.state == "resolved" and key in fired:
            start = fired.pop(key)
            spans.append((start.time, c.time, describe(start).removesuffix(" firing")))
    spans += [(c.time, None, describe(c).removesuffix(" firing")) for c in fired.values()]
    return sorted(spans, key=lambda s: s[0])


def describe(change: AlertChange) -> str:
    """One line for the timeline: which alert, about what, in which state."""
    about = change.labels.get("name") or change.labels.get("haproxy") or change.labels.get("member")
    what = f"{change.alert} ({about})" if about else change.alert
    if change.state == "resolved":
        return f"{what} resolved" if change.fired else f"{what} no longer pending (it never fired)"
    return f"{what} {change.state}"


def check_alerts(events: Sequence[Event]) -> CheckerResult:
    reads = [e for e in events if e.process == "prometheus" and e.op == ALERTS_READ]
    if not reads:
        return CheckerResult("alerts", True, "The cluster's alerts were not read (it runs no Prometheus).", {})
    read: dict[str, Any] = reads[-1].value if isinstance(reads[-1].value, dict) else {}
    if read.get("error"):
        return CheckerResult("alerts", False, f"Prometheus could not be read after the drill: {read['error']}.",
                             {"expected": None, "fired": None})
    changes = alert_changes(events)
    fired = [c for c in changes if c.state == "firing"]
    failures: list[str] = []
    notes: list[str] = []
    latency: float | None = None
    expected = 0
    for e in events:
        if e.process != "drill" or e.op != EXPECT_ALERT or not isinstance(e.value, dict):
            continue
        x: dict[str, Any] = e.value
        alert, label, subject = str(x["alert"]), str(x["label"]), str(x["subject"])
        fault, heal, needs = float(x["fault_time"]), float(x["heal_time"]), float(x["needs_s"])
        held = heal - fault
        hits = [c for c in fired if c.alert == alert and c.labels.get(label) == subject
                and fault <= c.time <= heal + needs]
        if held < needs:
            notes.append(f"the fault on {subject} lasted {held:.1f} s, shorter than the {needs:.0f} s {alert} needs "
                         "to fire: not expected" + (" (it fired all the same)" if hits else ""))
            continue
        expected += 1
        if hits:
            after = hits[0].time - fault
            latency = after if latency is None else min(latency, after)
            notes.append(f"{alert} fired for {subject} {after:.1f} s after the fault")
        else:
            failures.append(f"{alert} did not fire for {subject} although the fault lasted {held:.1f} s "
                            f"(it needs {needs:.0f} s)")
    active = [str(a) for a in read.get("active") or []]
    if active:
        failures.append(f"alerts still active {float(read.get('waited_s') or 0):.0f} s after the load stopped: "
                        f"{', '.join(active)}")
    pending_only = [c for c in changes if c.state == "resolved" and not c.fired]
    metrics: dict[str, float | int | str | None] = {
        "expected": expected, "fired": len(fired), "pending_only": len(pending_only),
        "still_active": len(active), "first_expected_firing_s": None if latency is None else round(latency, 3)}
    details = [*failures, *notes, *(f"{c.time:.3f} {describe(c)}" for c in changes)]
    if failures:
        return CheckerResult("alerts", False, _sentence("; ".join(failures)), metrics, details)
    said = "; ".join(n for n in notes if "fired for" in n) or (
        f"{len(fired)} alert(s) fired and resolved" if fired else "no alert fired")
    resolved = " and every one resolved" if fired else ""
    quiet = f"; {len(pending_only)} went pending only" if pending_only else ""
    return CheckerResult("alerts", True, _sentence(f"{said}{resolved}{quiet}"), metrics, details)


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."
