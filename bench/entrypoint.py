"""What the HAProxy entrypoint costs: pgbench through it, directly to the primary, and via libpq's multi-host URI.

Brings up its own cluster (PGHA_HOME=/tmp/pgha-bench-entry, name bench-entry, ports 7432-7499), initialises
pgbench (scale 10) through the entrypoint, then runs interleaved rounds of the select-only (-S) and the
TPC-B-like script with 4 clients over every path, rotating the path order each round. Prints the median TPS
per (script, path), its ratio to the direct path and the CPU time per transaction, and writes them to
bench/results/entrypoint.md (one section per profile/config/candidates; rerunning one replaces its
section). Tears the cluster down at the end unless --keep.

    .venv/bin/python bench/entrypoint.py [--rounds 3] [--duration 10] [--profile default|seed]
        [--config pgha.yaml] [--candidate tuning.yaml ...] [--keep] [--out FILE]

--config shapes the cluster itself (e.g. `haproxy: {threads: 1}`), so its entrypoint is what pgha renders.
--candidate (repeatable) tries HAProxy settings the renderer cannot express. The YAML
`{global: [...], defaults: [...], primary: [...], servers: tcp|unix, nice: N}` adds lines to a copy of
the rendered global, defaults and read-write proxy (an `nbthread` line replaces the rendered one);
`servers: unix` reaches PostgreSQL through its unix socket instead of loopback TCP; `nice` renices every
HAProxy thread. The copy runs as a second HAProxy on a spare port (7435+) of the same cluster and is
measured as one more path, `haproxy:<file stem>`, in the same rounds, so a candidate and the stock
entrypoint see the same background load. An empty candidate (`{}`) is the control: the stock config in a
second process.

The password never appears on a command line: pgbench reads it from a pgpass file (PGPASSFILE).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgha.cluster import Cluster, ClusterError
from pgha.model.spec import Spec, SpecError, build_spec, load_spec_file, plan_ports
from pgha.security.service_user import service_account
from pgha.state import procs

NAME = "bench-entry"
HOME = Path("/tmp/pgha-bench-entry")
BASE_PORT = 7432
PORT_RANGE = range(7432, 7500)
CANDIDATE_PORTS = range(7435, 7442)  # unused by the packed plan (7432-7434, then 7442+)
CLIENTS = 4
JOBS = 2
SCALE = 10
WARMUP_SECONDS = 5
SCRIPTS: dict[str, list[str]] = {"select-only": ["-S"], "tpcb-like": []}
PATHS = ("haproxy", "direct", "multihost")
SECTIONS = ("global", "defaults", "primary")
# Ratio to direct the issue asks for, per (script, kind of path).
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
TXNS_RE = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
RUN_MARK = "<!-- run: "
FILE_HEADER = """\
# Entrypoint overhead: HAProxy vs direct vs multi-host URI

Written by `bench/entrypoint.py`; one section per profile / config / candidates, the newest run of each.

- ratio to direct: median TPS of the path / median TPS direct to the primary.
- paired ratio: median (min-max) of the per-round ratios (adjacent runs of the same round), which
  drifts less with the machine's background load.
- CPU µs per transaction: pgbench + the primary's backends + HAProxy, from per-process CPU time (so the
  neighbours' processes are not counted, though they still slow ours down). The CPU-bound ratio is what
  TPS would approach on an otherwise idle machine where these processes saturate the CPUs.
