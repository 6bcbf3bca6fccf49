"""`pgha verify-backup`: prove that a backup restores. It is restored into a scratch instance
inside the cluster's directory, recovered to consistency and promoted, checked with pg_amcheck
(every heap and B-tree index of every database), its tables counted, and removed again.

The scratch instance listens on no TCP port (a socket in its own directory only), archives
nothing, logs to its own file, and waits for no synchronous standby: nothing it does reaches the
cluster or its repository, which it only reads.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pgha.cluster import BACKUP_TIMEOUT, Cluster, ClusterError, journaled
from pgha.errors import tail
from pgha.model.backup_info import Backup
from pgha.model.topology import topology
from pgha.render.backup import backup_pgpass
from pgha.render.patroni import PG_BIN_DIR
from pgha.security.service_user import service_account
from pgha.state import procs
from pgha.state.files import write_file
from pgha.state.ownership import NotOursError, remove_scratch_dir, scratch_dir
from pgha.state.secrets import SUPERUSER

log = logging.getLogger(__name__)

SCRATCH_PORT = 5432  # names the socket file only: the instance listens on no TCP port
START_TIMEOUT = 3600.0
QUERY_TIMEOUT = 3600.0
COUNT_SQL = ("SELECT format('%I.%I', n.nspname, c.relname), (xpath('/row/c/text()', query_to_xml("
             "format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint "
             "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
             "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
             "ORDER BY 1")


@dataclass(frozen=True)
class Verified:
    backup: Backup
    restore_s: float
    recover_s: float
    amcheck_s: float
    total_s: float
    amcheck_ok: bool
    amcheck_output: str
    relations_checked: int
    pages_checked: int  # 8 KiB each
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # database -> table -> rows

    @property
    def tables(self) -> int:
        return sum(len(t) for t in self.rows.values())

    @property
    def total_rows(self) -> int:
        return sum(sum(t.values()) for t in self.rows.values())


def _instance_name(backup: Backup) -> str:
    return f"verify-{backup.label.lower()}"


@journaled
def verify_backup(cluster: Cluster, label: str | None = None) -> Verified:
    spec = cluster.spec
    node = spec.node_names[0]
    repo = cluster.repo_info(node)
    if not repo.backups:
        raise ClusterError(f"the repository of {cluster.name!r} holds no backup to verify")
    backup = repo.newest if label is None else repo.find(label)
    if backup is None:
        raise ClusterError(f"--set: no backup labelled {label!r} (`pgha backups --name {cluster.name}` lists them)")
    instance = _instance_name(backup)
    try:
        scratch = scratch_dir(cluster.home, cluster.name, instance)
    except NotOursError as e:
        raise ClusterError(str(e)) from None
    run_as = service_account()
    began = time.monotonic()
    remove_scratch_dir(cluster.home, cluster.name, instance)  # what an interrupted run left
    data, run = scratch / "data", scratch / "run"
    for d in (data, run):
        d.mkdir(parents=True)
    cluster.layout.scratch.chmod(0o700)
    procs.ensure_owner(cluster.layout.scratch, run_as)
    data.chmod(0o700)
    account = Account(run_as, topology(spec).place(node).netns)
    started = False
    try:
        log.info(f"restoring backup {backup.label} ({backup.type}) into a scratch instance in {scratch}")
        cluster.pgbackrest(node, [f"--pg1-path={data}", f"--set={backup.label}", "--type=immediate",
                                  "--target-action=promote", "--no-delta", "restore"], BACKUP_TIMEOUT)
        restored = time.monotonic()
        _write_login(run, cluster.secrets.superuser_password, run_as)
        env = _env(run)
        # Its log outlives it, beside the cluster's own.
        server_log = cluster.layout.logs / f"{instance}.log"
        _pg_ctl(["start", "-w", "-t", str(int(START_TIMEOUT)), "-l", str(server_log), "-o", _server_options(run)],
                data, env, account, server_log)
        started = True
        _wait_promoted(run, env, account)
        recovered = time.monotonic()
        log.info(f"the scratch instance is consistent and promoted after {recovered - restored:.1f} s; "
                 f"running pg_amcheck on every database")
        check = _run([f"{PG_BIN_DIR}/pg_amcheck", "--all", "--install-missing", "--progress", "-h", str(run),
                      "-p", str(SCRATCH_PORT), "-U", SUPERUSER], env, account, QUERY_TIMEOUT)
        checked = time.monotonic()
        rows = _count_rows(run, env, account)
    finally:
        if started:
            _pg_ctl(["stop", "-m", "immediate", "-w"], data, _env(run), account, check=False)
        remove_scratch_dir(cluster.home, cluster.name, instance)
        log.info(f"the scratch instance of backup {backup.label} is stopped and removed")
    relations, pages = amcheck_progress(check.stdout + check.stderr)
    verified = Verified(backup, restored - began, recovered - restored, checked - recovered, time.monotonic() - began,
                        check.returncode == 0, (check.stdout + check.stderr).strip(), relations, pages, rows)
    log.info(f"backup {backup.label}: pg_amcheck {'found no corruption' if verified.amcheck_ok else 'FAILED'} "
             f"in {relations} relations ({pages * 8 / 1024:.0f} MiB); {verified.tables} tables, "
             f"{verified.total_rows} rows; "
             f"{verified.total_s:.1f} s in all")
    return verified


def _server_options(run: Path) -> str:
    # Over the restored configuration (the node's, as Patroni wrote it): nothing of the cluster's.
    settings = {"listen_addresses": "''", "port": str(SCRATCH_PORT), "unix_socket_directories": f"'{run}'",
                "archive_mode": "off", "logging_collector": "off", "synchronous_standby_names": "''",
                "primary_conninfo": "''", "ssl": "off", "hot_standby": "on",
                "wal_level": "replica", "shared_buffers": "128MB",
                "hba_file": f"'{run / 'pg_hba.conf'}'"}
    return " ".join(f"-c {k}={v}" for k, v in settings.items())


def _write_login(run: Path, password: str, run_as: procs.RunAs) -> None:
    """The scratch instance admits the superuser over its socket only, with the cluster's password."""
    write_file(run / "pgpass", backup_pgpass("*", password))
    write_file(run / "pg_hba.conf", f"local all {SUPERUSER} scram-sha-256\n")
    procs.ensure_owner(run, run_as)


