"""Scheduled backups on real machines: a systemd timer and a oneshot service per backup type on
the repository host (full weekly and differential daily by default, spec.backup.*_schedule); pure.
One machine has no scheduler of pgha's (`pgha backup` takes one on demand), so only host bundles
carry them; the netns backend renders them with its bundles but never runs them."""

from __future__ import annotations

import shlex

from pgha.components.backup import REPOSITORY_HOST
from pgha.model.topology import Topology
from pgha.render.backup import pgbackrest_argv
from pgha.state.layout import Layout


def timer_name(scope: str, kind: str) -> str:
    return f"pgha-{scope}-backup-{kind}.timer"


def backup_timer_units(topo: Topology, layout: Layout, user: str) -> list[tuple[str, str]]:
    """(file name, text) of each service and timer; none without a repository host."""
    if not topo.repository:
        return []
    spec, scope = topo.spec, topo.spec.name
    conf = REPOSITORY_HOST.config_path(layout, topo.repository[0])
    out: list[tuple[str, str]] = []
    for kind, calendar in (("full", spec.backup.full_schedule), ("diff", spec.backup.diff_schedule)):
        service = f"pgha-{scope}-backup-{kind}.service"
        out.append((service, "\n".join([
            "[Unit]",
            f"Description=pgha {scope}: a {kind} backup into the repository",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"User={user}",
            f"Group={user}",
            # The stanza is created by the first run and checked by every later one (idempotent).
            f"ExecStartPre={shlex.join(pgbackrest_argv(conf, spec, 'stanza-create'))}",
            # A diff with no full backup before it is taken as a full one by pgBackRest itself.
            f"ExecStart={shlex.join(pgbackrest_argv(conf, spec, f'--type={kind}', 'backup'))}",
            "",
        ])))
        out.append((timer_name(scope, kind), "\n".join([
            "[Unit]",
            f"Description=pgha {scope}: {kind} backups, {calendar}",
            "",
            "[Timer]",
            f"OnCalendar={calendar}",
            # A run missed while the host was down is taken when it is back.
            "Persistent=true",
            f"Unit={service}",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ])))
    return out
