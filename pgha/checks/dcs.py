"""Line 6 of `pgha check`: every DCS member answers, as the probe found it."""

from __future__ import annotations

from pgha.checks.result import Outcome
from pgha.cluster import Cluster
from pgha.net.probe import ClusterState


def check_dcs(cluster: Cluster, state: ClusterState) -> Outcome:
    name = f"the DCS ({cluster.spec.dcs.kind}) answers"
    detail = ", ".join(f"{d.name} {d.address}: {d.detail}" for d in state.dcs)
    ok = bool(state.dcs) and all(d.healthy for d in state.dcs)
    return Outcome(name, "PASS" if ok else "FAIL", detail)