- `haproxy:<name>` rows are candidate HAProxy configs run side by side with the stock entrypoint.
"""


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Cpu:
    """CPU of what one transaction passes through: seconds (cumulative) or µs per transaction."""

    pgbench: float
    backends: float
    haproxy: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.pgbench - other.pgbench, self.backends - other.backends, self.haproxy - other.haproxy)

    def per_txn_us(self, txns: int) -> Cpu:
        return Cpu(self.pgbench / txns * 1e6, self.backends / txns * 1e6, self.haproxy / txns * 1e6)

    @property
    def total(self) -> float:
        return self.pgbench + self.backends + self.haproxy


@dataclass(frozen=True)
class Run:
    round: int
    script: str
    path: str
    tps: float
    latency_ms: float
    load1: float
    cpu: Cpu  # µs per transaction


@dataclass(frozen=True)
class Row:
    script: str
    path: str
    median: float
    low: float
    high: float
    ratio: float
    paired: tuple[float, float, float]  # median, min, max of per-round ratios to direct
    vs_stock: tuple[float, float, float] | None  # the same against the stock entrypoint, for candidates
    cpu: Cpu  # median µs per transaction
    cpu_ratio: float  # direct's median total CPU per transaction / this path's


@dataclass(frozen=True)
class Candidate:
    name: str
    source: Path
    port: int
    lines: dict[str, list[str]]
    unix_servers: bool  # reach PostgreSQL through its unix socket instead of loopback TCP
    nice: int  # scheduling priority of every HAProxy thread (negative needs root)

    @property
    def path(self) -> str:
        return f"haproxy:{self.name}"


# --- arguments, spec, candidates ---------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds (default 3); a multiple of the number of paths balances the order")
    p.add_argument("--duration", type=int, default=10, help="seconds per pgbench run (default 10)")
    p.add_argument("--profile", choices=("default", "seed"), default="default")
    p.add_argument("--config", type=Path, help="a pgha.yaml for the cluster (e.g. haproxy: {threads: 1})")
    p.add_argument("--candidate", type=Path, action="append", default=[],
                   help="YAML {global|defaults|primary: [haproxy lines], servers: unix, nice: N}, "
                        "run as an extra path (repeatable)")
    p.add_argument("--keep", action="store_true", help="leave the cluster running")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(REPO)})")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be >= 1")
    if len(args.candidate) > len(CANDIDATE_PORTS):
        p.error(f"at most {len(CANDIDATE_PORTS)} candidates")
    if len({c.stem for c in args.candidate}) != len(args.candidate):
        p.error("candidates are named after their file names, which must differ")
    return args


def bench_spec(profile: str, config: Path | None) -> Spec:
    """The profile (plus --config), with every port packed into 7432-7499 unless the file names them."""
    settings = load_spec_file(config) if config else {}
    overrides = {"name": NAME, "profile": profile, "base_port": BASE_PORT}
    spec = build_spec(profile, settings, overrides)
    if "ports" not in settings:
        # The seed profile keeps the lab's port offsets (stats at 7000 + shift, ...); pack them instead.
        ports = plan_ports("default", BASE_PORT, spec.nodes, spec.dcs.kind, spec.dcs.members,
                           spec.haproxy.readonly_port)
        spec = build_spec(profile, {**settings, "ports": ports}, overrides)
    used = [port for _, port in spec.ports.all()]
    outside = [str(p) for p in used if p not in PORT_RANGE]
    if outside:
        raise BenchError(f"ports outside {PORT_RANGE.start}-{PORT_RANGE.stop - 1}: {', '.join(outside)}")
    if set(used) & set(CANDIDATE_PORTS):
        raise BenchError(f"the cluster uses a candidate port ({CANDIDATE_PORTS.start}-{CANDIDATE_PORTS.stop - 1})")
    return spec


def load_candidate(path: Path, port: int) -> Candidate:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not set(data) <= {*SECTIONS, "servers", "nice"}:
        raise BenchError(f"{path}: expected a mapping with keys {', '.join(SECTIONS)}, servers, nice")
    if data.get("servers", "tcp") not in ("tcp", "unix") or not isinstance(data.get("nice", 0), int):
        raise BenchError(f"{path}: servers must be tcp or unix, nice an integer")
    lines = {str(k): [str(x) for x in v or []] for k, v in data.items() if k in SECTIONS}
    return Candidate(path.stem, path, port, lines, data.get("servers") == "unix", int(data.get("nice", 0)))


# --- cluster -----------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def start_cluster(cluster: Cluster, spec: Spec) -> None:
    HOME.mkdir(mode=0o755, exist_ok=True)
    HOME.chmod(0o755)
    if cluster.layout.root.exists():
        log(f"removing a leftover cluster {NAME!r}")
        teardown(cluster)
    cluster.up(spec)


def teardown(cluster: Cluster) -> None:
    try:
        cluster.down(purge=True)
    except ClusterError as e:
        log(f"down: {e}")


def bench_pgpass(cluster: Cluster, candidates: list[Candidate]) -> Path:
    """The cluster's client pgpass plus the candidates' ports (same password as the entrypoint)."""
    spec = cluster.spec
    lines = cluster.client_pgpass.read_text().splitlines()
    rw = f"{spec.host}:{spec.ports.entrypoint_rw}:"
    template = next(line for line in lines if line.startswith(rw))
    lines += [f"{spec.host}:{c.port}:" + template[len(rw):] for c in candidates]
    path = cluster.layout.root / "bench-pgpass"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# --- haproxy.cfg -------------------------------------------------------------------------------


def _section(line: str) -> str | None:
    words = line.split()
    if not words or line[0].isspace():
        return None
    return words[-1] if words[0] == "listen" else words[0]


def _keyword(line: str) -> str:
    words = line.split()
    return " ".join(words[:2]) if words[:1] == ["stats"] else (words[0] if words else "")


def _unix_server(line: str, socket_dir: Path) -> str:
    """`server n0 H:P check port R` -> `server n0 unix@DIR/.s.PGSQL.P check addr H port R`."""
    words = line.split()
    host, port = words[2].rsplit(":", 1)
    rest = " ".join(words[3:]).replace("check port", f"check addr {host} port")
    return f"    server {words[1]} unix@{socket_dir}/.s.PGSQL.{port} {rest}"


def candidate_cfg(rendered: str, host: str, c: Candidate, socket_dir: Path) -> str:
    """The rendered global, defaults and read-write proxy, on the candidate's port, plus its lines."""
    replaced = {_keyword(x) for x in c.lines.get("global", [])} & {"nbthread"}
    out: list[str] = []
    section: str | None = None
    for line in rendered.splitlines():
        section = _section(line) or section
        if section not in SECTIONS or _keyword(line) in replaced | {"stats socket"}:
            continue
        if _keyword(line) == "bind":
            line = f"    bind {host}:{c.port}"
        if _keyword(line) == "server" and c.unix_servers:
            line = _unix_server(line, socket_dir)
        out.append(line)
        if _section(line) in c.lines:
            out += [f"    {x}" for x in c.lines[section]]
    return "\n".join(out) + "\n"


