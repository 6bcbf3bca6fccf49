"""Backups with pgBackRest, measured: throughput against pg_basebackup and cp -a, restore time
(RTO) and lost writes (RPO) after losing every node, point-in-time exactness, what archiving costs
a write load, and how long `pgha verify-backup` takes.

    .venv/bin/python bench/backup.py [--scale 70] [--pitr-rounds 10] [--tps-seconds 30]
        [--out bench/results/backup.md]

Everything runs in one scratch PGHA_HOME on base ports 28432-28832 (default profile, local
backend). Prints the table and writes it to bench/results/backup.md.

- throughput: pgbench's database at --scale (70: about 1 GB) backed up by `pgha backup` (full,
  lz4, two processes), copied by pg_basebackup (-X stream, fast checkpoint) and by `cp -a` of the
  primary's data directory; restore is pgBackRest's own restore step inside `pgha restore`, from
  its log.
- RTO (source intact): `pgha restore --latest --as` until a write through the new cluster's
  entrypoint is acknowledged (a writer polls it while the restore runs).
- disaster: a writer through the entrypoint (a fresh connection and row every 20 ms); every node
  SIGKILLed (Patroni and PostgreSQL; nothing restarts them) and its data directory deleted, as
  `pgha drill --fault disaster` does; then `restore --in-place --latest` from the repository.
  RTO: the loss to the first write acknowledged through the same entrypoint. RPO: rows
  acknowledged before the loss missing afterwards, and how long before the loss the oldest was.
- PITR: the same writer; T noted on the wall clock; `restore --to T`. Exact when no row
  acknowledged before T is missing and no row sent after T is present (rows in flight at T may go
  either way and are not counted).
- archiving's cost: pgbench TPC-B (-c 4 -j 2) on two clusters of the same scale, one archiving and
  one with `--no-backup`, in ABBA order.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgha.cluster import Cluster
from pgha.model.spec import build_spec
from pgha.ops import backups as backup_ops
from pgha.ops import restore as restore_ops
from pgha.ops import verify_backup

RESULTS = Path(__file__).parent / "results" / "backup.md"
PG_BIN = "/usr/lib/postgresql/15/bin"
SOURCE, PLAIN, COPY = "bench-bk", "bench-noarch", "bench-copy"
BASE = {SOURCE: 28432, PLAIN: 28532, COPY: 28632}
WRITE_EVERY = 0.02

log = logging.getLogger("bench.backup")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def up(name: str, *, backup: bool = True) -> Cluster:
    cluster = Cluster(name)
    spec = build_spec("default", {"backup": {"enabled": backup}}, {"name": name, "base_port": BASE[name]})
    cluster.up(spec, timeout=300)
    return cluster


def down(name: str) -> None:
    cluster = Cluster(name)
    if cluster.layout.root.exists():
        cluster.down(purge=True)


def env_for(cluster: Cluster) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = str(cluster.client_pgpass)
    return env


def dsn_without_password(cluster: Cluster) -> str:
    return re.sub(r"\bpassword=\S+\s*", "", cluster.clients.entrypoint_dsn())


def pgbench(cluster: Cluster, *args: str, timeout: float = 3600) -> str:
    proc = subprocess.run([f"{PG_BIN}/pgbench", *args, dsn_without_password(cluster)], env=env_for(cluster),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"pgbench {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout + proc.stderr


def timed(what: str, fn) -> float:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    fn()
    seconds = time.monotonic() - began
    print(f"  {what}: {seconds:.1f} s", flush=True)
    return seconds


# --- a writer that remembers what was acknowledged -------------------------------------------------


@dataclass
class Writer:
    cluster: Cluster
    table: str = "bench_writes"
    acks: list[tuple[int, float, float]] = field(default_factory=list)  # id, sent, acknowledged (epoch s)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Writer:
        with psycopg.connect(self.cluster.clients.entrypoint_dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")
            row = conn.execute(f"SELECT coalesce(max(id), 0) FROM {self.table}").fetchone()
        self.next_id = int(row[0]) + 1 if row else 1
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        dsn = self.cluster.clients.entrypoint_dsn()
        while not self.stop.is_set():
            sent = time.time()
            try:
                with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
                    conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (self.next_id,))
                self.acks.append((self.next_id, sent, time.time()))
            except psycopg.Error:
                pass
            self.next_id += 1
            time.sleep(WRITE_EVERY)

    def finish(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(10)


def ids_in(cluster: Cluster, table: str = "bench_writes") -> set[int]:
    with psycopg.connect(cluster.clients.entrypoint_dsn(), connect_timeout=10) as conn:
        return {r[0] for r in conn.execute(f"SELECT id FROM {table}").fetchall()}


def first_ack(spec_name: str, base_port: int, stop: threading.Event, found: list[float]) -> None:
    """Poll the restored cluster's entrypoint until a write is acknowledged (epoch s)."""
    while not stop.is_set():
        cluster = Cluster(spec_name)
        try:
            if cluster.exists:
                with psycopg.connect(cluster.clients.entrypoint_dsn(), connect_timeout=1, autocommit=True) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS bench_rto (at timestamptz)")
                    conn.execute("INSERT INTO bench_rto VALUES (now())")
                found.append(time.time())
                return
        except Exception:  # not there yet: no spec, no passwords, or not answering
            pass
        time.sleep(0.1)


