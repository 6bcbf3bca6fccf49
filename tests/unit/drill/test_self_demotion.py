"""The self-demotion verdict of a primary cut off from the DCS."""

from __future__ import annotations

from histories import at, fault, heal, role, steps

from pgha.drill.checkers import check_self_demotion
from pgha.drill.history import Event


def _cut_off(demote_at: float | None, heal_at: float = 40.0) -> list[Event]:
    events = [role("n1", t, primary=True) for t in steps(-2, 0, 0.5)] + [fault(0.0, "n1", "isolate")]
    for t in steps(0.25, heal_at, 0.5):
        writable = demote_at is None or t < demote_at
        events.append(role("n1", t, primary=writable, down=not writable))
    return [*events, heal(heal_at, "n1", "isolate")]


def test_self_demotion_within_ttl_passes_and_reports_when() -> None:
    r = check_self_demotion(_cut_off(11.0), "n1", at(0.0), 20)
    assert r.passed and 11.0 <= r.metrics["demoted_after_s"] <= 11.5


def test_self_demotion_beyond_ttl_fails() -> None:
    r = check_self_demotion(_cut_off(25.0), "n1", at(0.0), 20)
    assert not r.passed and r.metrics["demoted_after_s"] >= 25.0


def test_a_primary_that_keeps_accepting_writes_while_cut_off_fails() -> None:
    r = check_self_demotion(_cut_off(None), "n1", at(0.0), 20)
    assert not r.passed and r.metrics["demoted_after_s"] is None


def test_a_blip_of_no_answer_is_not_a_demotion() -> None:
    events = _cut_off(15.0)
    # One lost sample at 5 s while the node was still writable: the later writable samples win.
    events = [e for e in events if not (e.process == "monitor" and abs(e.time - at(5.25)) < 1e-6)]
    events.append(role("n1", 5.25, down=True))
    r = check_self_demotion(events, "n1", at(0.0), 20)
    assert r.passed and r.metrics["demoted_after_s"] >= 15.0
