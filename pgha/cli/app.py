"""The `pgha` command: parses, calls Cluster / checks / drill, prints. Nothing else lives here."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pgha.drill.faults import FAULTS
from pgha.drill.faults import help_text as fault_help
from pgha.errors import PghaError
from pgha.model import names
from pgha.model.names import cluster_name_problem, has_control_characters
from pgha.state.journal import shown_by

# Commands import what they use when they run: a bad name or `--help` answers in a fraction of
# the time the whole of pgha (pydantic, psycopg, cryptography) takes to import.
if TYPE_CHECKING:
    from rich.status import Status

    from pgha.cluster import Cluster
    from pgha.net.probe import ClusterState
    from pgha.ops import backups
    from pgha.ops import monitoring as monitoring_ops

try:  # Typer vendors Click since 0.2x; before that it used Click itself.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[assignment]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A highly available PostgreSQL cluster (Patroni + DCS + HAProxy) in one command.")
out = Console()
# `pgha status` shows the certificates red this long before the first expires.
EXPIRY_WARNING_DAYS = 30
err = Console(stderr=True)
log = logging.getLogger(__name__)



class UserError(PghaError):
    """Bad input or a failed operation: one line, non-zero exit, no traceback."""


def _checked_name(value: str) -> str:
    """Every command's --name passes here before any path is built from it."""
    problem = cluster_name_problem(value)
    if problem is not None:
        raise UserError(f"name: {problem}")
    return value