def restore_with_rto(source: Cluster, target: restore_ops.Target) -> tuple[float, float, restore_ops.RestoreResult]:
    """(seconds to the first acknowledged write, seconds of the whole restore, result)."""
    down(COPY)
    stop, found = threading.Event(), []  # type: ignore[var-annotated]
    poller = threading.Thread(target=first_ack, args=(COPY, BASE[COPY], stop, found), daemon=True)
    began = time.time()
    poller.start()
    result = restore_ops.restore(source, Cluster(COPY), target, BASE[COPY])
    poller.join(60)
    stop.set()
    return (found[0] - began if found else float("nan")), time.time() - began, result


def pgbackrest_restore_seconds(cluster: Cluster) -> float:
    """pgBackRest's own restore step, from its log on the node that bootstrapped."""
    for path in sorted(cluster.layout.logs.glob("pgbackrest-*/*-restore.log")):
        m = re.findall(r"restore command end: completed successfully \((\d+)ms\)", path.read_text())
        if m:
            return int(m[-1]) / 1000
    return float("nan")


# --- the measurements ------------------------------------------------------------------------------


def throughput(source: Cluster, work: Path, rows: list[str]) -> None:
    leader = backup_ops.primary_of(source)
    began = time.monotonic()
    b = backup_ops.take_backup(source, "full")
    seconds = time.monotonic() - began
    size = b.size / 2**20
    rows.append(f"| `pgha backup --type full` (pgBackRest, lz4, 2 processes) | {size:.0f} MiB | {seconds:.1f} s | "
                f"{size / seconds:.0f} MiB/s | {b.stored / 2**20:.0f} MiB stored |")
    pgdata = source.backend().host_layout(leader).pgdata(leader)
    repl = source.clients.node_target(leader)
    params = psycopg.conninfo.conninfo_to_dict(repl.dsn)
    pgpass = work / "pgpass"
    pgpass.write_text(f"*:*:*:replicator:{source.secrets.replication_password}\n")
    pgpass.chmod(0o600)
    bb = work / "basebackup"
    seconds = timed("pg_basebackup", lambda: subprocess.run(
        [f"{PG_BIN}/pg_basebackup", "-h", str(params["host"]), "-p", str(params["port"]), "-U", "replicator",
         "-D", str(bb), "-X", "stream", "-c", "fast"], env={"PGPASSFILE": str(pgpass), "PATH": "/usr/bin:/bin"},
        check=True, capture_output=True))
    bb_size = sum(f.stat().st_size for f in bb.rglob("*") if f.is_file()) / 2**20
    rows.append(f"| pg_basebackup -X stream -c fast (uncompressed) | {bb_size:.0f} MiB | {seconds:.1f} s | "
                f"{bb_size / seconds:.0f} MiB/s | |")
    shutil.rmtree(bb)
    cp = work / "cp"
    seconds = timed("cp -a", lambda: subprocess.run(["cp", "-a", str(pgdata), str(cp)], check=True))
    cp_size = sum(f.stat().st_size for f in cp.rglob("*") if f.is_file()) / 2**20
    rows.append(f"| cp -a of the primary's data directory (with its pg_wal) | {cp_size:.0f} MiB | {seconds:.1f} s | "
                f"{cp_size / seconds:.0f} MiB/s | |")
    shutil.rmtree(cp)


