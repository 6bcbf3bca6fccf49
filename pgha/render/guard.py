"""Spec -> the configuration of a fencing guard (pgha/ops/fencing_guard.py): whom it watches, how it
fences each node, its login to the DCS (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgha.model.topology import Topology
from pgha.state.layout import Layout

GUARD_SCRIPT = "pgha-fencing-guard.py"
# How long a guard's key outlives a guard that stopped renewing it: another guard takes over after it.
GUARD_LEASE_TTL_S = 10
# A probe that takes longer than this counts as no answer: several probes fit in fence_after_s.
PROBE_TIMEOUT_FRACTION = 0.25
PROBE_TIMEOUT_MAX_S = 1.0


def guard_script_path(layout: Layout) -> Path:
    return layout.conf / GUARD_SCRIPT


def guard_config_path(layout: Layout, guard: str) -> Path:
    return layout.conf / f"{guard}.json"


def guard_state_path(layout: Layout, guard: str) -> Path:
    """What the guard last saw and decided (JSON), for pgha status and check."""
    return layout.run / f"{guard}-state.json"


def wal_receiver_timeout_ms(fence_after_s: float) -> int:
    """A standby's WAL receiver gives up on a silent primary after this (and pings an idle one at
    half of it, so a healthy primary keeps it streaming): within the guard's own threshold, so the
    replicas can confirm a silence by the time the guard would fence."""
    return int(fence_after_s * 1000)


def render_guard_config(topo: Topology, layout: Layout, guard: str, dcs: dict[str, Any],
                        fences: dict[str, dict[str, object]], tls: bool) -> str:
    """The guard's JSON (0600: it holds the guards' DCS password)."""
    spec = topo.spec
    scheme = "https" if tls else "http"
    fencing = spec.fencing
    config: dict[str, Any] = {
        "name": guard,
        "scope": spec.patroni_scope,
        "namespace": "/service/",
        "guard_namespace": "/pgha-guard/",
        "fence_after_s": fencing.fence_after_s,
        "synchronous_mode": spec.patroni.synchronous_mode,
        "interval_s": fencing.interval_s,
        "probe_timeout_s": min(PROBE_TIMEOUT_MAX_S, fencing.fence_after_s * PROBE_TIMEOUT_FRACTION),
        "lease_ttl_s": GUARD_LEASE_TTL_S,
        "dcs": dcs,
        "rest_ca": str(layout.tls_ca) if tls else None,
        "state_file": str(guard_state_path(layout, guard)),
        "nodes": [{"name": place.name, "rest": f"{scheme}://{place.address}:{ports.rest}",
                   "ports": [[place.address, ports.postgres], [place.address, ports.rest]],
                   "fence": fences[place.name]}
                  for place, ports in zip(topo.nodes, topo.node_ports, strict=True)],
    }
    return json.dumps(config, indent=2) + "\n"
