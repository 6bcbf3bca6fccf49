"""Spec -> the configuration of Patroni's hooks on one node (pgha/ops/node_hook.py): the poolers to
pause when the primary stops, the nodes and entrypoints that tell when writes may go on, and
the HAProxy admin sockets the node can reach to push routing (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgha.model.topology import RW_PROXY, Topology
from pgha.state.layout import Layout
from pgha.state.secrets import APP_DATABASE, APP_USER, POOLER_ADMIN, Secrets

HOOK_SCRIPT = "pgha-node-hook.py"
# The watcher resumes the poolers after this long even if no node has taken over: clients then
# fail as they would without the pause, instead of waiting for ever.
RESUME_WITHIN_MARGIN_S = 10


def hook_script_path(layout: Layout) -> Path:
    return layout.conf / HOOK_SCRIPT


def hook_config_path(layout: Layout, node: str) -> Path:
    return layout.conf / f"hook-{node}.json"


def hooks_wanted(topo: Topology, haproxy_sockets: tuple[str, ...]) -> bool:
    """Hooks only where they have work: poolers to pause, or HAProxies this host can reach."""
    return bool(topo.poolers) or (topo.spec.haproxy.push_routing and bool(haproxy_sockets))


def render_hook_config(topo: Topology, layout: Layout, secrets: Secrets, node: str, *, tls: bool,
                       haproxy_sockets: tuple[str, ...], passwords_from: tuple[str, str] | None = None) -> str:
    """The hook's JSON; with `passwords_from` (the application's and the pooler admin's
    environment variables: a container image holds this file) no password is written in it."""
    spec = topo.spec
    config: dict[str, Any] = {
        "node": node,
        "nodes": [{"name": p.name, "host": p.address, "port": ports.postgres}
                  for p, ports in zip(topo.nodes, topo.node_ports, strict=True)],
        "entrypoints": [{"host": h.address, "port": ports.rw}
                        for h, ports in zip(topo.haproxies, topo.haproxy_ports, strict=True)],
        "poolers": [{"name": p.name, "host": p.address, "port": port}
                    for p, port in zip(topo.poolers, topo.pooler_ports, strict=True)],
        "haproxy_sockets": list(haproxy_sockets) if spec.haproxy.push_routing else [],
        "rw_proxy": RW_PROXY,
        "app_user": APP_USER,
        "app_password": secrets.app_password,
        "dbname": APP_DATABASE,
        "pooler_user": POOLER_ADMIN,
        "pooler_password": secrets.pooler_admin_password,
        "pause_timeout_s": spec.pooler.pause_timeout_s,
        "resume_within_s": spec.patroni.ttl + RESUME_WITHIN_MARGIN_S,
        "ca": str(layout.tls_ca) if tls else None,
    }
    if passwords_from is not None:
        config |= {"app_password": "", "pooler_password": "",
                   "app_password_env": passwords_from[0], "pooler_password_env": passwords_from[1]}
    return json.dumps(config, indent=2) + "\n"


def patroni_hooks(python: str, layout: Layout, node: str) -> dict[str, Any]:
    """The postgresql section's hooks: Patroni appends (action, role, scope) to a callback."""
    return hook_commands(python, str(hook_script_path(layout)), str(hook_config_path(layout, node)))


def hook_commands(python: str, script: str, config: str) -> dict[str, Any]:
    """The postgresql section's hooks for a script and its config wherever they are."""
    command = f"{python} {script} {config}"
    return {"before_stop": f"{command} before_stop", "callbacks": {"on_role_change": command}}


def post_bootstrap_command(python: str, script: str, config: str) -> str:
    """bootstrap.post_bootstrap: Patroni runs it once, on the node that initialised the cluster,
    with a superuser's connection URL appended (the application role and its database)."""
    return f"{python} {script} {config} post_bootstrap"