def haproxy_excerpt(cfg: str) -> str:
    """global, defaults and the read-write proxy of a haproxy.cfg, never the stats credentials."""
    keep: list[str] = []
    section: str | None = None
    for line in cfg.splitlines():
        section = _section(line) or section
        if section in SECTIONS and line.strip() and "auth" not in line:
            keep.append(line)
    return "\n".join(keep)


def haproxy_binary() -> str:
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def start_candidate(cluster: Cluster, c: Candidate) -> psutil.Process:
    layout, run_as = cluster.layout, service_account()
    if procs.port_in_use(cluster.spec.host, c.port):
        raise BenchError(f"port {c.port} for candidate {c.name} is in use")
    cfg = layout.conf / f"haproxy-{c.name}.cfg"
    cfg.write_text(candidate_cfg(layout.haproxy_config.read_text(), cluster.spec.host, c, layout.socket_dir))
    cfg.chmod(0o644)  # no secrets in it: the stats section is left out
    check = subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(cfg)], capture_output=True, text=True,
                           check=False)
    if check.returncode != 0:
        raise BenchError(f"candidate {c.name}: invalid haproxy.cfg: {check.stdout}{check.stderr}")
    pidfile = layout.pidfile(f"haproxy-{c.name}")
    procs.spawn([haproxy_binary(), "-db", "-f", str(cfg)], log=layout.log(f"haproxy-{c.name}"), pidfile=pidfile,
                env={"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=layout.root, run_as=run_as)
    proc = procs.read_pidfile(pidfile)
    if proc is None:
        raise BenchError(f"candidate {c.name}: HAProxy exited at once (see {layout.log(f'haproxy-{c.name}')})")
    if c.nice:
        time.sleep(0.5)  # its threads start right away; setpriority applies per thread on Linux
        for thread in proc.threads():
            os.setpriority(os.PRIO_PROCESS, thread.id, c.nice)
    return proc


def wait_routes_to_primary(cluster: Cluster, port: int, timeout: float = 30.0) -> None:
    """Until a few connections in a row through `port` land on the primary (health checks settled)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 5:
        if time.monotonic() > deadline:
            raise BenchError(f"port {port} does not route to the primary after {timeout:.0f} s")
        try:
            with psycopg.connect(cluster.clients.dsn(port), connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            streak = streak + 1 if row is not None and row[0] is False else 0
        except psycopg.Error:
            streak = 0
        time.sleep(0.5 if streak == 0 else 0.1)


@contextmanager
def candidates_running(cluster: Cluster, candidates: list[Candidate]) -> Iterator[None]:
    started: list[psutil.Process] = []
    try:
        for c in candidates:
            started.append(start_candidate(cluster, c))
            time.sleep(3)  # let the checks mark the replicas down before trusting the routing
            wait_routes_to_primary(cluster, c.port)
            log(f"candidate {c.name} on port {c.port}")
        yield
    finally:
        procs.terminate(started, 10)


# --- pgbench -----------------------------------------------------------------------------------


def pgbench_binary() -> str:
    for candidate in ("/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench"):
        if Path(candidate).exists():
            return candidate
    found = shutil.which("pgbench")
    if not found:
        raise BenchError("pgbench not found (apt-get install postgresql-client-15)")
    return found


def client_env(pgpass: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = str(pgpass)
    return env


def _no_password(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    return make_conninfo("", **params)


def leader_of(cluster: Cluster) -> str:
    leader = cluster.state().leader or cluster.wait_healthy(60).leader
    if leader is None:
        raise BenchError("no leader")
    return leader.name


def path_conninfo(cluster: Cluster, path: str, leader: str, candidates: list[Candidate]) -> str:
    if path == "haproxy":
        return _no_password(cluster.clients.entrypoint_dsn())
    if path == "multihost":
        return cluster.clients.multihost_uri(with_password=False)
    if path == "direct":
        return _no_password(cluster.clients.node_target(leader).dsn)
    port = next(c.port for c in candidates if c.path == path)
    return _no_password(cluster.clients.dsn(port))


def pgbench(args: list[str], conninfo: str, env: dict[str, str], timeout: float) -> str:
    cmd = [pgbench_binary(), *args, conninfo]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def run_args(script: str, duration: int) -> list[str]:
    # -n: settle() does pgbench's own vacuum/truncate beforehand, outside the CPU accounting.
    return [*SCRIPTS[script], "-n", "-c", str(CLIENTS), "-j", str(JOBS), "-T", str(duration)]


REPLAY_BEHIND = "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn IS NULL OR replay_lsn < %s::pg_lsn"


def settle(cluster: Cluster, timeout: float = 60.0) -> None:
    """pgbench's pre-run vacuum and truncate, a CHECKPOINT, then wait for every replica to replay
    it all, so that no run pays for the previous one's writes."""
    with psycopg.connect(cluster.clients.entrypoint_dsn(), autocommit=True) as conn:
        conn.execute("VACUUM pgbench_branches, pgbench_tellers")
        conn.execute("TRUNCATE pgbench_history")
        conn.execute("CHECKPOINT")
        target = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute(REPLAY_BEHIND, (target[0] if target else "0/0",)).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.1)
    log(f"replicas still replaying after {timeout:.0f} s; measuring anyway")


def _own(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def _reaped(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.children_user + t.children_system)


def cpu_now(cluster: Cluster, leader: str, haproxy_pidfile: Path) -> Cpu:
    """pgbench (our reaped children), the primary's backends (reaped by its postmaster), one HAProxy."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Cpu(
        kids.ru_utime + kids.ru_stime,
        _reaped(procs.postmaster(cluster.layout.pgdata(leader))),
        _own(procs.read_pidfile(haproxy_pidfile)),
    )


@dataclass(frozen=True)
class Bench:
    cluster: Cluster
    candidates: list[Candidate]
    env: dict[str, str]
    duration: int

    @property
    def paths(self) -> tuple[str, ...]:
        return (*PATHS, *(c.path for c in self.candidates))

    def haproxy_pidfile(self, path: str) -> Path:
        name = path.replace(":", "-") if path.startswith("haproxy:") else "haproxy"
        return self.cluster.layout.pidfile(name)

    def measure(self, rnd: int, script: str, path: str) -> Run:
        settle(self.cluster)
        leader = leader_of(self.cluster)
        conninfo = path_conninfo(self.cluster, path, leader, self.candidates)
        pidfile = self.haproxy_pidfile(path)
        load1 = os.getloadavg()[0]
        before = cpu_now(self.cluster, leader, pidfile)
        out = pgbench(run_args(script, self.duration), conninfo, self.env, self.duration + 300)
        time.sleep(0.3)  # let the postmaster reap the run's backends
        cpu = cpu_now(self.cluster, leader, pidfile) - before
        tps, lat, txns = TPS_RE.search(out), LATENCY_RE.search(out), TXNS_RE.search(out)
        if tps is None or txns is None or int(txns.group(1)) == 0:
            raise BenchError(f"no transactions in pgbench output:\n{out[-1000:]}")
        if leader_of(self.cluster) != leader:
            raise BenchError("the leader changed during a run")
        return Run(rnd, script, path, float(tps.group(1)), float(lat.group(1)) if lat else float("nan"), load1,
                   cpu.per_txn_us(int(txns.group(1))))

    def init_and_warm_up(self) -> None:
        leader = leader_of(self.cluster)
        log(f"pgbench -i -s {SCALE} through the entrypoint")
        pgbench(["-i", "-s", str(SCALE), "-q"], path_conninfo(self.cluster, "haproxy", leader, []), self.env, 900)
        self.cluster.wait_healthy(120)
        for script in SCRIPTS:
            log(f"warm-up: {script}, {WARMUP_SECONDS} s direct (discarded)")
            settle(self.cluster)
            pgbench(run_args(script, WARMUP_SECONDS), path_conninfo(self.cluster, "direct", leader, []),
                    self.env, 300)

    def rounds(self, rounds: int) -> list[Run]:
        runs: list[Run] = []
        for rnd in range(1, rounds + 1):
            for script in SCRIPTS:
                for path in rotated(self.paths, rnd - 1):
                    run = self.measure(rnd, script, path)
                    log(f"round {rnd}/{rounds} {script:<11} {path:<18} {run.tps:9.1f} tps "
                        f"({run.latency_ms:.3f} ms, {run.cpu.total:.0f} CPU µs/txn, load {run.load1:.2f})")
                    runs.append(run)
        return runs


def rotated(items: tuple[str, ...], by: int) -> list[str]:
    k = by % len(items)
    return [*items[k:], *items[:k]]


# --- summary -----------------------------------------------------------------------------------


def _of(runs: Iterable[Run], script: str, path: str) -> list[Run]:
    return [r for r in runs if r.script == script and r.path == path]


def _paired(runs: list[Run], script: str, path: str, ref: str = "direct") -> tuple[float, float, float]:
    """Median, min and max over the rounds of TPS(path) / TPS(ref) in the same round."""
    by_round = {(r.round, r.path): r.tps for r in runs if r.script == script}
    ratios = [tps / by_round[(rnd, ref)] for (rnd, p), tps in by_round.items()
              if p == path and by_round.get((rnd, ref))]
    return statistics.median(ratios), min(ratios), max(ratios)


def _median_cpu(runs: list[Run]) -> Cpu:
    return Cpu(statistics.median(r.cpu.pgbench for r in runs), statistics.median(r.cpu.backends for r in runs),
               statistics.median(r.cpu.haproxy for r in runs))


def summarize(runs: list[Run], paths: tuple[str, ...]) -> list[Row]:
    rows: list[Row] = []
    for script in SCRIPTS:
        direct = _of(runs, script, "direct")
        direct_tps = statistics.median(r.tps for r in direct)
        direct_cpu = statistics.median(r.cpu.total for r in direct)
        for path in paths:
            these = _of(runs, script, path)
            tps = [r.tps for r in these]
            med = statistics.median(tps)
            vs_stock = _paired(runs, script, path, "haproxy") if path.startswith("haproxy:") else None
            rows.append(Row(script, path, med, min(tps), max(tps), med / direct_tps, _paired(runs, script, path),
                            vs_stock, _median_cpu(these), direct_cpu / statistics.median(r.cpu.total for r in these)))
    return rows


def _target(row: Row) -> str:
    goal = TARGETS.get((row.script, row.path.split(":")[0]))
    if goal is None:
        return ""
    return f"≥ {goal:.2f} {'met' if row.ratio >= goal else 'MISSED'}"


def _fmt_paired(p: tuple[float, float, float] | None) -> str:
    return "" if p is None else f"{p[0]:.2f} ({p[1]:.2f}-{p[2]:.2f})"


def results_table(rows: list[Row]) -> str:
    with_stock = any(r.vs_stock for r in rows)
    head = "| script | path | median TPS | min-max TPS | spread | ratio to direct | paired ratio | target |"
    rule = "|---|---|---:|---:|---:|---:|---:|---|"
    lines = [head + (" paired vs stock haproxy |" if with_stock else ""), rule + ("---:|" if with_stock else "")]
    for r in rows:
        spread = (r.high - r.low) / r.median * 100
        line = (f"| {r.script} | {r.path} | {r.median:.0f} | {r.low:.0f}-{r.high:.0f} | {spread:.0f}% "
                f"| {r.ratio:.2f} | {_fmt_paired(r.paired)} | {_target(r)} |")
        lines.append(line + (f" {_fmt_paired(r.vs_stock)} |" if with_stock else ""))
    return "\n".join(lines)


def cpu_table(rows: list[Row]) -> str:
    lines = ["| script | path | pgbench µs/txn | backends µs/txn | HAProxy µs/txn | total µs/txn | CPU-bound ratio |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r.cpu
        lines.append(f"| {r.script} | {r.path} | {c.pgbench:.1f} | {c.backends:.1f} | {c.haproxy:.1f} "
                     f"| {c.total:.1f} | {r.cpu_ratio:.2f} |")
    return "\n".join(lines)


def raw_table(runs: list[Run]) -> str:
    lines = ["| round | script | path | TPS | latency ms | CPU µs/txn (pgbench/backends/HAProxy) | load (1 min) |",
             "|---:|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.round} | {r.script} | {r.path} | {r.tps:.1f} | {r.latency_ms:.3f} "
              f"| {r.cpu.pgbench:.1f}/{r.cpu.backends:.1f}/{r.cpu.haproxy:.1f} | {r.load1:.2f} |" for r in runs]
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
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "haproxy": _version([haproxy_binary(), "-v"]),
        "pgbench": _version([pgbench_binary(), "--version"]),
    }


def rerun_command(argv: list[str]) -> str:
    return f"cd {REPO} && .venv/bin/python bench/entrypoint.py {shlex.join(argv)}".rstrip()


def run_label(args: argparse.Namespace) -> str:
    config = args.config.name if args.config else "none"
    cands = ",".join(c.stem for c in args.candidate) or "none"
    return f"profile={args.profile} config={config} candidates={cands}"


def _file_block(title: str, path: Path) -> list[str]:
    return [f"{title} `{path}`:", "", "```yaml", path.read_text().strip(), "```", ""]


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


def _fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def _facts_lines(ctx: Context) -> list[str]:
    a, s, f, h = ctx.args, ctx.spec, ctx.facts, ctx.spec.haproxy
    return [
        f"- date: {ctx.started:%Y-%m-%d %H:%M} UTC",
        f"- machine: nproc {f['nproc']}, {f['cpu']}, kernel {f['kernel']}; shared with other developers' "
        f"clusters and tests (load average 1/5/15 min before {_fmt_load(ctx.load_before)}, "
        f"after {_fmt_load(ctx.load_after)})",
        f"- versions: {f['haproxy']}; {f['pgbench']}",
        f"- cluster: {s.nodes} nodes, {s.dcs.kind} x{s.dcs.members}, synchronous_mode "
        f"{s.patroni.synchronous_mode}; HAProxy threads {h.threads or 'auto'}, maxconn {h.maxconn}, check {h.check}",
        f"- workload: pgbench -c {CLIENTS} -j {JOBS} -T {a.duration} -n (simple protocol), scale {SCALE} "
        f"initialised through the entrypoint, {a.rounds} interleaved rounds, path order rotated each round; "
        "before every run: VACUUM branches/tellers, TRUNCATE history, CHECKPOINT, replicas caught up",
        "- paths: haproxy = the read-write entrypoint; direct = the primary's port; multihost = libpq URI "
        "over all nodes with target_session_attrs=read-write; haproxy:NAME = a candidate HAProxy",
        f"- rerun: `{rerun_command(ctx.argv)}`",
    ]


def render_section(ctx: Context, rows: list[Row], runs: list[Run]) -> str:
    a = ctx.args
    title = f"profile {a.profile}, config {a.config.name if a.config else 'none'}"
    if a.candidate:
        title += f", candidates {', '.join(c.stem for c in a.candidate)}"
    blocks = ([*_file_block("--config", a.config)] if a.config else []) + [
        line for c in a.candidate for line in _file_block("--candidate", c)]
    return "\n".join([
        f"{RUN_MARK}{run_label(a)} -->", f"## {title}", "", *_facts_lines(ctx), "",
        results_table(rows), "",
        "CPU time per transaction (medians):", "", cpu_table(rows), "",
        *blocks,
        "<details><summary>the entrypoint's haproxy.cfg (global, defaults, read-write proxy) and every run"
        "</summary>", "", "```", ctx.haproxy_cfg, "```", "", raw_table(runs), "", "</details>", "",
    ])


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
    started, load_before = datetime.now(UTC), os.getloadavg()
    spec = bench_spec(args.profile, args.config)
    candidates = [load_candidate(p, port) for p, port in zip(args.candidate, CANDIDATE_PORTS, strict=False)]
    start_cluster(cluster, spec)
    b = Bench(cluster, candidates, client_env(bench_pgpass(cluster, candidates)), args.duration)
    b.init_and_warm_up()
    with candidates_running(cluster, candidates):
        runs = b.rounds(args.rounds)
    rows = summarize(runs, b.paths)
    ctx = Context(args, argv, spec, machine_facts(), load_before, os.getloadavg(),
                  haproxy_excerpt(cluster.layout.haproxy_config.read_text()), started)
    print(f"\n{results_table(rows)}\n\n{cpu_table(rows)}")
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
