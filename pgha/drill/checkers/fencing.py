"""Verdict not_fenced: a fault the fencing guards must see through (a stall shorter than their
threshold, a guard cut off from a healthy primary) fenced nothing (pure)."""

from __future__ import annotations

from pgha.drill.history import CheckerResult, FinalState


def check_not_fenced(final: FinalState) -> CheckerResult:
    if final.fences is None:
        return CheckerResult("not_fenced", True, "The cluster has no fencing guard: nothing could be fenced.",
                             {"fences": 0})
    if not final.fences:
        return CheckerResult("not_fenced", True, "No node was fenced: the guards saw through the fault.",
                             {"fences": 0})
    nodes = ", ".join(sorted({node for node, _ in final.fences}))
    return CheckerResult("not_fenced", False, f"The guards fenced {nodes} ({len(final.fences)} fence(s)) although "
                                              "the fault was one they must see through.",
                         {"fences": len(final.fences)}, [f"{node} fenced at {at:.3f}" for node, at in final.fences])
