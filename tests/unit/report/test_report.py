"""Reports: plot, narrative, Markdown/HTML rendering and build_report on a hand-made run directory.

The run: node0 is the primary, is killed at +10 s, writes fail for 3 s, node1 takes over on
timeline 2, node0 is restarted at +18 s, rewinds and streams from node1 from +20 s.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pgha.drill.checkers import run_all
from pgha.drill.history import CheckerResult, Event, FinalState, LogLine, RoleSample, RunInfo
from pgha.report import build_report
from pgha.report.narrative import explain
from pgha.report.plot import clip, draw_run, plot_run, silences
from pgha.report.render import render_html, render_markdown

T0 = datetime(2026, 11, 27, 16, 0, 0, tzinfo=UTC).timestamp()
FAULT, HEAL = 10.0, 18.0
NODES = ["node0", "node1", "node2"]

PRIMARY_TL1 = RoleSample("primary", False, True, 1)
PRIMARY_TL2 = RoleSample("primary", False, True, 2)
REPLICA_TL1 = RoleSample("replica", True, False, 1, True)
REPLICA_TL2 = RoleSample("replica", True, False, 2, True)
DOWN = RoleSample(None, None, False)
STARTING = RoleSample("replica", None, False)


def stamp(t: float, sep: str = ",") -> str:
    """A Patroni-style (sep ",") or PostgreSQL-style (sep ".") UTC stamp for T0 + t."""
    dt = datetime.fromtimestamp(T0 + t, UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f"{sep}{dt.microsecond // 1000:03d}"


def iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, UTC).isoformat()


# ---------------------------------------------------------------- the hand-made run


def role_of(node: str, t: float) -> RoleSample:
    if node == "node0":
        return PRIMARY_TL1 if t < FAULT else DOWN if t < HEAL else STARTING if t < 20 else REPLICA_TL2
    if node == "node1":
        return REPLICA_TL1 if t < 12.8 else PRIMARY_TL2
    return REPLICA_TL1 if t < 13 else REPLICA_TL2


def history() -> list[Event]:
    events: list[Event] = []
    for i in range(290):  # one write every 100 ms from +0.5 s to +29.4 s
        t = 0.5 + i / 10
        events.append(Event(T0 + t, "writer-0", "invoke", "write", i))
        if t < FAULT - 0.05:
            events.append(Event(T0 + t + 0.02, "writer-0", "ok", "write", i, node="node0"))
        elif t < FAULT + 0.05:  # cut off mid-flight: the client cannot know whether it committed
            events.append(Event(T0 + FAULT + 0.5, "writer-0", "info", "write", i, error="connection lost"))
        elif t < 13.0:
            events.append(Event(T0 + t + 0.02, "writer-0", "fail", "write", i, error="connection refused"))
        else:
            events.append(Event(T0 + t + 0.02, "writer-0", "ok", "write", i, node="node1"))
    for k in range(60):  # the monitor polls every node every 500 ms
        t = k / 2
        events += [
            Event(T0 + t + 0.01 * n, "monitor", "info", "role", asdict(role_of(node, t)), node=node)
            for n, node in enumerate(NODES)
        ]
    events += [
        Event(T0 + FAULT, "nemesis", "info", "fault", {"fault": "kill", "target": "node0"}),
        Event(T0 + HEAL, "nemesis", "info", "heal", {"fault": "kill", "target": "node0"}),
    ]
    return sorted(events, key=lambda e: e.time)


def info() -> RunInfo:
    return RunInfo(
        cluster="default", profile="dev", fault="kill", target="node0", via="haproxy", rate=10.0,
        started=T0, ended=T0 + 30, old_primary="node0", new_primary="node1", nodes=NODES,
        ttl=30, loop_wait=10, synchronous_mode=False,
    )


def final(events: list[Event]) -> FinalState:
    # The indeterminate write committed before the kill: it is there, which is allowed.
    acked = sorted({e.value for e in events if e.op == "write" and e.type in ("ok", "info")})
    return FinalState(
        primary="node1", rows=dict.fromkeys(NODES, acked), caught_up=dict.fromkeys(NODES, True),
        timelines=dict.fromkeys(NODES, 2),
    )


LOGS = {
    "node1": "\n".join([
        f"{stamp(5)} INFO: Lock owner: node0; I am node1",
        f"{stamp(6)} INFO: no action. I am (node1), a secondary, and following a leader (node0)",
        f"{stamp(7)} INFO: no action. I am (node1), a secondary, and following a leader (node0)",
        f"{stamp(12.5)} INFO: Lock owner: None; I am node1",
        f"{stamp(12.7)} INFO: promoted self to leader by acquiring session lock",
        f"{stamp(13.5)} INFO: no action. I am (node1), the leader with the lock",
    ]),
    "postgresql-node1": "\n".join([
        f"{stamp(12.75, '.')} UTC [201] LOG:  received promote request",
        f"{stamp(12.76, '.')} UTC [201] LOG:  selected new timeline ID: 2",
        f"{stamp(12.8, '.')} UTC [200] LOG:  database system is ready to accept connections",
    ]),
    "haproxy": "\n".join([
        f"{iso(10.3)} Server primary/node0 is DOWN, reason: Layer4 connection problem, info: \"Connection "
        "refused\", check duration: 0ms. 0 active and 0 backup servers left. 3 sessions active, 0 requeued, "
        "0 remaining in queue.",
        f"{iso(10.3)} proxy primary has no server available!",
        "[WARNING]  (9003) : Server primary/node1 is UP, reason: Layer7 check passed, code: 200, check "
        "duration: 2ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
        f"{iso(13.1)} Server primary/node1 is UP, reason: Layer7 check passed, code: 200, check duration: "
        "2ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
    ]),
    "node0": "\n".join([
        f"{stamp(18.2)} INFO: Using default value thread_stack_size = 524288",
        f"{stamp(18.4)} INFO: starting as a secondary",
        f"{stamp(19.0)} INFO: running pg_rewind from node1",
        f"{stamp(19.5)} ERROR: <script>alert('pwned')</script> | not a cell",
        f"{stamp(20.0)} INFO: no action. I am (node0), a secondary, and following a leader (node1)",
    ]),
    "postgresql-node0": f"{stamp(19.9, '.')} UTC [300] LOG:  started streaming WAL from primary at 0/4000000 "
    "on timeline 2",
    "dcs0": json.dumps({"level": "info", "ts": iso(1.0).replace("+00:00", "Z"), "msg":
                        "raft.node: 7d6a0d7dc7f620ac elected leader 7d6a0d7dc7f620ac at term 2"}),
    # Outside the window (started - 5 s .. ended + 5 s): must not reach the timeline.
    "node2": f"{stamp(-60)} INFO: promoted self to leader by acquiring session lock",
}


def make_run_dir(run_dir: Path, with_results: bool = False) -> Path:
    events = history()
    (run_dir / "history.jsonl").write_text("".join(e.to_json() + "\n" for e in events))
    (run_dir / "meta.json").write_text(json.dumps(asdict(info())))
    (run_dir / "final.json").write_text(json.dumps(asdict(final(events))))
    if with_results:
        results = [CheckerResult("custom", False, "A custom checker the runner ran.", {"x": 1})]
        (run_dir / "results.json").write_text(json.dumps([asdict(r) for r in results]))
    logs = run_dir / "logs"
    logs.mkdir()
    for component, text in LOGS.items():
        (logs / f"{component}.log").write_text(text + "\n")
    return run_dir


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first
    return width, height


# ---------------------------------------------------------------- build_report end to end


def test_build_report_writes_every_file(tmp_path: Path) -> None:
    md, page = build_report(make_run_dir(tmp_path))
    assert (md, page) == (tmp_path / "report.md", tmp_path / "report.html")
    for name in ("timeline.json", "plot.png", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert 1100 <= png_size((tmp_path / "plot.png").read_bytes())[0] <= 1300


def test_build_report_timeline_is_merged_windowed_and_ordered(tmp_path: Path) -> None:
    build_report(make_run_dir(tmp_path))
    lines = [LogLine(**d) for d in json.loads((tmp_path / "timeline.json").read_text())]
    times = [line.time for line in lines]
    assert times == sorted(times)
    assert all(T0 - 5 <= t <= T0 + 35 for t in times)  # node2's line from -60 s is left out
    kinds = {(line.component, line.kind) for line in lines}
    assert {
        ("node1", "lock_free"), ("node1", "lock_acquired"), ("postgresql-node1", "pg_promoted"),
        ("haproxy", "backend_up"), ("node0", "rewind"), ("dcs0", "dcs_leader"), ("nemesis", "fault"),
        ("nemesis", "heal"),
    } <= kinds
    assert not any(line.component == "node2" for line in lines)
    # Components map to nodes: postgresql-node1 -> node1, HAProxy lines name their server.
    assert {line.node for line in lines if line.component == "postgresql-node1"} == {"node1"}
    assert next(line.node for line in lines if line.kind == "backend_up") == "node1"


def test_build_report_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    _, page = build_report(make_run_dir(tmp_path))
    text = page.read_text()
    assert "data:image/png;base64," in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, re.I)
    assert "<link" not in text and "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in text
    assert "New primary: <strong>node1</strong>" in text


def test_build_report_computes_results_when_absent(tmp_path: Path) -> None:
    md, _ = build_report(make_run_dir(tmp_path))
    text = md.read_text()
    for name in ("outage", "lost_writes", "split_brain", "rejoin"):
        assert f"| {name} | PASS |" in text, name
    assert "![writes and roles over time](plot.png)" in text
    assert "**New primary: node1**" in text


def test_build_report_uses_results_json_when_present(tmp_path: Path) -> None:
    md, page = build_report(make_run_dir(tmp_path, with_results=True))
    assert "| custom | FAIL | A custom checker the runner ran. | x=1 |" in md.read_text()
    assert "lost_writes" not in md.read_text()  # the runner's results replace the checkers here
    assert '<span class="verdict fail">FAIL</span>' in page.read_text()


# ---------------------------------------------------------------- plot


def test_plot_run_is_about_1200_by_850(tmp_path: Path) -> None:
    plot_run(history(), info(), tmp_path / "p.png")
    width, height = png_size((tmp_path / "p.png").read_bytes())
    assert abs(width - 1200) <= 50 and abs(height - 850) <= 50


def _watched(events: list[Event]) -> list[Event]:
    """The history as a drill on a cluster with Prometheus records it: an alert and the lag."""
    alert = {"alert": "PghaNodeUnreachable", "labels": {"name": "node0"}, "severity": "critical"}
    return [*events,
            Event(T0 + FAULT + 4, "prometheus", "info", "alert", {**alert, "state": "pending"}, "node0"),
            Event(T0 + FAULT + 14, "prometheus", "info", "alert", {**alert, "state": "firing"}, "node0"),
            Event(T0 + 26, "prometheus", "info", "alert", {**alert, "state": "resolved", "fired": True}, "node0"),
            Event(T0 + 29, "prometheus", "info", "series", {"series": "lag_bytes", "labels": {"name": "node2"},
                                                           "points": [[T0 + t, 1024.0 * t] for t in range(30)]}),
            Event(T0 + 29, "prometheus", "info", "alerts_read", {"active": [], "waited_s": 3.0})]


def test_with_prometheus_the_picture_gains_a_panel_and_the_timeline_its_alerts(tmp_path: Path) -> None:
    plot_run(_watched(history()), info(), tmp_path / "p.png")
    width, height = png_size((tmp_path / "p.png").read_bytes())
    assert abs(width - 1200) <= 50 and abs(height - 1050) <= 50
    run_dir = make_run_dir(tmp_path)
    (run_dir / "history.jsonl").write_text("".join(e.to_json() + "\n" for e in _watched(history())))
    md, _ = build_report(run_dir)
    text = md.read_text()
    for state in ("pending", "firing", "resolved"):
        assert f"| prometheus | alert_{state} | PghaNodeUnreachable (node0) {state} |" in text, state


def _pixels(path: Path) -> Any:
    import matplotlib.image

    return (matplotlib.image.imread(str(path))[:, :, :3] * 255).round().astype(int)


def _count(pixels: Any, colour: str) -> int:
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return int((abs(pixels - rgb).max(axis=2) <= 2).sum())


def test_plot_shows_the_role_bands_writes_and_the_fault_and_heal_markers(tmp_path: Path) -> None:
    from pgha.report.plot import FAIL_COLOUR, FAULT_COLOUR, HEAL_COLOUR, OK_COLOUR, ROLE_COLOURS

    plot_run(history(), info(), tmp_path / "run.png")
    pixels = _pixels(tmp_path / "run.png")
    # Solid areas, not just legend swatches (a swatch is a few hundred pixels).
    for colour in (ROLE_COLOURS["primary"], ROLE_COLOURS["replica"], OK_COLOUR, FAIL_COLOUR):
        assert _count(pixels, colour) > 3000, colour

    import matplotlib.colors
    import matplotlib.pyplot as plt

    fig = draw_run(history(), info())
    try:
        for ax in fig.axes[:2]:  # writes above, roles below: the markers cross both
            markers = {(matplotlib.colors.to_hex(line.get_color()), line.get_linestyle(), line.get_xdata()[0])
                       for line in ax.get_lines() if line.get_linestyle() in ("--", "-.")}
            assert (FAULT_COLOUR, "--", 0.0) in markers  # time 0 is the fault
            assert (HEAL_COLOUR, "-.", HEAL - FAULT) in markers
        roles = fig.axes[1]
        band_colours = {matplotlib.colors.to_hex(c) for coll in roles.collections for c in coll.get_facecolors()}
        assert {ROLE_COLOURS["primary"], ROLE_COLOURS["replica"]} <= band_colours
        labels = [t.get_text() for t in roles.get_yticklabels()]
        assert labels[:2] == ["node0 (faulted)", "node1 (new primary)"]
        # Each completed write's latency, on the lowest panel, green when acknowledged.
        latency = fig.axes[2]
        points = [p for coll in latency.collections for p in coll.get_offsets()]
        assert len(points) == sum(1 for e in history() if e.op == "write" and e.type != "invoke")
        assert latency.get_yscale() == "log" and latency.get_xlabel() == "seconds since the fault"
    finally:
        plt.close(fig)


def test_plot_run_copes_with_an_empty_history(tmp_path: Path) -> None:
    plot_run([], replace(info(), new_primary=None), tmp_path / "empty.png")
    assert png_size((tmp_path / "empty.png").read_bytes())[0] > 0


def test_silences_and_clip_keep_a_hung_node_from_looking_primary() -> None:
    # The monitor saw node0 as primary at 0 and 0.5 s, then nothing until 10 s (its poll hung).
    events = [
        Event(T0 + t, "monitor", "info", "role", asdict(PRIMARY_TL1), node="node0") for t in (0.0, 0.5, 10.0)
    ]
    holes = silences(events, hold_s=1.0)
    assert holes == {"node0": [(T0 + 1.5, T0 + 10.0)]}
    bands = [(T0, T0 + 10.0, "primary")]
    assert clip(bands, holes["node0"]) == [(T0, T0 + 1.5, "primary")]
    assert clip([(0.0, 5.0, "replica"), (5.0, 9.0, "down")], [(1.0, 2.0), (4.0, 6.0)]) == [
        (0.0, 1.0, "replica"), (2.0, 4.0, "replica"), (6.0, 9.0, "down"),
    ]


def test_build_report_without_final_or_results(tmp_path: Path) -> None:
    make_run_dir(tmp_path)
    (tmp_path / "final.json").unlink()
    md, _ = build_report(tmp_path)
    assert "| lost_writes | FAIL | There was no primary to verify the writes against. |" in md.read_text()


# ---------------------------------------------------------------- narrative


def timeline_of(tmp_path: Path) -> list[LogLine]:
    build_report(make_run_dir(tmp_path))
    return [LogLine(**d) for d in json.loads((tmp_path / "timeline.json").read_text())]


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def test_narrative_tells_the_failover_from_the_data(tmp_path: Path) -> None:
    events = history()
    results = run_all(events, final(events), "node0")
    text = explain(info(), results, timeline_of(tmp_path), events)
    assert 4 <= sentences(text) <= 8, text
    assert "At 0 s the drill applied kill to node0, the primary." in text
    assert "node1 took over as the new primary" in text
    assert "Patroni on node1 saw the leader lock free at +2.5 s" in text
    assert "node1 acquired the leader lock at +2.7 s" in text
    assert "promoted onto timeline 2 at +2.8 s" in text
    assert "HAProxy switched its primary backend to it at +3.1 s" in text
    assert "Writes were unavailable for" in text
    assert "Nothing was lost: all" in text
    assert "no split-brain" in text
    assert "After the heal at +8.0 s, node0 ran pg_rewind at +9.0 s" in text
    assert "was back as a replica on timeline 2" in text


def test_narrative_is_honest_when_no_node_took_over() -> None:
    events = [e for e in history() if not (e.node == "node1" and e.process == "monitor")]
    events = [
        e if not (e.op == "write" and e.type == "ok" and e.node == "node1")
        else replace(e, type="fail", node=None) for e in events
    ]
    run = replace(info(), new_primary=None)
    results = run_all(events, final(events), "node0")
    text = explain(run, results, [], events)
    assert "the monitor never saw a new primary" in text
    assert "Writes never recovered after the fault" in text
    assert "took over as the new primary" not in text
    assert 4 <= sentences(text) <= 8, text


def test_narrative_reports_split_brain_and_lost_writes() -> None:
    events = history()
    results = [
        CheckerResult("outage", True, "", {"outage_s": 1.0, "writes_failed": 2, "writes_indeterminate": 0}),
        CheckerResult("lost_writes", False, "Writes went wrong on node1: 3 acknowledged write(s) lost.",
                      {"acknowledged": 10, "lost": 3}),
        CheckerResult("split_brain", False, "", {"window_s": 1.25, "conflicting_writes": 4}),
    ]
    text = explain(info(), results, [], events)
    assert "3 acknowledged write(s) lost" in text
    assert "There was split-brain for 1.25 s in total; 4 pair(s) of acknowledged writes" in text
    assert "the monitor never saw it back" not in text  # no rejoin result and no logs: says so differently
    assert "node0 did not come back" in text


def test_narrative_names_the_split_brain_window_from_the_monitor() -> None:
    # node0 thaws at +20 s still believing it is the primary, next to node1: 1.5 s of two writers.
    thawed = [
        Event(T0 + t, "monitor", "info", "role", asdict(PRIMARY_TL1), node="node0") for t in (20.0, 20.5, 21.0)
    ]
    events = sorted(history() + thawed, key=lambda e: e.time)
    text = explain(info(), run_all(events, final(events), "node0"), [], events)
    assert "There was split-brain for" in text
    assert "node0 and node1 both accepted writes from +10.0 s to +11.5 s" in text  # origin = the fault
    assert "no two acknowledged writes on different nodes overlapped in time" in text


def test_narrative_without_a_heal_says_the_return_was_not_observed() -> None:
    events = [e for e in history() if e.op != "heal"]
    text = explain(info(), run_all(events, final(events), "node0"), [], events)
    assert "node0 was not healed during the run, so its return was not observed." in text


# ---------------------------------------------------------------- rendering


def results_with(passed: bool) -> list[CheckerResult]:
    return [CheckerResult("outage", passed, "Writes were unavailable for 3.00 s.", {"outage_s": 3.0,
            "fault_time": T0 + FAULT})]


EVIL = LogLine(T0 + 11, "node0", "node0", "error", "<script>alert(1)</script> a | b")


def test_render_html_escapes_log_lines_and_narrative() -> None:
    page = render_html(info(), results_with(True), [EVIL], "Fine <b>bold</b> & done.", b"\x89PNG fake")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a | b" in page
    assert "Fine &lt;b&gt;bold&lt;/b&gt; &amp; done." in page
    assert "data:image/png;base64,iVBORyBmYWtl" in page  # the bytes above, inline


def test_render_html_times_are_relative_to_the_fault() -> None:
    page = render_html(info(), results_with(True), [EVIL], "", b"")
    assert '<td class="t">+1.000</td>' in page  # the outage checker's fault_time
    fault = LogLine(T0 + 10.5, "nemesis", "node0", "fault", "fault kill on node0")
    page = render_html(info(), [], [fault, EVIL], "", b"")  # no results: the nemesis line sets zero
    assert '<td class="t">+0.500</td>' in page
    assert "seconds since the fault" in page


def test_render_shows_checker_details() -> None:
    result = replace(results_with(False)[0], details=["first failure: writer-0 id 7 <late>"])
    assert "<li>first failure: writer-0 id 7 &lt;late&gt;</li>" in render_html(info(), [result], [], "", b"")
    md = render_markdown(info(), [result], [], "", "plot.png")
    assert "- outage: first failure: writer-0 id 7 &lt;late&gt;" in md


@pytest.mark.parametrize(("new_primary", "shown"), [("node1", "node1"), (None, "none (no node took over)"),
                                                    ("node0", "node0 (unchanged)")])
def test_render_names_the_new_primary(new_primary: str | None, shown: str) -> None:
    run = replace(info(), new_primary=new_primary)
    assert f"New primary: <strong>{shown}</strong>" in render_html(run, results_with(True), [], "", b"")
    assert f"**New primary: {shown}**" in render_markdown(run, results_with(True), [], "", "plot.png")


def test_render_verdict_table_shows_pass_and_fail() -> None:
    ok = render_html(info(), results_with(True), [], "", b"")
    bad = render_html(info(), results_with(False), [], "", b"")
    assert '<td class="ok">PASS</td>' in ok and '<span class="verdict pass">PASS</span>' in ok
    assert '<td class="bad">FAIL</td>' in bad and '<span class="verdict fail">FAIL</span>' in bad
    assert "outage_s = 3.0" in ok
    assert "fault_time" not in ok  # epoch stamps are not key metrics


def test_render_markdown_escapes_cells() -> None:
    md = render_markdown(info(), results_with(True), [EVIL], "n", "plot.png")
    row = next(line for line in md.splitlines() if "alert" in line)
    assert row == "| +1.000 | node0 | error | &lt;script&gt;alert(1)&lt;/script&gt; a \\| b |"


def test_a_run_without_results_json_is_judged_as_the_drill_would(tmp_path: Path) -> None:
    """The report's fallback verdicts judge a DCS fault by the cluster's health after the heal,
    not by a rejoin of a 'node' named 'all' (which could never pass)."""
    from pgha.drill.checkers import run_all
    from pgha.drill.history import FinalState

    final = FinalState(primary="node0", rows={"node0": []}, caught_up={"node0": True}, timelines={"node0": 1})
    as_node = run_all([], final, "all", target_is_node=True)
    as_dcs = run_all([], final, "all", target_is_node=False)
    assert [r.name for r in as_node] == [r.name for r in as_dcs]  # the same slots, by name
    assert as_node[-1].summary != as_dcs[-1].summary