def archiving_cost(source: Cluster, plain: Cluster, scale: int, seconds: int) -> list[str]:
    tps: dict[str, list[float]] = {SOURCE: [], PLAIN: []}
    for name in (SOURCE, PLAIN, PLAIN, SOURCE):
        cluster = source if name == SOURCE else plain
        with psycopg.connect(cluster.clients.entrypoint_dsn(), autocommit=True) as conn:
            conn.execute("VACUUM pgbench_branches, pgbench_tellers")
            conn.execute("TRUNCATE pgbench_history")
            conn.execute("CHECKPOINT")
        out = pgbench(cluster, "-n", "-c", "4", "-j", "2", "-T", str(seconds))
        m = re.search(r"tps = ([0-9.]+)", out)
        tps[name].append(float(m.group(1)) if m else float("nan"))
        print(f"  TPC-B {name}: {tps[name][-1]:.0f} tps", flush=True)
    on, off = statistics.mean(tps[SOURCE]), statistics.mean(tps[PLAIN])
    return [f"| archiving on (pgBackRest archive-push) | {on:.0f} | {', '.join(f'{t:.0f}' for t in tps[SOURCE])} |",
            f"| archiving off (`--no-backup`) | {off:.0f} | {', '.join(f'{t:.0f}' for t in tps[PLAIN])} |",
            f"| cost | {100 * (off - on) / off:.1f} % | |"]


def pitr_round(source: Cluster, k: int) -> str:
    writer = Writer(source).start()
    time.sleep(3)
    target = now()
    time.sleep(2)
    writer.finish()
    t = target.timestamp()
    acked_before = {i for i, _, acked in writer.acks if acked < t}
    sent_after = {i for i, sent, _ in writer.acks if sent > t}
    in_flight = len(writer.acks) - len(acked_before) - len(sent_after)
    _, seconds, _ = restore_with_rto(source, restore_ops.Target("time", time=target))
    present = ids_in(Cluster(COPY))
    missing = sorted(acked_before - present)
    extra = sorted(present & sent_after)
    down(COPY)
    verdict = "exact" if not missing and not extra else "NOT EXACT"
    print(f"  PITR {k}: {len(acked_before)} before, {len(missing)} missing, {len(extra)} after present: {verdict}",
          flush=True)
    return (f"| {k} | {len(acked_before)} | {len(sent_after)} | {in_flight} | {len(missing)} | {len(extra)} | "
            f"{seconds:.1f} s | {verdict} |")


