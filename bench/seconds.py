"""Where the seconds of a failover go, the lab's profile beside the default one: one drill per
profile and fault, each outage cut into stretches with their owners (pgha.report.seconds).

    .venv/bin/python bench/seconds.py [--faults stop,freeze] [--profiles seed,default] [--port-shift 0]

Prints the tables and writes them to bench/results/where-the-seconds-went.md (or --out); the run
directories stay under PGHA_HOME (a scratch directory by default).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pgha.cluster import Cluster
from pgha.drill.history import LogLine, read_history
from pgha.drill.run import DrillOptions, run_drill
from pgha.model.spec import build_spec
from pgha.report import build_report
from pgha.report.build import load_info, load_results
from pgha.report.clock import origin_without_events
from pgha.report.seconds import stretches
from pgha.report.timeline import merge

RESULTS = Path(__file__).parent / "results" / "where-the-seconds-went.md"
BASE_PORTS = {"seed": 23832, "default": 24832}


def table(run_dir: Path) -> list[str]:
    info = load_info(run_dir / "meta.json")
    results = load_results(run_dir / "results.json") or []
    timeline = merge([[LogLine(**d) for d in json.loads((run_dir / "timeline.json").read_text())]], None, None)
    origin = origin_without_events(info, results, timeline)
    outage = next((r for r in results if r.name == "outage"), None)
    outage_s = outage.metrics.get("outage_s") if outage else None
    shown = f"{outage_s:.2f}" if isinstance(outage_s, float | int) else "?"
    out = [f"### {info.profile}: {info.fault} on {info.target} (new primary {info.new_primary}; outage {shown} s)", "",
           "| stretch | from (s) | to (s) | seconds | whose time | why |", "|---|---:|---:|---:|---|---|"]
    found = stretches(info, results, timeline, origin, read_history(run_dir / "history.jsonl"))
    out += [f"| {s.name} | {s.start - origin:+.2f} | {s.end - origin:+.2f} | {s.seconds:.2f} | {s.owner} | {s.why} |"
            for s in found]
    if not found:
        out.append("| (no failover to a new primary: nothing to cut) | | | | | |")
    return [*out, ""]


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
                rows = table(outcome.run_dir)
                print("\n".join(rows), flush=True)
                lines += rows
        finally:
            cluster.down(purge=False)
    lines.append(f"Rerun: `.venv/bin/python bench/seconds.py --profiles {args.profiles} --faults {args.faults}`")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