NameOpt = Annotated[str, typer.Option("--name", help="Which cluster.", callback=_checked_name)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _cluster(name: str) -> Cluster:
    from pgha.cluster import Cluster

    return Cluster(name)


class _Spinner(logging.Handler):
    """pgha's decisions (pgha.state.journal) shown while a long command runs: the spinner names
    the latest; each is printed with its time unless the command prints JSON."""

    def __init__(self, status: Status, quiet: bool) -> None:
        super().__init__()
        self.status, self.quiet = status, quiet

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.status.update(msg)
        if not self.quiet:
            out.log(msg)


@contextlib.contextmanager
def _progress(title: str, quiet: bool = False) -> Iterator[None]:
    """A spinner titled `title` that shows every decision pgha logs meanwhile."""
    with out.status(title) as status, shown_by(_Spinner(status, quiet)):
        yield


@app.command()
def up(
    name: NameOpt = "default",
    profile: Annotated[str | None, typer.Option(help="default | seed (the lab as published)")] = None,
    config: Annotated[Path | None, typer.Option(help="A pgha.yaml spec file.")] = None,
    nodes: Annotated[int | None, typer.Option(help="Number of Patroni nodes (1-9).")] = None,
    dcs: Annotated[str | None, typer.Option(help="etcd | zookeeper")] = None,
    dcs_members: Annotated[int | None, typer.Option(help="DCS members: 1 or 3.")] = None,
    base_port: Annotated[int | None, typer.Option(help="Shift every port of the cluster.")] = None,
    backend: Annotated[str | None, typer.Option(help="local (processes on loopback) | netns (a network "
                                                     "namespace per host; root) | compose (containers)")] = None,
    engine: Annotated[str | None, typer.Option(help="docker | podman: the compose backend's container engine "
                                                   "(default: the one installed and running, Docker first).")]
    = None,
    tls: Annotated[bool | None, typer.Option("--tls/--no-tls", help="TLS between the cluster's hosts, with a CA "
                                             "of its own (default: on for netns, off on loopback).")] = None,
    pooler: Annotated[bool | None, typer.Option("--pooler/--no-pooler", help="PgBouncer beside every HAProxy, "
                                                "paused around planned hand-overs (default: on, off for seed).")]
    = None,
    backup: Annotated[bool | None, typer.Option("--backup/--no-backup", help="WAL archived and backed up with "
                                                "pgBackRest, a first full backup at once (default: on where the "
                                                "backend keeps a repository, off for seed).")] = None,
    fencing: Annotated[bool | None, typer.Option("--fencing/--no-fencing", help="A fencing guard beside every "
                                                 "HAProxy: a lost primary is killed for sure, then replaced in "
                                                 "seconds instead of after Patroni's ttl (default: on where the "
                                                 "backend can fence and the DCS is etcd, off for seed).")] = None,
    monitoring: Annotated[bool | None, typer.Option("--monitoring/--no-monitoring", help="Prometheus beside the "
                                                    "first HAProxy, scraping every component and evaluating pgha's "
                                                    "alert rules (default: on for the local and netns backends, "
                                                    "off for seed).")] = None,
    timeout: Annotated[float, typer.Option(min=1, max=3600, help="Seconds to wait for a healthy cluster.")] = 180.0,
) -> None:
    """Start the cluster (or do nothing if it is already up and healthy)."""
    from pgha.model.spec import build_spec, load_spec_file

    shaping = any(v is not None
                  for v in (profile, config, nodes, dcs, dcs_members, base_port, backend, engine, tls, pooler, backup,
                           fencing, monitoring))
    cluster = _cluster(name)
    requested = None
    if shaping or not cluster.exists:
        file_settings = load_spec_file(config) if config else {}
        dcs_over: dict[str, Any] = {}
        if dcs is not None:
            dcs_over["kind"] = dcs
        if dcs_members is not None:
            dcs_over["members"] = dcs_members
        overrides: dict[str, Any] = {"name": name, "profile": profile, "nodes": nodes, "base_port": base_port,
                                     "backend": backend, "engine": engine, "tls": tls}
        if dcs_over:
            overrides["dcs"] = dcs_over
        if pooler is not None:
            overrides["pooler"] = {**(file_settings.get("pooler") or {}), "enabled": pooler}
        if backup is not None:
            overrides["backup"] = {**(file_settings.get("backup") or {}), "enabled": backup}
        if fencing is not None:
            overrides["fencing"] = {**(file_settings.get("fencing") or {}), "enabled": fencing}
        if monitoring is not None:
            overrides["monitoring"] = {**(file_settings.get("monitoring") or {}), "enabled": monitoring}
        requested = build_spec(profile, file_settings, overrides)
    with _progress(f"bringing up cluster {name!r}"):
        result = cluster.up(requested, timeout=timeout)
    if not result.changed:
        out.print(f"cluster {name!r} is already up and healthy; nothing changed")
    else:
        out.print(f"cluster {name!r} is healthy after {result.seconds:.1f} s")
    _print_state(cluster, result.state)


@app.command()
def status(name: NameOpt = "default", as_json: JsonOpt = False) -> None:
    """Members, roles, lag, DCS health and HAProxy's view (exit 1 when not healthy)."""
    from pgha.checks.fencing import check_fencing
    from pgha.net.probe import health_problem

    cluster = _cluster(name)
    state = cluster.state()
    unhealthy = health_problem(cluster.spec, state)
    problem = None if unhealthy is None else unhealthy.message
    expiry = cluster.certificates_expire()
    days = None if expiry is None else (expiry[1] - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
    if problem is None and days is not None and days <= 0:
        problem = f"the certificate of {expiry[0] if expiry else '?'} has expired: run `pgha rotate-certs`"
    view, backup_error = _backups_of(cluster)
    fence = check_fencing(cluster, state)
    watched, watch_error = _monitoring_of(cluster)
    if as_json:
        tls = None if expiry is None else {"earliest_expiry": expiry[1].isoformat(), "certificate": expiry[0],
                                           "days_left": round(days or 0, 1)}
        backups_json = view.to_json() if view else ({"error": backup_error} if backup_error else None)
        fencing_json = {"armed": fence.status == "PASS", "enabled": cluster.spec.fencing.enabled,
                        "evidence": fence.evidence}
        monitoring_json = watched.to_json() if watched else ({"error": watch_error} if watch_error else None)
        print(json.dumps({**state.to_json(), "tls": tls, "backups": backups_json, "fencing": fencing_json,
                          "monitoring": monitoring_json, "healthy": problem is None, "problem": problem}, indent=2))
    else:
        _print_state(cluster, state)
        if expiry is not None and days is not None:
            style = "red" if days < EXPIRY_WARNING_DAYS else "green"
            out.print(f"certificates: the first to expire is {expiry[0]}'s, on {expiry[1]:%Y-%m-%d %H:%M} UTC "
                      f"([{style}]{days:.0f} days[/]); renew them all with `pgha rotate-certs --name {name}`")
        if view is not None:
            out.print(f"backups: {_backups_sentence(view)}")
        elif backup_error:
            out.print(f"[red]backups:[/] {backup_error}")
        style = {"PASS": "green", "FAIL": "red"}.get(fence.status, "yellow")
        armed = {"PASS": "armed", "FAIL": "NOT armed"}.get(fence.status, "off")
        out.print(f"fencing: [{style}]{armed}[/]: {fence.evidence}" if fence.status != "SKIP"
                  else f"fencing: {fence.evidence}")
        if watched is not None:
            out.print(f"monitoring: {_monitoring_sentence(watched)}")
        elif watch_error:
            out.print(f"[red]monitoring:[/] {watch_error}")
        out.print("[green]healthy[/]" if problem is None else f"[red]not healthy:[/] {problem}")
    raise typer.Exit(0 if problem is None else 1)


def _monitoring_of(cluster: Cluster) -> tuple[monitoring_ops.MonitoringView | None, str | None]:
    """What the cluster's Prometheus says; (None, why) when it does not answer, (None, None)
    for a cluster without one."""
    from pgha.ops import monitoring as monitoring_ops

    if not cluster.spec.monitoring.enabled:
        return None, None
    try:
        return monitoring_ops.monitoring_view(cluster.reach, cluster.secrets.stats_password), None
    except monitoring_ops.MonitoringError as e:
        return None, str(e)


def _monitoring_sentence(view: monitoring_ops.MonitoringView) -> str:
    targets = f"{view.targets - len(view.down)} of {view.targets} targets up at {view.url}"
    firing = view.firing
    if not firing:
        return f"{targets}; no alert firing"
    return f"{targets}; [red]firing:[/] " + "; ".join(f"{a.name} ({a.summary})" for a in firing)


def _backups_of(cluster: Cluster) -> tuple[backups.BackupsView | None, str | None]:
    """The repository and the archive for `status`; (None, why) when they cannot be read, and
    (None, None) for a cluster that keeps no backups."""
    from pgha.ops import backups

    if not cluster.spec.backup.enabled:
        return None, None
    try:
        return backups.backups_view(cluster), None
    except PghaError as e:
        return None, str(e)


def _backups_sentence(view: backups.BackupsView) -> str:
    newest = view.repo.newest
    if newest is None:
        return "[red]none in the repository yet[/]"
    age = datetime.datetime.now(datetime.UTC) - newest.stopped
    archive = f"[red]archive failing: {view.problem}[/]" if view.problem else "WAL archive working"
    earliest = view.repo.earliest_restorable
    return (f"{len(view.repo.backups)} in the repository, the newest {newest.label} ({newest.type}, "
            f"{age.total_seconds() / 3600:.1f} h old); restorable from {earliest:%Y-%m-%d %H:%M:%S} UTC; {archive}")


@app.command()
def top(name: NameOpt = "default",
        once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
        interval: Annotated[float, typer.Option(min=1, max=60, help="Seconds between frames.")] = 2.0) -> None:
    """A live view of the cluster from its Prometheus: roles, lag, WAL written, sessions, alerts
    (Ctrl-C leaves)."""
    import time

    from rich.live import Live

    from pgha.ops import monitoring as monitoring_ops

    cluster = _cluster(name)
    if not cluster.spec.monitoring.enabled:
        raise UserError(f"cluster {name!r} runs no Prometheus (bring it up with --monitoring)")

    def frame() -> Any:
        from pgha.ops import top as top_ops

        spec = cluster.spec
        try:
            view = top_ops.read_top(cluster.reach, cluster.secrets.stats_password, spec.patroni_scope,
                                    spec.node_names)
        except monitoring_ops.MonitoringError as e:
            if once:
                raise UserError(str(e)) from None
            return Text(f"{e} (trying again every {interval:g} s)", style="red")
        return _top_frame(view, interval)

    if once:
        out.print(frame())
        return
    with Live(frame(), console=out, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(frame(), refresh=True)
        except KeyboardInterrupt:
            pass


def _top_frame(view: Any, interval: float) -> Any:
    from rich.console import Group

    from pgha.ops.top import STEP_S, WINDOW_S, human_bytes, sparkline

    stamp = datetime.datetime.fromtimestamp(view.at, datetime.UTC)
    members = Table(title=f"cluster {view.scope} at {stamp:%H:%M:%S} UTC, every {interval:g} s")
    for col in ("member", "role", "timeline", "lag", f"lag, last {WINDOW_S / 60:.0f} min ({STEP_S:.0f} s a mark)"):
        members.add_column(col)
    styles = {"primary": "bold green", "silent": "red", "stopped": "red"}
    for m in view.members:
        members.add_row(m.name, m.role, str(m.timeline or ""), human_bytes(m.lag_bytes), sparkline(m.lag_history),
                        style=styles.get(m.role, ""))
    wal = view.wal_rate[-1] if view.wal_rate else None
    lines: list[Table | Text] = [members,
             Text(f"WAL written by the primary: {human_bytes(wal)}/s  {sparkline(view.wal_rate)}"),
             Text("sessions through HAProxy: " + (", ".join(f"{h} {n:.0f}" for h, n in view.sessions.items()) or "-")
                  + f"  {sparkline(view.session_history)}"),
             Text("HAProxy: " + (", ".join(f"{h} {'up' if ok else 'DOWN'}" for h, ok in view.haproxies_up.items())
                                 or "not scraped")
                  + "; DCS: " + (", ".join(f"{d} {'up' if ok else 'DOWN'}" for d, ok in view.dcs.items())
                                 or "not scraped"))]
    firing = [a for a in view.alerts if a.state == "firing"]
    pending = [a for a in view.alerts if a.state != "firing"]
    lines.append(Text.assemble(("firing: ", "red"), "; ".join(f"{a.name} ({a.summary})" for a in firing))
                 if firing else Text("no alert firing", style="green"))
    if pending:
        lines.append(Text("pending: " + "; ".join(f"{a.name} ({a.summary})" for a in pending), style="yellow"))
    return Group(*lines)


@app.command()
def switchover(name: NameOpt = "default",
               to: Annotated[str | None, typer.Option("--to", help="The node to hand over to (default: the one "
                                                                    "Patroni picks; with synchronous_mode, the "
                                                                    "synchronous standby).")] = None,
               timeout: Annotated[float, typer.Option(min=1, max=3600, help="Seconds to wait for writes on the new "
                                                                            "primary and a healthy cluster.")] = 120.0,
               ) -> None:
    """Hand the primary role over, planned, and wait until writes reach the new primary."""
    from pgha.ops import handover

    cluster = _cluster(name)
    with _progress(f"switching over cluster {name!r}"):
        result = handover.switchover(cluster, to, timeout)
    out.print(f"switched over from {result.old} to {result.new}: writes through the entrypoint reached "
              f"{result.new} after {result.writable_s:.2f} s; healthy again after {result.healthy_s:.1f} s")


@app.command()
def restart(name: NameOpt = "default",
            rolling: Annotated[bool, typer.Option("--rolling", help="Replicas first, then a planned hand-over "
                                                                   "(poolers paused), then the old primary: the "
                                                                   "primary is never down.")] = False,
            timeout: Annotated[float, typer.Option(min=1, max=3600, help="Seconds to wait for each node to be "
                                                                         "back and the cluster healthy.")] = 180.0,
            ) -> None:
    """Restart PostgreSQL on every node (e.g. after a setting that needs a restart)."""
    from pgha.ops import handover

    cluster = _cluster(name)
    with _progress(f"restarting cluster {name!r}"):
        result = handover.restart(cluster, rolling, timeout)
    how = f"; the primary moved from {result.hand_over[0]} to {result.hand_over[1]}" if result.hand_over else ""
    out.print(f"restarted {', '.join(result.order)} in {result.seconds:.1f} s{how}")


@app.command()
def resume(name: NameOpt = "default") -> None:
    """RESUME every pooler (after a hand-over that was interrupted while they were paused)."""
    from pgha.ops import handover

    done = handover.resume_poolers(_cluster(name))
    out.print(f"resumed: {', '.join(done)}")


@app.command("backup")
def backup_cmd(name: NameOpt = "default",
               kind: Annotated[str, typer.Option("--type", help="full | diff (what changed since the last full) "
                                                                "| incr (since the last backup of any type)")]
               = "full") -> None:
    """Take a backup with pgBackRest into the cluster's repository."""
    from pgha.ops import backups

    cluster = _cluster(name)
    with _progress(f"backing up cluster {name!r}"):
        b = backups.take_backup(cluster, kind)
    out.print(f"backup {b.label} ({b.type}) taken in {b.seconds:.0f} s: {b.size / 2**20:.1f} MiB of data, "
              f"{b.stored / 2**20:.1f} MiB stored; WAL {b.wal_start} to {b.wal_stop}")


@app.command("backups")
def backups_cmd(name: NameOpt = "default", as_json: JsonOpt = False) -> None:
    """The backups in the cluster's repository, and how far the WAL archive reaches."""
    from pgha.ops import backups

    view = backups.backups_view(_cluster(name))
    if as_json:
        print(json.dumps(view.to_json(), indent=2))
        return
    table = Table(title=f"backups of {name} (repository stanza {view.repo.stanza}: {view.repo.status})")
    for col in ("label", "type", "started (UTC)", "took", "data", "stored", "WAL start", "WAL stop"):
        table.add_column(col)
    for b in view.repo.backups:
        table.add_row(b.label, b.type, f"{b.started:%Y-%m-%d %H:%M:%S}", f"{b.seconds:.0f} s",
                      f"{b.size / 2**20:.1f} MiB", f"{b.stored / 2**20:.1f} MiB", b.wal_start, b.wal_stop)
    out.print(table)
    earliest = view.repo.earliest_restorable
    archived = view.archive.last_archived_time if view.archive else None
    out.print(f"restorable from {earliest:%Y-%m-%d %H:%M:%S} UTC" if earliest else "nothing to restore from yet",
              end="")
    out.print(f"; WAL archived until {archived:%Y-%m-%d %H:%M:%S} UTC" if archived else "")
    if view.problem:
        out.print(f"[red]archive:[/] {view.problem}")


@app.command("verify-backup")
def verify_backup_cmd(name: NameOpt = "default",
                      label: Annotated[str | None, typer.Option("--set", help="The backup to verify (a label from "
                                                                              "`pgha backups`; default: the newest).")]
                      = None) -> None:
    """Prove a backup restores: into a scratch instance, recovered, pg_amcheck'd, counted, removed."""
    from pgha.ops import verify_backup as verify

    cluster = _cluster(name)
    with _progress(f"verifying a backup of cluster {name!r}"):
        v = verify.verify_backup(cluster, label)
    b = v.backup
    out.print(f"backup {b.label} ({b.type}, {b.size / 2**20:.0f} MiB): restored in {v.restore_s:.1f} s, "
              f"consistent and promoted {v.recover_s:.1f} s later; pg_amcheck checked {v.relations_checked} "
              f"relations ({v.pages_checked * 8 / 1024:.0f} MiB) in {v.amcheck_s:.1f} s: "
              + ("no corruption" if v.amcheck_ok else "[red]CORRUPTION[/]"))
    for db, tables in v.rows.items():
        counted = ", ".join(f"{t} {n}" for t, n in tables.items()) or "no tables"
        out.print(f"  {db}: {counted}")
    out.print(f"{v.tables} tables, {v.total_rows} rows; the scratch instance is removed; {v.total_s:.1f} s in all")
    if not v.amcheck_ok:
        out.print(v.amcheck_output)
        raise typer.Exit(1)


@app.command("restore")
def restore_cmd(name: NameOpt = "default",
                as_name: Annotated[str | None, typer.Option("--as", help="The new cluster's name (default: "
                                                                          "NAME-restored).")] = None,
                to: Annotated[str | None, typer.Option("--to", help="Recover up to this time: "
                                                                    "'2026-12-07 17:41:53' (UTC) or ISO 8601.")] = None,
                to_lsn: Annotated[str | None, typer.Option("--to-lsn", help="Recover up to this LSN.")] = None,
                latest: Annotated[bool, typer.Option("--latest", help="Recover everything archived.")] = False,
                base_port: Annotated[int | None, typer.Option(help="The new cluster's base port "
                                                                   "(default: the source's + 100).")] = None,
                in_place: Annotated[bool, typer.Option("--in-place", help="Replace NAME's own data instead "
                                                       "(its current data is kept until the restored cluster "
                                                       "is healthy, and put back if it does not get there).")] = False,
                yes: Annotated[bool, typer.Option("--yes", help="Confirm --in-place.")] = False,
                ) -> None:
    """A new cluster beside NAME, restored from NAME's backups to a point in time (NAME is only read);
    with --in-place --yes, NAME itself."""
    from pgha.ops import restore as restore_ops

    target = restore_ops.parse_target(to, to_lsn, latest)
    if in_place:
        if as_name is not None or base_port is not None:
            raise UserError("--in-place restores NAME itself: --as and --base-port do not apply")
        if not yes:
            raise UserError(f"--in-place replaces the data of cluster {name!r} with its backups' as of "
                            f"{target.describe()}; add --yes to go ahead")
        cluster = _cluster(name)
        with _progress(f"restoring cluster {name!r} in place to {target.describe()}"):
            done = restore_ops.restore_in_place(cluster, target)
        out.print(f"cluster {name!r} restored in place to {target.describe()}; healthy after {done.seconds:.1f} s "
                  f"(a new timeline; the data it replaced is deleted)")
        _print_state(cluster, done.up.state)
        return
    if yes:
        raise UserError("--yes confirms --in-place; a restore beside NAME needs no confirmation")
    source = _cluster(name)
    new_name = as_name or f"{name}-restored"
    if not names.is_cluster_name(new_name):
        raise UserError(f"--as: the new cluster's name {names.CLUSTER_NAME_RULE} (got {new_name!r})")
    new = _cluster(new_name)
    with _progress(f"restoring cluster {name!r} as {new.name!r} to {target.describe()}"):
        result = restore_ops.restore(source, new, target, base_port)
    out.print(f"cluster {new.name!r} restored from {name!r} to {target.describe()}; healthy after "
              f"{result.seconds:.1f} s (it archives to a repository of its own)")
    _print_state(new, result.up.state)


@app.command("rotate-certs")
def rotate_certs(name: NameOpt = "default") -> None:
    """Renew every host's certificate from the cluster's CA while it runs (no restart)."""
    from pgha.ops import handover

    cluster = _cluster(name)
    with _progress(f"renewing the certificates of cluster {name!r}"):
        done = handover.rotate_certs(cluster)
    expiry = cluster.certificates_expire()
    until = f"; the first expires on {expiry[1]:%Y-%m-%d}" if expiry else ""
    out.print(f"renewed every certificate: {', '.join(done)}{until}")


def _print_state(cluster: Cluster, state: ClusterState) -> None:
    spec = cluster.spec
    members = Table(title=f"cluster {cluster.name} ({spec.profile}, scope {spec.patroni_scope})")
    for col in ("member", "address", "role", "state", "timeline", "lag (bytes)"):
        members.add_column(col)
    listed = {m.name for m in state.members}
    for m in state.members:
        style = "bold green" if m.is_leader else ""
        members.add_row(m.name, f"{m.host}:{m.port}", m.role, m.state, str(m.timeline or ""),
                        "" if m.lag is None else str(m.lag), style=style)
    for node in spec.node_names:
        if node not in listed:
            members.add_row(node, str(cluster.reach.postgres(node)), "-", "absent", "", "", style="red")
    out.print(members)
    dcs = Table(title=f"DCS ({spec.dcs.kind})")
    for col in ("member", "address", "health"):
        dcs.add_column(col)
    for d in state.dcs:
        dcs.add_row(d.name, d.address, d.detail, style="" if d.healthy else "red")
    out.print(dcs)
    hap = Table(title="HAProxy backends")
    for col in ("haproxy", "proxy", "port", "server", "status"):
        hap.add_column(col)
    ports = {("haproxy", "primary"): spec.ports.entrypoint_rw, ("haproxy", "replicas"): spec.ports.entrypoint_ro}
    ports.update({(f"haproxy{k}", "primary"): p for k, p in enumerate(spec.ports.entrypoint_rw_more, start=1)})
    for s in state.haproxy:
        hap.add_row(s.haproxy, s.proxy, str(ports.get((s.haproxy, s.proxy)) or ""), s.server, s.status,
                    style="green" if s.status == "UP" else "")
    if not state.haproxy:
        hap.add_row("-", "", "", "HAProxy not answering", style="red")
    out.print(hap)
    if state.poolers:
        pools = Table(title="PgBouncer (pooled read-write)")
        for col in ("pooler", "port", "state"):
            pools.add_column(col)
        for k, p in enumerate(state.poolers):
            what = (f"answering ({p.version}); {p.waiting} client(s) waiting for a server" if p.answered
                    else f"not answering: {p.error}")
            pools.add_row(p.name, str(spec.ports.pooler[k]) if k < len(spec.ports.pooler) else "", what,
                          style="green" if p.answered else "red")
        out.print(pools)
    for e in state.errors:
        out.print(f"[yellow]{e}[/]")


@app.command()
def check(name: NameOpt = "default", as_json: JsonOpt = False) -> None:
    """The lab's checks: replication, read-only replicas, routing, one primary, DCS."""
    from pgha.checks.lines import all_passed, run_checks

    cluster = _cluster(name)
    results = run_checks(cluster)
    if as_json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        table = Table(title=f"pgha check: cluster {name}")
        for col in ("#", "check", "result", "evidence"):
            table.add_column(col)
        colour = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
        for r in results:
            table.add_row(str(r.number), r.name, f"[{colour[r.status]}]{r.status}[/]", r.evidence)
        out.print(table)
    raise typer.Exit(0 if all_passed(results) else 1)


@app.command()
def down(name: NameOpt = "default",
         purge: Annotated[bool, typer.Option(help="Also delete the cluster's data.")] = False) -> None:
    """Stop everything the cluster started; --purge also deletes its directory."""
    cluster = _cluster(name)
    stopped = cluster.down(purge=purge)
    what = ", ".join(stopped) if stopped else "nothing was running"
    out.print(f"cluster {name!r} stopped ({what})" + ("; data deleted" if purge else ""))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ctl(ctx: typer.Context, name: NameOpt = "default") -> None:
    """Run patronictl against the cluster's own config, e.g. `pgha ctl list`."""
    from pgha.ops import patroni_tools

    cluster = _cluster(name)
    result = subprocess.run(patroni_tools.patronictl_argv(cluster, ctx.args), check=False)
    raise typer.Exit(result.returncode)


@app.command()
def connect(name: NameOpt = "default",
            ro: Annotated[bool, typer.Option("--ro", help="The read-only entrypoint.")] = False,
            admin: Annotated[bool, typer.Option("--admin", help="As the superuser (postgres) instead of the "
                                                          "application role.")] = False) -> None:
    """How to connect: psql through HAProxy, and the multi-host URI that needs no proxy."""
    from pgha.model.backend_kinds import backend_kind

    cluster = _cluster(name)
    spec = cluster.spec
    port = spec.ports.entrypoint_ro if ro else spec.ports.entrypoint_rw
    if port is None:
        raise UserError(f"cluster {name!r} has no read-only entrypoint (profile {spec.profile})")
    login = cluster.clients.admin if admin else cluster.clients.app
    pgpass = cluster.client_pgpass
    out.print(f"# through HAProxy ({'read-only' if ro else 'read-write'}), as {login.user}:")
    tls = "".join(f" {k}={v}" for k, v in cluster.clients.tls_parameters.items())
    print(f"PGPASSFILE={pgpass} psql 'host={spec.host} port={port} user={login.user} dbname={login.dbname}{tls}'")
    if spec.ports.pooler and not ro and not admin:
        out.print("# through the pooler (transactions; planned hand-overs are a wait, not an error):")
        print(f"PGPASSFILE={pgpass} psql 'host={spec.host} port={spec.ports.pooler[0]} user={login.user} "
              f"dbname={login.dbname}{tls}'")

    if backend_kind(spec.backend).direct_nodes_on is not None:
        out.print("# without a proxy (libpq picks " + ("a replica" if ro else "the primary") + " itself):")
    else:
        out.print("# over every HAProxy host (libpq moves on when one is lost):")
    print(f"PGPASSFILE={pgpass} psql '{cluster.clients.multihost_uri(readonly=ro, login=login)}'")
    out.print(f"# passwords: {cluster.layout.secrets_file} (mode 0600)")


@app.command(epilog=fault_help())
def drill(
    name: NameOpt = "default",
    fault: Annotated[str, typer.Option(help=f"{' | '.join(FAULTS)} (each below).")] = "stop",
    target: Annotated[str, typer.Option(help="What the fault hits; which targets a fault takes is listed below "
                                             "(primary and replica are resolved when the drill starts).")] = "primary",
    via: Annotated[str, typer.Option(help="haproxy | pooler | multihost")] = "haproxy",
    rate: Annotated[float, typer.Option(help="Writes per second (0.5-500).")] = 20.0,
    repeat: Annotated[int, typer.Option(min=1, max=100, help="Run the drill this many times.")] = 1,
    hold: Annotated[float | None, typer.Option(min=0, max=3600,
                                               help="Keep a held fault this many seconds after recovery.")] = None,
    soak: Annotated[str | None, typer.Option(help="Soak for this long (e.g. 90s, 10m): random faults one "
                                                  "after another under one continuous load.")] = None,
    faults: Annotated[str, typer.Option(help="Faults a soak picks from, comma-separated (any of the faults "
                                             "below).")] = "stop,kill,freeze",
    seed: Annotated[int | None, typer.Option(help="Random seed of a soak, to replay it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Inject a fault under a live write load; measure outage, lost writes, split-brain, rejoin."""
    from pgha.drill.run import DrillError, DrillOptions, run_drill, run_soak
    from pgha.report import build_report  # matplotlib: only where a report is drawn (~1 s to import)

    cluster = _cluster(name)
    options = DrillOptions(fault=fault, target=target, via=via, rate=rate, hold=hold)
    outcomes = []
    try:
        with _progress(f"drill {fault}", quiet=as_json):
            if soak is not None:
                soak_faults = [f.strip() for f in faults.split(",") if f.strip()]
                outcomes.append(run_soak(cluster, options, soak_faults, parse_duration(soak), seed))
            else:
                for i in range(repeat):
                    if repeat > 1:
                        log.info(f"drill {i + 1} of {repeat}")
                    outcomes.append(run_drill(cluster, options))
            for o in outcomes:
                _, html = build_report(o.run_dir)
                log.info(f"report: {html}")
    except DrillError as e:
        raise UserError(str(e)) from None
    if as_json:
        print(json.dumps([{"run": str(o.run_dir), "passed": o.passed,
                           "results": [r.__dict__ for r in o.results]} for o in outcomes], indent=2))
    else:
        for o in outcomes:
            _print_outcome(o)
    raise typer.Exit(0 if all(o.passed for o in outcomes) else 1)


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise UserError(f"soak: {text!r} is not a duration (e.g. 90s, 10m, 1h)") from None
    if not 10 <= seconds <= 7 * 24 * 3600:
        raise UserError("soak: must be between 10 s and 7 days")
    return seconds


def _print_outcome(outcome: Any) -> None:
    info = outcome.info
    table = Table(title=f"drill {info.fault} on {info.target} ({info.profile}, via {info.via}): "
                        f"primary {info.old_primary} -> {info.new_primary}")
    for col in ("checker", "result", "summary"):
        table.add_column(col)
    for r in outcome.results:
        table.add_row(r.name, "[green]PASS[/]" if r.passed else "[red]FAIL[/]", r.summary)
    out.print(table)
    out.print(f"run directory: {outcome.run_dir}")


@app.command()
def report(run: Annotated[Path | None, typer.Argument(help="A run directory (default: the latest).")] = None,
           name: NameOpt = "default") -> None:
    """(Re)render a drill run's report as Markdown and a self-contained HTML page."""
    from pgha.report import build_report  # matplotlib: only where a report is drawn

    if run is None:
        runs = sorted(p for p in _cluster(name).layout.runs.glob("*") if (p / "history.jsonl").exists())
        if not runs:
            raise UserError(f"cluster {name!r} has no drill runs yet (run `pgha drill --name {name}`)")
        run = runs[-1]
    if not (run / "history.jsonl").exists():
        raise UserError(f"{run} is not a drill run directory (no history.jsonl)")
    md, html = build_report(run)
    out.print(f"report: {md}\nreport: {html}")


render_app = typer.Typer(no_args_is_help=True, help="Write a deployment for somewhere else to run.")
app.add_typer(render_app, name="render")


@render_app.command("hosts")
def render_hosts(
    inventory: Annotated[Path, typer.Option(help="hosts.yaml: the machines and what each runs.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write one bundle per host into.")],
    root: Annotated[Path | None, typer.Option(help="Where bundles live on the hosts "
                                                   "(default /var/lib/pgha/<cluster>).")] = None,
    renew_certs: Annotated[bool, typer.Option("--renew-certs", help="Issue every host a new certificate from the "
                                                                    "cluster's CA (kept in OUT/pki).")] = False,
) -> None:
    """One bundle per real machine: configs, systemd units, an install script (Debian/Ubuntu)."""
    from pgha.deploy.bundles import write_host_bundles

    written = write_host_bundles(inventory, out_dir, root, renew_certs=renew_certs)
    for host, files in written.items():
        out.print(f"{host}: {len(files)} files in {out_dir / host}")
    out.print(f"operators' guide: {out_dir / 'README.md'}")


@render_app.command("compose")
def render_compose_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the deployment into.")],
    name: NameOpt = "default",
    profile: Annotated[str | None, typer.Option(help="default | seed (the lab as published)")] = None,
    config: Annotated[Path | None, typer.Option(help="A pgha.yaml spec file.")] = None,
    base_port: Annotated[int | None, typer.Option(help="Shift every published port.")] = None,
    base_image: Annotated[str | None, typer.Option(help="Build FROM this image instead of the Containerfile's "
                                                        "default (written to .env as PGHA_BASE_IMAGE).")] = None,
) -> None:
    """A compose deployment (Containerfile, compose.yaml, configs, .env) for docker/podman compose."""
    from pgha.deploy.compose_files import write_compose_deployment
    from pgha.model.spec import build_spec, load_spec_file

    file_settings = load_spec_file(config) if config else {}
    spec = build_spec(profile, file_settings, {"name": name, "profile": profile, "base_port": base_port,
                                                "backend": "compose"})
    written = write_compose_deployment(spec, out_dir, base_image)
    out.print(f"wrote {len(written)} files to {out_dir} (profile {spec.profile}); "
              f"start it with `docker-compose up -d`, `docker compose up -d` or `podman-compose up -d` there")


@render_app.command("grafana")
def render_grafana_cmd(
    out_file: Annotated[Path, typer.Option("--out", help="The dashboard's JSON file to write.")],
    name: NameOpt = "default",
) -> None:
    """A Grafana dashboard of the cluster's Prometheus series (import it, pick the data source)."""
    from pgha.model.spec import build_spec
    from pgha.render.grafana import render_dashboard

    cluster = _cluster(name)
    spec = cluster.spec if cluster.exists else build_spec(None, {}, {"name": name})
    if out_file.is_dir():
        raise UserError(f"--out: {out_file} is a directory; name the file to write")
    try:
        out_file.write_text(render_dashboard(spec))
    except OSError as e:
        raise UserError(f"--out: cannot write {out_file}: {e.strerror}") from None
    out.print(f"wrote {out_file}: import it in Grafana (Dashboards -> Import) and choose the Prometheus that "
              f"scrapes cluster {spec.patroni_scope!r}")


@app.command("list")
def list_clusters() -> None:
    """The clusters on this machine."""
    from pgha.cluster import list_clusters as clusters_here

    for name in clusters_here():
        print(name)


def _one_line(message: str) -> str:
    """Whatever a message holds (a hostile name, a wrapped library message), it is one line."""
    text = " ".join(message.split())
    return "".join("?" if has_control_characters(c) else c for c in text)


def _fail(message: str, code: int = 2) -> None:
    err.print(Text.assemble(("error: ", "red"), _one_line(message)), highlight=False, soft_wrap=True)
    sys.exit(code)


# Files pgha creates get the modes it means, whatever umask the caller has: the service user
# (and, on netns, each host's unit user) must read configs and enter directories created as root,
# and a caller's umask 077 would make them unreadable. Private files set 0600 themselves.
UMASK = 0o022


def main() -> None:
    os.umask(UMASK)
    # Click's own usage errors print a usage block; here every error is one line and exit 2.
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as e:
        print(e.format_message())
        sys.exit(2)
    except ClickException as e:
        _fail(e.format_message())
    except typer.Abort:
        _fail("interrupted", 130)
    except PghaError as e:
        _fail(str(e))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
