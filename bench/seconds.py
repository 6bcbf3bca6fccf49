"""Where the seconds of a failover go, the lab's profile beside the default one: one drill per
profile and fault, each outage cut into stretches with their owners (pgha.report.seconds), then
per fault the same stretches side by side: what the default profile sets instead, and what that
bought in this same run.

    .venv/bin/python bench/seconds.py [--faults stop,freeze] [--profiles seed,default] [--port-shift 0]

Prints the tables and writes them to bench/results/where-the-seconds-went.md (or --out); the run
directories stay under PGHA_HOME (a scratch directory by default).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgha.cluster import Cluster
from pgha.drill.history import LogLine, read_history
from pgha.drill.run import DrillOptions, run_drill
from pgha.model.spec import build_spec
from pgha.report import build_report
from pgha.report.build import load_info, load_results
from pgha.report.clock import origin_without_events
from pgha.report.seconds import Stretch, stretches
from pgha.report.timeline import merge

RESULTS = Path(__file__).parent / "results" / "where-the-seconds-went.md"
BASE_PORTS = {"seed": 23832, "default": 24832}


@dataclass(frozen=True)
class Cut:
    profile: str
    fault: str
    outage_s: float | None
    stretches: list[Stretch]


def cut(run_dir: Path) -> tuple[Cut, list[str]]:
    """One run's stretches, and its table."""
    info = load_info(run_dir / "meta.json")
    results = load_results(run_dir / "results.json") or []
    timeline = merge([[LogLine(**d) for d in json.loads((run_dir / "timeline.json").read_text())]], None, None)
    origin = origin_without_events(info, results, timeline)
    outage = next((r for r in results if r.name == "outage"), None)
    value = outage.metrics.get("outage_s") if outage else None
    outage_s = float(value) if isinstance(value, float | int) else None
    shown = f"{outage_s:.2f}" if outage_s is not None else "?"
    out = [f"### {info.profile}: {info.fault} on {info.target} (new primary {info.new_primary}; outage {shown} s)", "",
           "| stretch | from (s) | to (s) | seconds | whose time | why |", "|---|---:|---:|---:|---|---|"]
    found = stretches(info, results, timeline, origin, read_history(run_dir / "history.jsonl"),
                      default=build_spec("default"))
    out += [f"| {s.name} | {s.start - origin:+.2f} | {s.end - origin:+.2f} | {s.seconds:.2f} | {s.owner} | {s.why} |"
            for s in found]
    if not found:
        out.append("| (no failover to a new primary: nothing to cut) | | | | | |")
    return Cut(info.profile, info.fault, outage_s, found), [*out, ""]


def side_by_side(cuts: list[Cut]) -> list[str]:
    """Per fault: each stretch in every profile, and what the default sets instead (from the
    non-default run's own stretch), so what a setting bought is read off the same run."""
    out: list[str] = []
    profiles = list(dict.fromkeys(c.profile for c in cuts))
    for fault in dict.fromkeys(c.fault for c in cuts):
        runs = {c.profile: c for c in cuts if c.fault == fault}
        keys = list(dict.fromkeys(s.key for c in runs.values() for s in c.stretches))
        out += [f"### {fault}: {' beside '.join(profiles)}", "",
                "| stretch | " + " | ".join(f"{p} (s)" for p in profiles) + " | the default profile sets instead |",
                "|---|" + "---:|" * len(profiles) + "---|"]
        for key in keys:
            cells = []
            instead = ""
            for p in profiles:
                found = [s for s in runs[p].stretches if s.key == key] if p in runs else []
                cells.append(f"{found[0].seconds:.2f}" if found else "")
                instead = instead or next((s.instead for s in found if s.instead), "")
            out.append(f"| {key} | " + " | ".join(cells) + f" | {instead} |")
        outages = [f"{runs[p].outage_s:.2f}" if p in runs and runs[p].outage_s is not None else "" for p in profiles]
        out += ["| **outage** | " + " | ".join(outages) + " | |", ""]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="seed,default")
    parser.add_argument("--faults", default="stop,freeze")
    parser.add_argument("--port-shift", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if "PGHA_HOME" not in os.environ:
        home = Path(tempfile.mkdtemp(prefix="pgha-bench-seconds-"))
        home.chmod(0o755)  # the unprivileged user PostgreSQL runs as must reach the clusters under it
        os.environ["PGHA_HOME"] = str(home)
    lines = ["# bench/seconds.py: where the seconds of a failover went", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 cores, one drill per row (writes at 20/s through "
             f"HAProxy). Each stretch ends at what the logs show; one the logs do not show is joined to the "
             f"next. Runs: under {os.environ['PGHA_HOME']}.", ""]
    cuts: list[Cut] = []
    for profile in args.profiles.split(","):
        name = f"sec-{profile}"
        cluster = Cluster(name)
        if cluster.layout.root.exists():
            cluster.down(purge=True)
        spec = build_spec(profile, overrides={"name": name, "base_port": BASE_PORTS[profile] + args.port_shift})
        try:
            cluster.up(spec)
            for fault in args.faults.split(","):
                outcome = run_drill(cluster, DrillOptions(fault=fault))
                build_report(outcome.run_dir)
                one, rows = cut(outcome.run_dir)
                cuts.append(one)
                print("\n".join(rows), flush=True)
                lines += rows
        finally:
            cluster.down(purge=False)
    lines += ["## Side by side: what the default profile sets instead, and what it bought here", "",
              "Each stretch's seconds in each profile's run above; the setting is read from the default spec "
              "where the lab's run differs from it.", "", *side_by_side(cuts)]
    print("\n".join(side_by_side(cuts)))
    lines.append(f"Rerun: `.venv/bin/python bench/seconds.py --profiles {args.profiles} --faults {args.faults}`")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
