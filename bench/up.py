"""Time from nothing to a healthy cluster, and the memory of all its processes.

    .venv/bin/python bench/up.py [--runs 3] [--profiles seed,default] [--backends local,compose]
        [--tls default,on,off] [--port-shift 0]

    .venv/bin/python bench/up.py --profiles default --backends local,netns --tls on,off \
        --out bench/results/up-tls.md

Prints a table and writes it to bench/results/up.md. Each run starts from an empty cluster
directory (initdb, DCS bootstrap, basebackups included) and ends with `down --purge`; for the
compose backend that also removes the cluster's image, so every run builds it, and the table
gives the time to healthy without the build and the build on its own. Memory is that of the
processes inside the containers (the engine's conmon processes are not counted).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from pgha.cluster import Cluster
from pgha.model.spec import build_spec
from pgha.state.journal import shown_by

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


@dataclass(frozen=True)
class Run:
    seconds: float  # to healthy, without building an image
    build: float  # building the image (compose; 0 otherwise)
    rss: float
    pss: float


def one_run(profile: str, backend: str, run: int, port_shift: int, tls: str = "default") -> Run:
    name = f"bench-up-{profile}-{backend}"
    cluster = Cluster(name)
    if cluster.layout.root.exists():
        cluster.down(purge=True)
    base_port = (21432 if profile == "default" else 22432) + port_shift + (100 if backend == "compose" else 0)
    overrides: dict[str, object] = {"name": name, "base_port": base_port, "backend": backend}
    if tls != "default":
        overrides["tls"] = tls == "on"
    if backend == "compose":
        overrides["network"] = "198.18.40.0/24" if profile == "default" else "198.18.41.0/24"
    spec = build_spec(profile, overrides=overrides)
    marks: dict[str, float] = {}

    class Marks(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # The compose backend says (logs) when it starts and ends building the image.
            for word in ("building image", "starting containers"):
                if record.getMessage().startswith(word):
                    marks[word] = time.monotonic()

    try:
        start = time.monotonic()
        with shown_by(Marks()):
            cluster.up(spec)
        total = time.monotonic() - start
        build = marks["starting containers"] - marks["building image"] if "building image" in marks else 0.0
        time.sleep(2)  # let the replicas settle before reading memory
        rss, pss = memory_of(cluster)
    finally:
        if cluster.exists:
            cluster.down(purge=True)
    result = Run(total - build, build, rss, pss)
    print(f"  {profile}/{backend}/tls {tls} run {run}: healthy in {result.seconds:.2f} s "
          f"(+ image build {build:.1f} s), RSS {rss:.0f} MiB, PSS {pss:.0f} MiB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profiles", default="seed,default")
    parser.add_argument("--backends", default="local", help="local,compose")
    parser.add_argument("--tls", default="default", help="default,on,off: the spec's default, or TLS forced")
    parser.add_argument("--port-shift", type=int, default=0, help="add this to every base port")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the table")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pgha-bench-up-", dir="/tmp"))
    home.chmod(0o755)
    os.environ["PGHA_HOME"] = str(home)
    rows = []
    for backend in args.backends.split(","):
        for profile, tls in ((p, t) for p in args.profiles.split(",") for t in args.tls.split(",")):
            forced = {} if tls == "default" else {"tls": tls == "on"}
            spec = build_spec(profile, overrides={"backend": backend, **forced})
            runs = [one_run(profile, backend, i + 1, args.port_shift, tls) for i in range(args.runs)]
            secs, build, rss, pss = (statistics.median(getattr(r, f) for r in runs)
                                     for f in ("seconds", "build", "rss", "pss"))
            shape = f"{spec.nodes} nodes + {spec.dcs.members} {spec.dcs.kind}"
            built = f"{build:.1f}" if backend == "compose" else "-"
            slowest = max(r.seconds for r in runs)
            rows.append(f"| {backend} | {profile} | {'on' if spec.tls else 'off'} | {shape} | {secs:.1f} | "
                        f"{slowest:.1f} | {built} | {rss:.0f} | {pss:.0f} |")
    table = "\n".join([
        "| backend | profile | TLS | cluster | healthy after, median (s) | max (s) | image build, median (s) | "
        "RSS, median (MiB) | PSS, median (MiB) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ])
    text = (f"# bench/up.py\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, median of "
            f"{args.runs} runs from an empty directory to healthy (one leader, replicas streaming, a sync "
            f"standby named, HAProxy routing).\nRSS counts shared memory once per process; PSS divides it "
            f"among the processes that share it. compose: the processes inside the containers (not the "
            f"engine's conmon), and the time to healthy excludes the image build, given on its own."
            f"\n\n{table}\n\nRerun: `.venv/bin/python bench/up.py --runs "
            f"{args.runs} --profiles {args.profiles} --backends {args.backends} --tls {args.tls} "
            f"--port-shift {args.port_shift}"
            f" --out {args.out}`\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
