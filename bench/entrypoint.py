"""What the HAProxy entrypoint costs: pgbench through it, directly to the primary, and via libpq's multi-host URI.

Brings up its own cluster (PGHA_HOME=/tmp/pgha-bench-entry, name bench-entry, ports 7432-7499), initialises
pgbench (scale 10) through the entrypoint, then runs interleaved rounds of the select-only (-S) and the
TPC-B-like script with 4 clients over three paths, rotating the path order every round. Prints the median
TPS per (script, path) with its ratio to the direct path and writes it to bench/results/entrypoint.md
(one section per profile/config; rerunning the same one replaces its section). Tears the cluster down
at the end unless --keep.

    .venv/bin/python bench/entrypoint.py [--rounds 3] [--duration 10] [--profile default|seed]
        [--config pgha.yaml] [--haproxy-extra extra.yaml] [--keep] [--out FILE]

--haproxy-extra takes HAProxy lines the renderer cannot express yet, as YAML
`{global: [...], defaults: [...], primary: [...]}`; they are inserted at the top of those sections of
the rendered haproxy.cfg and HAProxy is restarted before the first run. The password never appears
on a command line: pgbench reads it from the cluster's client pgpass file (PGPASSFILE).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgha.backends.local import LocalBackend
from pgha.cluster import Cluster, ClusterError
from pgha.spec import Spec, SpecError, build_spec, load_spec_file, plan_ports

NAME = "bench-entry"
HOME = Path("/tmp/pgha-bench-entry")
BASE_PORT = 7432
PORT_RANGE = range(7432, 7500)
CLIENTS = 4
JOBS = 2
SCALE = 10
WARMUP_SECONDS = 5
SCRIPTS: dict[str, list[str]] = {"select-only": ["-S"], "tpcb-like": []}
PATHS = ("haproxy", "direct", "multihost")
# Ratio to direct the issue asks for, per (script, path).
TARGETS: dict[tuple[str, str], float] = {
    ("select-only", "haproxy"): 0.70,
    ("tpcb-like", "haproxy"): 0.90,
    ("select-only", "multihost"): 0.97,
    ("tpcb-like", "multihost"): 0.97,
}
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "entrypoint.md"
TPS_RE = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
LATENCY_RE = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
RUN_MARK = "<!-- run: "
FILE_HEADER = (
    "# Entrypoint overhead: HAProxy vs direct vs multi-host URI\n\n"
    "Written by `bench/entrypoint.py`; one section per profile / HAProxy config, newest run of each.\n"
    "Ratios are median TPS of the path / median TPS direct to the primary; the paired ratio is the\n"
    "median (min-max) of the per-round ratios (same round, adjacent runs), which drifts less with the\n"
    "machine's background load.\n"
)


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Run:
    round: int
    script: str
    path: str
    tps: float
    latency_ms: float
    load1: float


@dataclass(frozen=True)
class Row:
    script: str
    path: str
    median: float
    low: float
    high: float
    ratio: float
    paired: tuple[float, float, float]  # median, min, max of per-round ratios to direct


# --- arguments and spec ------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=int, default=10, help="seconds per pgbench run (default 10)")
    p.add_argument("--profile", choices=("default", "seed"), default="default")
    p.add_argument("--config", type=Path, help="a pgha.yaml for the cluster (e.g. haproxy: {threads: 1})")
    p.add_argument("--haproxy-extra", type=Path, help="YAML {global|defaults|primary: [lines]} added to haproxy.cfg")
    p.add_argument("--keep", action="store_true", help="leave the cluster running")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(REPO)})")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be >= 1")
    return args


def bench_spec(profile: str, config: Path | None) -> Spec:
    """The profile (plus --config), with every port packed into 7432-7499 unless the file names them."""
    settings = load_spec_file(config) if config else {}
    overrides = {"name": NAME, "profile": profile, "base_port": BASE_PORT}
    spec = build_spec(profile, settings, overrides)
    if "ports" not in settings:
        # The seed profile keeps the lab's port offsets (stats at 7000 + shift ...); pack them instead.
        ports = plan_ports("default", BASE_PORT, spec.nodes, spec.dcs.kind, spec.dcs.members,
                           spec.haproxy.readonly_port)
        spec = build_spec(profile, {**settings, "ports": ports}, overrides)
    outside = [f"{what}={port}" for what, port in spec.ports.all() if port not in PORT_RANGE]
    if outside:
        raise BenchError(f"ports outside {PORT_RANGE.start}-{PORT_RANGE.stop - 1}: {', '.join(outside)}")
    return spec


def load_extra(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not set(data) <= {"global", "defaults", "primary"}:
        raise BenchError(f"{path}: expected a mapping with keys global, defaults, primary")
    return {str(k): [str(line) for line in v or []] for k, v in data.items()}


# --- cluster -----------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def start_cluster(cluster: Cluster, spec: Spec) -> None:
    HOME.mkdir(mode=0o755, exist_ok=True)
    HOME.chmod(0o755)
    if cluster.layout.root.exists():
        log(f"removing a leftover cluster {NAME!r}")
        teardown(cluster)
    cluster.up(spec, log)


def teardown(cluster: Cluster) -> None:
    try:
        cluster.down(purge=True)
    except ClusterError as e:
        log(f"down: {e}")


def _section(line: str) -> str | None:
    words = line.split()
    if not words or line[0].isspace():
        return None
    return words[-1] if words[0] == "listen" else words[0]


def patch_haproxy_cfg(text: str, extra: dict[str, list[str]]) -> str:
    out: list[str] = []
    for line in text.splitlines():
        out.append(line)
        section = _section(line)
        if section in extra:
            out += [f"    {x}" for x in extra[section]]
    return "\n".join(out) + "\n"


def apply_haproxy_extra(cluster: Cluster, extra: dict[str, list[str]]) -> None:
    """Rewrite haproxy.cfg with the extra lines and restart HAProxy (only the bench's own)."""
    cfg = cluster.layout.haproxy_config
    cfg.write_text(patch_haproxy_cfg(cfg.read_text(), extra))
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise BenchError(f"haproxy.cfg with --haproxy-extra is invalid: {check.stdout}{check.stderr}")
    backend = cluster.backend()
    if not isinstance(backend, LocalBackend):
        raise BenchError("--haproxy-extra needs the local backend")
    # The backend has no public "restart HAProxy"; these are the calls `up`/`down` use.
    backend._terminate("haproxy", "haproxy")
    backend._spawn("haproxy", "haproxy")
    cluster.wait_healthy(60)
    log("HAProxy restarted with the extra lines")


def haproxy_cfg_excerpt(cluster: Cluster) -> str:
    """global, defaults and the read-write proxy of the running haproxy.cfg (never the stats password)."""
    keep: list[str] = []
    on = False
    for line in cluster.layout.haproxy_config.read_text().splitlines():
        section = _section(line)
        if section is not None:
            on = section in ("global", "defaults", "primary")
        if on and line.strip() and "auth" not in line:
            keep.append(line)
    return "\n".join(keep)


# --- pgbench -----------------------------------------------------------------------------------


def pgbench_binary() -> str:
    for candidate in ("/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("pgbench")
    if not found:
        raise BenchError("pgbench not found (apt-get install postgresql-client-15)")
    return found


def client_env(cluster: Cluster) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = str(cluster.client_pgpass)
    env["PGHA_HOME"] = str(HOME)
    return env


def _no_password(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    return make_conninfo("", **params)


def path_conninfo(cluster: Cluster, path: str) -> str:
    if path == "haproxy":
        return _no_password(cluster.entrypoint_dsn())
    if path == "multihost":
        return cluster.multihost_uri(with_password=False)
    leader = cluster.state().leader
    if leader is None:
        leader = cluster.wait_healthy(60).leader
    if leader is None:
        raise BenchError("no leader to connect to directly")
    return _no_password(cluster.node_dsn(leader.name))


def pgbench(args: list[str], conninfo: str, env: dict[str, str], timeout: float) -> str:
    cmd = [pgbench_binary(), *args, conninfo]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def run_args(script: str, duration: int) -> list[str]:
    return [*SCRIPTS[script], "-c", str(CLIENTS), "-j", str(JOBS), "-T", str(duration)]


def checkpoint(cluster: Cluster) -> None:
    """Flush the previous run's dirty buffers now rather than in the middle of the next run."""
    with psycopg.connect(cluster.entrypoint_dsn(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def measure(cluster: Cluster, rnd: int, script: str, path: str, duration: int) -> Run:
    checkpoint(cluster)
    load1 = os.getloadavg()[0]
    out = pgbench(run_args(script, duration), path_conninfo(cluster, path), client_env(cluster), duration + 300)
    tps, lat = TPS_RE.search(out), LATENCY_RE.search(out)
    if tps is None:
        raise BenchError(f"no tps in pgbench output:\n{out[-1000:]}")
    return Run(rnd, script, path, float(tps.group(1)), float(lat.group(1)) if lat else float("nan"), load1)


def rotated(items: tuple[str, ...], by: int) -> list[str]:
    k = by % len(items)
    return [*items[k:], *items[:k]]


def init_and_warm_up(cluster: Cluster) -> None:
    env = client_env(cluster)
    log(f"pgbench -i -s {SCALE} through the entrypoint")
    pgbench(["-i", "-s", str(SCALE), "-q"], path_conninfo(cluster, "haproxy"), env, 900)
    cluster.wait_healthy(120)
    for script in SCRIPTS:
        log(f"warm-up: {script}, {WARMUP_SECONDS} s direct (discarded)")
        pgbench(run_args(script, WARMUP_SECONDS), path_conninfo(cluster, "direct"), env, 300)


def run_rounds(cluster: Cluster, rounds: int, duration: int) -> list[Run]:
    runs: list[Run] = []
    for rnd in range(1, rounds + 1):
        for script in SCRIPTS:
            for path in rotated(PATHS, rnd - 1):
                run = measure(cluster, rnd, script, path, duration)
                log(f"round {rnd}/{rounds} {script:<11} {path:<9} {run.tps:9.1f} tps "
                    f"({run.latency_ms:.3f} ms, load {run.load1:.2f})")
                runs.append(run)
    return runs


# --- summary -----------------------------------------------------------------------------------


def _tps(runs: Iterable[Run], script: str, path: str) -> list[float]:
    return [r.tps for r in runs if r.script == script and r.path == path]


def _paired(runs: list[Run], script: str, path: str) -> tuple[float, float, float]:
    by_round = {(r.round, r.path): r.tps for r in runs if r.script == script}
    ratios = [tps / by_round[(rnd, "direct")] for (rnd, p), tps in by_round.items()
              if p == path and by_round.get((rnd, "direct"))]
    return statistics.median(ratios), min(ratios), max(ratios)


def summarize(runs: list[Run]) -> list[Row]:
    rows: list[Row] = []
    for script in SCRIPTS:
        direct = statistics.median(_tps(runs, script, "direct"))
        for path in PATHS:
            values = _tps(runs, script, path)
            med = statistics.median(values)
            rows.append(Row(script, path, med, min(values), max(values), med / direct,
                            _paired(runs, script, path)))
    return rows


def _target(row: Row) -> str:
    goal = TARGETS.get((row.script, row.path))
    if goal is None:
        return ""
    return f"≥ {goal:.2f} {'met' if row.ratio >= goal else 'MISSED'}"


def results_table(rows: list[Row]) -> str:
    lines = ["| script | path | median TPS | min-max TPS | spread | ratio to direct | paired ratio | target |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        spread = (r.high - r.low) / r.median * 100
        pm, plo, phi = r.paired
        lines.append(f"| {r.script} | {r.path} | {r.median:.0f} | {r.low:.0f}-{r.high:.0f} | {spread:.0f}% "
                     f"| {r.ratio:.2f} | {pm:.2f} ({plo:.2f}-{phi:.2f}) | {_target(r)} |")
    return "\n".join(lines)


def raw_table(runs: list[Run]) -> str:
    lines = ["| round | script | path | TPS | latency ms | load (1 min) |", "|---:|---|---|---:|---:|---:|"]
    lines += [f"| {r.round} | {r.script} | {r.path} | {r.tps:.1f} | {r.latency_ms:.3f} | {r.load1:.2f} |"
              for r in runs]
    return "\n".join(lines)


# --- report ------------------------------------------------------------------------------------


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10).stdout
    except OSError:
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def machine_facts() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "haproxy": _version([shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"]),
        "pgbench": _version([pgbench_binary(), "--version"]),
    }


def rerun_command(argv: list[str]) -> str:
    return f"cd {REPO} && .venv/bin/python bench/entrypoint.py {shlex.join(argv)}".rstrip()


def run_label(args: argparse.Namespace) -> str:
    config = args.config.name if args.config else "none"
    extra = args.haproxy_extra.name if args.haproxy_extra else "none"
    return f"profile={args.profile} config={config} extra={extra}"


def _file_block(title: str, path: Path | None) -> list[str]:
    if path is None:
        return []
    return [f"{title} (`{path}`):", "", "```yaml", path.read_text().strip(), "```", ""]


@dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    argv: list[str]
    spec: Spec
    facts: dict[str, str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    haproxy_cfg: str
    started: datetime


def render_section(ctx: Context, rows: list[Row], runs: list[Run]) -> str:
    a, s, f = ctx.args, ctx.spec, ctx.facts
    h = s.haproxy
    hap = f"threads {h.threads or 'auto'}, maxconn {h.maxconn}, check {h.check}"
    lines = [
        f"{RUN_MARK}{run_label(a)} -->",
        f"## profile {a.profile}, config {a.config or 'none'}, haproxy extra {a.haproxy_extra or 'none'}",
        "",
        f"- date: {ctx.started:%Y-%m-%d %H:%M} UTC",
        f"- machine: nproc {f['nproc']}, {f['cpu']}, kernel {f['kernel']}; shared with other developers' "
        f"clusters and tests (load average 1/5/15 min before {_fmt_load(ctx.load_before)}, "
        f"after {_fmt_load(ctx.load_after)})",
        f"- versions: {f['haproxy']}; {f['pgbench']}",
        f"- cluster: {s.nodes} nodes, {s.dcs.kind} x{s.dcs.members}, synchronous_mode "
        f"{s.patroni.synchronous_mode}; HAProxy {hap}",
        f"- workload: pgbench -c {CLIENTS} -j {JOBS} -T {a.duration} (simple protocol), scale {SCALE} "
        f"initialised through the entrypoint, {a.rounds} interleaved rounds, path order rotated each round, "
        "CHECKPOINT before every run",
        "- paths: haproxy = read-write entrypoint; direct = the primary's port; multihost = "
        "libpq URI over all nodes with target_session_attrs=read-write",
        f"- rerun: `{rerun_command(ctx.argv)}`",
        "",
        results_table(rows),
        "",
        *_file_block("--config", a.config),
        *_file_block("--haproxy-extra", a.haproxy_extra),
        "<details><summary>haproxy.cfg (global, defaults, read-write proxy) and every run</summary>",
        "",
        "```",
        ctx.haproxy_cfg,
        "```",
        "",
        raw_table(runs),
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def _fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def write_results(out: Path, label: str, section: str) -> None:
    """Replace this label's section (or append it), keeping the others."""
    old = out.read_text() if out.exists() else ""
    sections = [RUN_MARK + part for part in old.split(RUN_MARK)[1:]]
    marker = f"{RUN_MARK}{label} -->"
    if any(s.startswith(marker) for s in sections):
        sections = [section if s.startswith(marker) else s for s in sections]
    else:
        sections.append(section)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(FILE_HEADER + "\n" + "\n".join(s.rstrip() + "\n" for s in sections))


# --- main --------------------------------------------------------------------------------------


def bench(cluster: Cluster, args: argparse.Namespace, argv: list[str]) -> None:
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    spec = bench_spec(args.profile, args.config)
    extra = load_extra(args.haproxy_extra)
    start_cluster(cluster, spec)
    if extra:
        apply_haproxy_extra(cluster, extra)
    init_and_warm_up(cluster)
    runs = run_rounds(cluster, args.rounds, args.duration)
    rows = summarize(runs)
    ctx = Context(args, argv, spec, machine_facts(), load_before, os.getloadavg(),
                  haproxy_cfg_excerpt(cluster), started)
    print()
    print(results_table(rows))
    write_results(args.out, run_label(args), render_section(ctx, rows, runs))
    log(f"written to {args.out}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.environ["PGHA_HOME"] = str(HOME)
    cluster = Cluster(NAME, home=HOME)
    try:
        bench(cluster, args, argv)
    except (BenchError, ClusterError, SpecError) as e:
        log(f"error: {e}")
        return 1
    finally:
        if args.keep:
            log(f"kept; stop it with PGHA_HOME={HOME} .venv/bin/pgha down --name {NAME} --purge")
        else:
            log("tearing down")
            teardown(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())
