"""Line 10: the guards' reports read into one verdict (pure)."""

from __future__ import annotations

from typing import Any

from pgha.backends.base import GuardReport
from pgha.checks.fencing import fencing_outcome
from pgha.model.spec import build_spec

SPEC = build_spec("default", overrides={"backend": "netns"})


def report(name: str, active: bool, leader: str | None = "node0", running: bool = True, age: float = 0.3,
           **state: Any) -> GuardReport:
    why = "active" if active else "standing by: another guard holds the guards' key"
    return GuardReport(name, running, {"active": active, "armed": active and leader is not None, "why": why,
                                       "leader": leader, "fenced": {}, **state}, age)


def test_one_active_guard_watching_the_primary_passes() -> None:
    out = fencing_outcome(SPEC, [report("guard", True), report("guard1", False)], "node0")
    assert out.status == "PASS" and "watches node0" in out.evidence and "guard1 standing by" in out.evidence


def test_what_keeps_fencing_from_being_armed_fails_the_line() -> None:
    cases = [
        ([report("guard", True, running=False), report("guard1", False)], "guard is not running"),
        ([report("guard", True, age=12.0), report("guard1", False)], "has not reported"),
        ([report("guard", False), report("guard1", False)], "no guard is active"),
        ([report("guard", True), report("guard1", True)], "2 guards say they are active"),
        ([report("guard", True, leader="node1")], "watches node1, but the primary is node0"),
    ]
    for reports, words in cases:
        out = fencing_outcome(SPEC, reports, "node0")
        assert out.status == "FAIL" and words in out.evidence, (words, out)


def test_a_cluster_without_fencing_says_why() -> None:
    seed = fencing_outcome(build_spec("seed"), [], "postgresql0")
    assert seed.status == "SKIP" and "as in the lab" in seed.evidence and "ttl (30 s)" in seed.evidence
    compose = fencing_outcome(build_spec("default", overrides={"backend": "compose"}), [], "node0")
    assert "the compose backend has no fence yet" in compose.evidence
