"""The views of a history the checkers and the report share: paired writes, write rate, role bands."""

from __future__ import annotations

import pytest
from histories import at, role, write

from pgha.drill.checkers import pair_writes, role_intervals, write_rate
from pgha.drill.history import Event


def test_pairing_matches_invoke_and_completion_by_process_and_id() -> None:
    events = (
        write("w0", 1, 0.0, 0.5, "ok") + write("w1", 1, 0.1, 0.2, "fail") + write("w0", 2, 1.0, None, None)
    )
    writes = {(w.process, w.id): w for w in pair_writes(events)}
    assert writes[("w0", 1)].invoke == at(0.0) and writes[("w0", 1)].complete == at(0.5)
    assert writes[("w0", 1)].result == "ok" and writes[("w0", 1)].node == "n1"
    assert writes[("w1", 1)].result == "fail" and writes[("w1", 1)].complete == at(0.2)
    assert writes[("w0", 2)].result is None and writes[("w0", 2)].complete is None


def test_write_rate_buckets_by_completion_time() -> None:
    events = write("w0", 1, 0.0, 0.01, "ok") + write("w0", 2, 0.02, 0.05, "ok")
    events += (
        write("w0", 3, 0.1, 0.35, "fail")
        + write("w1", 4, 0.1, 0.36, "info")
        + write("w0", 5, 0.4, None, None)
    )
    rate = write_rate(events, bucket_s=0.1)
    assert [(ok, bad) for _, ok, bad in rate] == [(2, 0), (0, 0), (0, 0), (0, 2)]
    assert [start for start, _, _ in rate] == pytest.approx([at(0.01), at(0.11), at(0.21), at(0.31)])
    assert write_rate([]) == []


def test_role_intervals_label_and_merge_samples() -> None:
    events = [role("n1", 0.0, primary=True), role("n1", 1.0, primary=True), role("n1", 2.0, down=True)]
    events += [role("n2", 0.0), role("n2", 3.0, primary=True)]
    events.append(
        Event(
            at(3.0),
            "monitor",
            "info",
            "role",
            {"rest_role": "replica", "in_recovery": None, "accepts_writes": False},
            node="n3",
        )
    )
    events.append(Event(at(4.0), "drill", "info", "phase", {"phase": "done"}))
    bands = role_intervals(events)
    assert bands["n1"] == [(at(0.0), at(2.0), "primary"), (at(2.0), at(4.0), "down")]
    assert bands["n2"] == [(at(0.0), at(3.0), "replica"), (at(3.0), at(4.0), "primary")]
    assert bands["n3"] == [(at(3.0), at(4.0), "unknown")]
