"""Patroni's own code run against a cluster's DCS from this machine: patronictl (`pgha ctl`),
and the removal of the cluster's keys before it is bootstrapped again (an in-place restore).

A netns cluster's DCS is reachable only on its private network, so both run inside the first
node's network namespace there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pgha.cluster import Cluster, ClusterError

FORGET_TIMEOUT = 60.0

# What `patronictl remove` does once its three prompts are answered: Patroni's own DCS class
# deletes everything under the cluster's scope (leader, members, initialize, config, history).
_FORGET = """\
import sys
from patroni.config import Config
from patroni.dcs import get_dcs
config = Config(sys.argv[1], validator=None).copy()
config["patronictl"] = True
sys.exit(0 if get_dcs(config).delete_cluster() else 1)
"""


def in_cluster_network(cluster: Cluster, argv: list[str]) -> list[str]:
    node = cluster.spec.node_names[0]
    netns = cluster.backend().netns_path(node)
    return ["nsenter", f"--net={netns}", *argv] if netns else argv


def _config(cluster: Cluster) -> Path:
    node = cluster.spec.node_names[0]
    return cluster.backend().host_layout(node).patroni_config(node)


def patronictl_argv(cluster: Cluster, args: list[str]) -> list[str]:
    patronictl = Path(sys.executable).parent / "patronictl"
    return in_cluster_network(cluster, [str(patronictl), "-c", str(_config(cluster)), *args])


def forget_cluster(cluster: Cluster) -> None:
    """Delete the cluster's keys from the DCS, so that its nodes bootstrap it anew; the nodes
    must be stopped (a running Patroni would write its keys back)."""
    argv = in_cluster_network(cluster, [sys.executable, "-c", _FORGET, str(_config(cluster))])
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=FORGET_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"the DCS did not let pgha remove {cluster.name!r}'s keys within "
                           f"{FORGET_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}").splitlines()
        raise ClusterError(f"could not remove {cluster.name!r}'s keys from the DCS: {lines[-1]}")
