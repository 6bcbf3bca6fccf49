"""Time from nothing to a healthy cluster, and the memory of all its processes.

    .venv/bin/python bench/up.py [--runs 3] [--profiles seed,default]

Prints a table and writes it to bench/results/up.md. Each run starts from an empty cluster
directory (initdb, DCS bootstrap, basebackups included) and ends with `down --purge`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from pgha.cluster import Cluster
from pgha.spec import build_spec

RESULTS = Path(__file__).parent / "results" / "up.md"


def memory_of(cluster: Cluster) -> tuple[float, float]:
    """(RSS, PSS) in MiB summed over every process of the cluster; PSS shares shared pages fairly."""
    rss = pss = 0
    for component in cluster.backend().components():
        for pid in component.pids:
            try:
                info = psutil.Process(pid).memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += info.pss
    return rss / 2**20, pss / 2**20


def one_run(profile: str, run: int) -> tuple[float, float, float]:
    name = f"bench-up-{profile}"
    cluster = Cluster(name)
    if cluster.layout.root.exists():
        cluster.down(purge=True)
    spec = build_spec(profile, overrides={"name": name, "base_port": 21432 if profile == "default" else 22432})
    try:
        start = time.monotonic()
        cluster.up(spec, progress=lambda _msg: None)
        seconds = time.monotonic() - start
        time.sleep(2)  # let the replicas settle before reading memory
        rss, pss = memory_of(cluster)
    finally:
        cluster.down(purge=True)
    print(f"  {profile} run {run}: healthy in {seconds:.2f} s, RSS {rss:.0f} MiB, PSS {pss:.0f} MiB", flush=True)
    return seconds, rss, pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profiles", default="seed,default")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pgha-bench-up-", dir="/tmp"))
    home.chmod(0o755)
    os.environ["PGHA_HOME"] = str(home)
    rows = []
    for profile in args.profiles.split(","):
        spec = build_spec(profile)
        runs = [one_run(profile, i + 1) for i in range(args.runs)]
        secs, rss, pss = (statistics.median(x) for x in zip(*runs, strict=True))
        shape = f"{spec.nodes} nodes + {spec.dcs.members} {spec.dcs.kind}"
        rows.append(f"| {profile} | {shape} | {secs:.1f} | {max(r[0] for r in runs):.1f} | {rss:.0f} | {pss:.0f} |")
    table = "\n".join([
        "| profile | cluster | healthy after, median (s) | max (s) | RSS, median (MiB) | PSS, median (MiB) |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ])
    text = (f"# bench/up.py\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, median of "
            f"{args.runs} runs from an empty directory to healthy (one leader, replicas streaming, a sync "
            f"standby named, HAProxy routing).\nRSS counts shared memory once per process; PSS divides it "
            f"among the processes that share it.\n\n{table}\n\nRerun: `.venv/bin/python bench/up.py --runs "
            f"{args.runs}`\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