def disaster(source: Cluster) -> list[str]:
    writer = Writer(source).start()  # it keeps writing through the same entrypoint all along
    time.sleep(10)
    backend = source.backups_backend()
    nodes = source.spec.node_names
    for node in nodes:
        backend.kill_node(node)  # type: ignore[attr-defined]
    fault = time.time()
    for node in nodes:  # every data directory lost, as the drill's disaster fault does
        if backend.set_aside_data(node, f"lost-{node}"):
            backend.remove_set_aside(f"lost-{node}")
    began = time.time()
    result = restore_ops.restore_in_place(source, restore_ops.Target("latest"))
    time.sleep(2)
    writer.finish()
    before = {i: acked for i, _, acked in writer.acks if acked < fault}
    after = [acked for _, _, acked in writer.acks if acked >= fault]
    present = ids_in(source)
    missing = sorted(set(before) - present)
    lost_after = sum(1 for i, _, acked in writer.acks if acked >= fault and i not in present)
    oldest = fault - min(before[i] for i in missing) if missing else 0.0
    rto = min(after) - fault if after else float("nan")
    print(f"  disaster: {len(before)} acknowledged before, {len(missing)} missing; RTO {rto:.1f} s", flush=True)
    return [f"| writes acknowledged before every node was lost | {len(before)} |",
            f"| of those missing after the restore (RPO) | {len(missing)}"
            + (f": ids {missing[0]}..{missing[-1]}, the oldest acknowledged {oldest:.1f} s before the loss"
               if missing else "") + " |",
            f"| writes acknowledged after the restore, then missing (must be 0) | {lost_after} |",
            f"| RTO: loss → first write acknowledged through the same entrypoint | {rto:.1f} s |",
            f"| `pgha restore --in-place --latest` on its own (stop, restore, replicas, a new full backup) | "
            f"{time.time() - began - 2:.1f} s ({result.seconds:.1f} s by its own clock) |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: about 1 GB)")
    parser.add_argument("--pitr-rounds", type=int, default=10)
    parser.add_argument("--tps-seconds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    home = Path(tempfile.mkdtemp(prefix="pgha-bench-backup-", dir="/tmp"))
    home.chmod(0o755)
    os.environ["PGHA_HOME"] = str(home)
    work = Path(tempfile.mkdtemp(prefix="pgha-bench-work-", dir="/tmp"))
    started = now()
    try:
        print("clusters: one archiving, one not", flush=True)
        source, plain = up(SOURCE), up(PLAIN, backup=False)
        init = timed(f"pgbench -i -s {args.scale} (archiving)", lambda: pgbench(source, "-i", "-q", "-s",
                                                                                str(args.scale)))
        timed(f"pgbench -i -s {args.scale} (not archiving)", lambda: pgbench(plain, "-i", "-q", "-s", str(args.scale)))
        through: list[str] = []
        throughput(source, work, through)
        print("restore --latest (source intact)", flush=True)
        rto, restore_s, _ = restore_with_rto(source, restore_ops.Target("latest"))
        pgbr = pgbackrest_restore_seconds(Cluster(COPY))
        newest = source.repo_info(source.spec.node_names[0]).newest
        size = newest.size / 2**20 if newest else float("nan")
        through.append(f"| pgBackRest's restore step inside `pgha restore` | {size:.0f} MiB | {pgbr:.1f} s | "
                       f"{size / pgbr:.0f} MiB/s | |")
        down(COPY)
        print("verify-backup", flush=True)
        verified = verify_backup.verify_backup(source)
        print("archiving's cost", flush=True)
        cost = archiving_cost(source, plain, args.scale, args.tps_seconds)
        down(PLAIN)
        print("PITR rounds", flush=True)
        pitr = [pitr_round(source, k + 1) for k in range(args.pitr_rounds)]
        print("disaster", flush=True)
        dr = disaster(source)
    finally:
        for name in (COPY, PLAIN, SOURCE):
            try:
                down(name)
            except Exception as e:
                print(f"  could not remove {name}: {e}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    exact = sum(1 for r in pitr if r.endswith("| exact |"))
    text = "\n".join([
        "# Backups and point-in-time recovery (pgBackRest)",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on this machine (2 cores), default profile, local backend; "
        f"pgbench scale {args.scale} (initialised in {init:.0f} s with archiving on). "
        "Reproduce: `.venv/bin/python bench/backup.py"
        + (f" --scale {args.scale}" if args.scale != 70 else "")
        + (f" --pitr-rounds {args.pitr_rounds}" if args.pitr_rounds != 10 else "")
        + "`. How each figure is taken: the docstring of `bench/backup.py`.",
        "",
        "## Throughput",
        "",
        "| copy | data | time | rate | note |",
        "|---|---|---|---|---|",
        *through,
        "",
        f"`pgha restore --latest --as` with the source intact: first write acknowledged by the restored "
        f"cluster {rto:.1f} s after the command started; the command itself {restore_s:.1f} s (it also takes the "
        f"new cluster's first full backup).",
        "",
        "## `pgha verify-backup`",
        "",
        f"Backup {verified.backup.label} ({verified.backup.size / 2**20:.0f} MiB): restored in "
        f"{verified.restore_s:.1f} s, consistent and promoted {verified.recover_s:.1f} s later, pg_amcheck over "
        f"{verified.relations_checked} relations ({verified.pages_checked * 8 / 1024:.0f} MiB) in "
        f"{verified.amcheck_s:.1f} s "
        f"({'no corruption' if verified.amcheck_ok else 'CORRUPTION'}), {verified.tables} tables and "
        f"{verified.total_rows} rows counted; {verified.total_s:.1f} s in all.",
        "",
        f"## What archiving costs a write load (pgbench TPC-B, -c 4 -j 2, {args.tps_seconds} s per run, ABBA)",
        "",
        "| cluster | mean TPS | runs |",
        "|---|---|---|",
        *cost,
        "",
        f"## Point-in-time restore exactness ({exact} of {len(pitr)} rounds exact)",
        "",
        "| round | acknowledged before T | sent after T | in flight at T | missing (must be 0) | "
        "present after T (must be 0) | restore | verdict |",
        "|---|---|---|---|---|---|---|---|",
        *pitr,
        "",
        "## Disaster: every node lost (killed, data directory deleted), restored in place from the repository",
        "",
        "| | |",
        "|---|---|",
        *dr,
        "",
    ])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
