"""One picture of a drill run: writes per 100 ms above, each node's role, each write's latency,
and (when the cluster runs Prometheus) each replica's lag and the alerts that fired, on one
time axis.

Time is seconds since the fault (the first nemesis "fault" event), or since the run started when
there was none, so the picture reads "what happened N seconds after the primary was cut off".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: reports are rendered by the drill runner, often over ssh

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pgha.drill.checkers import observations, pair_writes, role_intervals, split_brain_windows, write_rate
from pgha.drill.checkers.alerts import LAG_SERIES, firing_spans, series_of
from pgha.drill.history import Event, RunInfo
from pgha.report.clock import nemesis_times, origin_of

Band = tuple[float, float, str]  # (start, end, role label), as checkers.role_intervals gives them

BUCKET_S = 0.1
SMOOTH_BUCKETS = 10  # the 1 s average drawn over the 100 ms steps
SAMPLE_HOLD_S = 1.0  # as the split-brain checker: a sample says nothing about the node after this
SIZE_IN = (12.0, 8.5)
DPI = 100  # SIZE_IN * DPI = 1200 x 850 px
LATENCY_FLOOR_S = 1e-3  # the log scale needs a floor; nothing answers faster on a real cluster

ROLE_COLOURS = {
    "primary": "#1f77b4",
    "replica": "#aec7e8",
    "down": "#8c8c8c",
    "unknown": "#ffbb78",
}
NO_SAMPLE_COLOUR = "#999999"
OK_COLOUR = "#98d98e"
OK_LINE = "#1a7a1a"
FAIL_COLOUR = "#f08080"
FAIL_LINE = "#b01010"
SPLIT_BRAIN_COLOUR = "#ff0000"
FAULT_COLOUR = "#000000"
HEAL_COLOUR = "#9467bd"
ALERT_COLOUR = "#ff7f0e"


def _title(info: RunInfo) -> str:
    new = info.new_primary or "none seen"
    if info.new_primary is not None and info.new_primary == info.old_primary:
        new += " (unchanged)"
    return (
        f"{info.cluster} ({info.profile}): {info.fault} on {info.target}, via {info.via}"
        f"  -  old primary {info.old_primary or '?'}, new primary {new}"
    )


def _node_label(node: str, info: RunInfo) -> str:
    tags = [
        tag
        for tag, applies in (
            ("faulted", node == info.target),
            ("new primary", node == info.new_primary and node != info.old_primary),
        )
        if applies
    ]
    return f"{node} ({', '.join(tags)})" if tags else node


def _moving_average(values: Sequence[int], width: int) -> list[float]:
    """Centred mean over `width` buckets (fewer at the edges)."""
    half = width // 2
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out


def _draw_writes(ax: Axes, events: Sequence[Event], origin: float) -> None:
    rate = write_rate(events, BUCKET_S)
    if not rate:
        ax.text(0.5, 0.5, "no writes in the history", transform=ax.transAxes, ha="center", va="center")
        ax.set_ylabel(f"writes per {BUCKET_S * 1000:.0f} ms")
        return
    # Filled steps, not bars: hundreds of 100 ms bars alias into stripes at this width.
    xs = [t - origin for t, _, _ in rate]
    xs.append(xs[-1] + BUCKET_S)
    oks = [ok for _, ok, _ in rate]
    totals = [ok + bad for _, ok, bad in rate]
    oks.append(oks[-1])
    totals.append(totals[-1])
    ax.fill_between(xs, 0, oks, step="post", color=OK_COLOUR, linewidth=0)
    ax.fill_between(xs, oks, totals, step="post", color=FAIL_COLOUR, linewidth=0)
    # At a few writes per bucket the raw steps flicker between 0, 1 and 2; a 1 s average on top
    # shows the trend, the steps underneath keep the exact moment writes stopped.
    mids = [x + BUCKET_S / 2 for x in xs[:-1]]
    ax.plot(mids, _moving_average(oks[:-1], SMOOTH_BUCKETS), color=OK_LINE, linewidth=1.6)
    fails = [total - ok for ok, total in zip(oks[:-1], totals[:-1], strict=True)]
    if any(fails):
        # NaN leaves gaps: no red line along the axis while nothing fails.
        smooth = [v if v > 0 else float("nan") for v in _moving_average(fails, SMOOTH_BUCKETS)]
        ax.plot(mids, smooth, color=FAIL_LINE, linewidth=1.6)
    # One burst (HAProxy refusing everything at once) must not flatten the rest of the run: the
    # scale follows the 99th percentile and a clipped peak is labelled with its value.
    ranked = sorted(totals)
    top = max(ranked[int(0.99 * (len(ranked) - 1))] * 1.6, 3.0)
    peak = max(totals)
    if peak > top:
        at = xs[totals.index(peak)]
        ax.annotate(f"{peak} \u2191", (at, top), xytext=(3, -12), textcoords="offset points", fontsize=8,
                    color=FAIL_LINE)
    else:
        top = peak * 1.15 + 0.5
    ax.set_ylim(0, top)
    ax.set_ylabel(f"writes per {BUCKET_S * 1000:.0f} ms")
    ax.grid(axis="y", alpha=0.3)


def _draw_latency(ax: Axes, events: Sequence[Event], origin: float) -> None:
    """Each write at the moment it was called, as high as its answer took (log scale): what a
    client felt. Acknowledged ones green, failed or unknown ones red."""
    writes = [w for w in pair_writes(events) if w.complete is not None]
    ok = [(w.invoke - origin, max(w.complete - w.invoke, LATENCY_FLOOR_S)) for w in writes  # type: ignore[operator]
          if w.result == "ok"]
    bad = [(w.invoke - origin, max(w.complete - w.invoke, LATENCY_FLOOR_S)) for w in writes  # type: ignore[operator]
           if w.result != "ok"]
    for points, colour, marker in ((ok, OK_LINE, "."), (bad, FAIL_LINE, "x")):
        if points:
            ax.scatter([x for x, _ in points], [y for _, y in points], s=9, color=colour, marker=marker,
                       linewidths=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("write latency (s)")
    ax.grid(axis="y", alpha=0.3, which="major")


def silences(events: Sequence[Event], hold_s: float = SAMPLE_HOLD_S) -> dict[str, list[tuple[float, float]]]:
    """node -> stretches the monitor has no sample for: from hold_s after a sample to the next one.

    role_intervals holds a sample until the next, which over a hung node (frozen, partitioned,
    the monitor's poll blocked) would paint its last role across the whole fault.
    """
    times: dict[str, list[float]] = {}
    for o in observations(events):
        times.setdefault(o.node, []).append(o.time)
    return {
        node: [(a + hold_s, b) for a, b in pairwise(ts) if b - a > hold_s]
        for node, ts in times.items()
    }


def clip(bands: Sequence[Band], holes: Sequence[tuple[float, float]]) -> list[Band]:
    """The bands minus the holes (both sorted, holes disjoint)."""
    out: list[Band] = []
    for start, end, label in bands:
        cursor = start
        for h_start, h_end in holes:
            if h_end <= cursor or h_start >= end:
                continue
            if h_start > cursor:
                out.append((cursor, h_start, label))
            cursor = max(cursor, h_end)
        if cursor < end:
            out.append((cursor, end, label))
    return out


def _draw_roles(ax: Axes, events: Sequence[Event], info: RunInfo, origin: float) -> None:
    gaps = silences(events)
    bands = {node: clip(b, gaps.get(node, [])) for node, b in role_intervals(events).items()}
    # The run's node list first (stable order across reports), then anything else the monitor saw.
    nodes = [n for n in info.nodes if n in bands] + sorted(n for n in bands if n not in info.nodes)
    for row, node in enumerate(nodes):
        for label, colour in ROLE_COLOURS.items():
            spans = [(s - origin, e - s) for s, e, lab in bands[node] if lab == label]
            if spans:
                ax.broken_barh(spans, (row - 0.35, 0.7), facecolors=colour, linewidth=0)
        quiet = [(s - origin, e - s) for s, e in gaps.get(node, [])]
        if quiet:
            ax.broken_barh(
                quiet, (row - 0.35, 0.7), facecolors="white", edgecolors=NO_SAMPLE_COLOUR, hatch="///",
                linewidth=0.5,
            )
    ax.set_yticks(range(len(nodes)), [_node_label(n, info) for n in nodes])
    ax.set_ylim(-0.6, max(len(nodes), 1) - 0.4)
    ax.invert_yaxis()  # node0 on top, like every other listing of the cluster
    if not nodes:
        ax.text(0.5, 0.5, "the monitor recorded no roles", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("seconds since the fault" if nemesis_times(events, "fault") else "seconds since the run started")


def _draw_prometheus(ax: Axes, events: Sequence[Event], origin: float) -> None:
    """What the cluster's Prometheus saw: each replica's lag, and the alerts that fired."""
    highest = 0.0
    for node, points in sorted(series_of(events, LAG_SERIES).items()):
        kib = [v / 1024 for _, v in points]
        ax.plot([t - origin for t, _ in points], kib, linewidth=1.2, label=node)
        highest = max(highest, *kib)
    ax.set_ylabel("replica lag\n(KiB, Prometheus)")
    ax.set_ylim(0, max(1.0, highest * 1.15))  # the shared time axis's spans would stretch it otherwise
    ax.grid(axis="y", alpha=0.3)
    for k, (fired, resolved, what) in enumerate(firing_spans(events)):
        end = resolved if resolved is not None else max((e.time for e in events), default=fired)
        ax.axvspan(fired - origin, end - origin, color=ALERT_COLOUR, alpha=0.15, linewidth=0)
        ax.annotate(what, (fired - origin, 0.95 - 0.12 * (k % 4)), xycoords=("data", "axes fraction"), fontsize=7,
                    color=ALERT_COLOUR, va="top")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, title="replica",
                  title_fontsize=8)


def plot_run(events: Iterable[Event], info: RunInfo, path: Path) -> None:
    """Write the run's picture as a PNG at `path` (about 1200 x 850 px; 1050 high with Prometheus's panel)."""
    fig = draw_run(events, info)
    try:
        fig.savefig(path, format="png", dpi=DPI)
    finally:
        plt.close(fig)  # the runner may plot many runs in one process


def draw_run(events: Iterable[Event], info: RunInfo) -> Figure:
    """The run's picture as a matplotlib Figure (the caller saves and closes it)."""
    evs = sorted(events, key=lambda e: e.time)
    origin = origin_of(evs, info)
    watched = any(e.process == "prometheus" for e in evs)  # the cluster runs a Prometheus: a panel of its own
    ratios = [3, 2, 2, 2] if watched else [3, 2, 2]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(SIZE_IN[0], SIZE_IN[1] + (2.0 if watched else 0.0)), dpi=DPI,
                             sharex=True, gridspec_kw={"height_ratios": ratios, "hspace": 0.08})
    top, bottom, latency = axes[0], axes[1], axes[2]
    lowest = axes[-1]
    try:
        _draw_writes(top, evs, origin)
        _draw_roles(bottom, evs, info, origin)
        _draw_latency(latency, evs, origin)
        if watched:
            _draw_prometheus(axes[3], evs, origin)
        lowest.set_xlabel(bottom.get_xlabel())  # the time axis is read at the lowest panel
        bottom.set_xlabel("")
        windows = split_brain_windows(evs)
        for ax in axes:
            for start, end, _ in windows:
                ax.axvspan(start - origin, end - origin, color=SPLIT_BRAIN_COLOUR, alpha=0.25, linewidth=0)
            for t in nemesis_times(evs, "fault"):
                ax.axvline(t - origin, color=FAULT_COLOUR, linestyle="--", linewidth=1.2)
            for t in nemesis_times(evs, "heal"):
                ax.axvline(t - origin, color=HEAL_COLOUR, linestyle="-.", linewidth=1.2)
        lo, hi = info.started - origin, info.ended - origin
        if evs:
            lo, hi = min(lo, evs[0].time - origin), max(hi, evs[-1].time - origin)
        if hi > lo:
            lowest.set_xlim(lo, hi)

        handles = [
            Patch(color=OK_COLOUR, label="acknowledged writes"),
            Line2D([], [], color=OK_LINE, label="acknowledged, 1 s average"),
            Patch(color=FAIL_COLOUR, label="failed / indeterminate writes"),
            Line2D([], [], color=FAIL_LINE, label="failed, 1 s average"),
            Line2D([], [], color=OK_LINE, marker=".", linestyle="", label="latency, acknowledged"),
            Line2D([], [], color=FAIL_LINE, marker="x", linestyle="", label="latency, failed / unknown"),
            *(Patch(color=c, label=f"role: {r}") for r, c in ROLE_COLOURS.items()),
            Patch(facecolor="white", edgecolor=NO_SAMPLE_COLOUR, hatch="///", label="no monitor sample"),
            Patch(color=SPLIT_BRAIN_COLOUR, alpha=0.25, label="split brain (2+ writable)"),
            Line2D([], [], color=FAULT_COLOUR, linestyle="--", label=f"fault ({info.fault})"),
            Line2D([], [], color=HEAL_COLOUR, linestyle="-.", label="heal"),
            *([Patch(color=ALERT_COLOUR, alpha=0.15, label="an alert firing")] if watched else []),
        ]
        top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        fig.suptitle(_title(info), fontsize=11)
        fig.subplots_adjust(left=0.14, right=0.80, top=0.92, bottom=0.08)
    except BaseException:
        plt.close(fig)
        raise
    return fig