def _env(run: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PGPASSFILE": str(run / "pgpass"), "PGCONNECT_TIMEOUT": "10"}


@dataclass(frozen=True)
class Account:
    """Who the scratch instance's commands run as, and where: inside the first node's network
    namespace when it has one (netns), so that its restore_command reaches the repository host."""

    run_as: procs.RunAs
    netns: str | None = None


def _run(argv: list[str], env: dict[str, str], run_as: Account,
         timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return procs.run_as_account(argv, run_as=run_as.run_as, env=env, timeout=timeout, netns=run_as.netns)
    except FileNotFoundError:
        raise ClusterError(f"{argv[0]} not found: install it with `apt-get install postgresql-15`") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{Path(argv[0]).name} did not finish in {timeout:.0f} s") from None


def _pg_ctl(args: list[str], data: Path, env: dict[str, str], run_as: Account, server_log: Path | None = None,
            check: bool = True) -> None:
    result = _run([f"{PG_BIN_DIR}/pg_ctl", "-D", str(data), *args], env, run_as, START_TIMEOUT)
    if check and result.returncode != 0:
        said = tail(server_log) if server_log else ""
        last = next((ln for ln in reversed(said.splitlines()) if "FATAL" in ln or "ERROR" in ln), "")
        first = last or (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()[-1]
        raise ClusterError(f"the scratch instance did not {args[0]}: {first.strip()} (see {server_log})", said)


def _psql(run: Path, env: dict[str, str], run_as: Account, sql: str, db: str = "postgres") -> list[list[str]]:
    result = _run([f"{PG_BIN_DIR}/psql", "-h", str(run), "-p", str(SCRATCH_PORT), "-U", SUPERUSER, "-d", db, "-XAtq",
                   "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql], env, run_as, QUERY_TIMEOUT)
    if result.returncode != 0:
        raise ClusterError(f"the scratch instance refused a query: {result.stderr.strip().splitlines()[-1:]}")
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def _wait_promoted(run: Path, env: dict[str, str], run_as: Account) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _psql(run, env, run_as, "SELECT pg_is_in_recovery()") == [["f"]]:
            return
        time.sleep(0.2)
    raise ClusterError(f"the scratch instance did not finish recovery in {START_TIMEOUT:.0f} s")


def _count_rows(run: Path, env: dict[str, str], run_as: Account) -> dict[str, dict[str, int]]:
    dbs = [r[0] for r in _psql(run, env, run_as, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")]
    return {db: {table: int(n) for table, n in _psql(run, env, run_as, COUNT_SQL, db)} for db in dbs}


def amcheck_progress(output: str) -> tuple[int, int]:
    """(relations, pages) pg_amcheck --progress reports last: 'N/N relations (100%), P/P pages (100%)'."""
    relations = re.findall(r"(\d+)/(\d+) relations", output)
    pages = re.findall(r"(\d+)/(\d+) pages", output)
    return (int(relations[-1][0]) if relations else 0, int(pages[-1][0]) if pages else 0)
