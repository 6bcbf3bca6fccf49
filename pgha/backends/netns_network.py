"""The private network of a netns cluster, built with iproute2 and cut with nftables.

One namespace holds a bridge (the switch); every component's namespace has one veth link into
it, named eth0 on the component's side. Nothing is created in the machine's own namespace, so
nothing of a cluster is reachable from or routed to the outside, and removing the namespaces
removes every link and the bridge with them.

Faults are nftables rules in a table of pgha's own inside a component's namespace, on eth0 only
(pgha.backends.link_faults): loopback traffic inside a namespace (which is how pgha observes a
component) is never cut.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pgha.backends import link_faults
from pgha.errors import BackendError
from pgha.model.topology import Place, Topology
from pgha.render.netns_hosts import hosts_file, marker
from pgha.render.netns_rules import LINK

NETNS_DIR = Path("/run/netns")
# `ip netns exec` mounts the files here over /etc for what it starts in that namespace.
ETC_NETNS = Path("/etc/netns")
BRIDGE = "br0"


def _run(argv: Sequence[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, input=stdin, check=False)
    if check and result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise BackendError(f"{' '.join(argv[:6])}: {reason[-1] if reason else f'exit {result.returncode}'}")
    return result


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def switch_port(place: Place) -> str:
    # Interface names are at most 15 characters; component names may be longer.
    return f"v{place.kind[0]}{place.index}"


def create(topo: Topology) -> None:
    """Create every namespace, link and address that is missing (idempotent)."""
    sw = topo.switch_netns
    assert sw is not None
    _ensure(sw, BRIDGE, ["type", "bridge", "stp_state", "0", "forward_delay", "0"])
    for place in topo.hosts:
        _attach(topo, place, sw)
    text = hosts_file(topo)
    for place in topo.hosts:
        assert place.netns is not None
        path = ETC_NETNS / place.netns / "hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _ensure(ns: str, link: str, how: list[str]) -> bool:
    """The namespace exists with loopback up; creates `link` unless present. True if created."""
    if not exists(ns):
        _run(["ip", "netns", "add", ns])
    _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    created = _run(["ip", "-n", ns, "link", "show", link], check=False).returncode != 0
    if created:
        _run(["ip", "-n", ns, "link", "add", link, *how])
    _run(["ip", "-n", ns, "link", "set", link, "up"])
    return created


def _attach(topo: Topology, place: Place, sw: str) -> None:
    ns = place.netns
    assert ns is not None
    # Both ends are created inside their namespaces: nothing touches the machine's own.
    if _ensure(ns, LINK, ["type", "veth", "peer", "name", switch_port(place), "netns", sw]):
        _run(["ip", "-n", ns, "addr", "add", f"{place.address}/{topo.prefix_len}", "dev", LINK])
    _run(["ip", "-n", sw, "link", "set", switch_port(place), "master", BRIDGE, "up"])


def destroy(topo: Topology) -> list[str]:
    """Delete the cluster's namespaces (links and bridge go with them); returns what was deleted."""
    names = [p.netns for p in topo.hosts if p.netns] + ([topo.switch_netns] if topo.switch_netns else [])
    deleted = []
    for ns in names:
        if exists(ns):
            _run(["ip", "netns", "del", ns])
            deleted.append(ns)
        _remove_hosts_file(ns, topo.spec.name)
    return deleted


def _remove_hosts_file(ns: str, cluster: str) -> None:
    """The hosts file create() wrote, and its directory once empty; only a file with pgha's marker
    for this cluster (a file someone else put there stays)."""
    path = ETC_NETNS / ns / "hosts"
    try:
        if path.is_symlink() or not path.read_text().startswith(marker(cluster)):
            return
    except FileNotFoundError:
        return
    path.unlink()
    with contextlib.suppress(OSError):  # not empty: something else of that namespace's is there
        path.parent.rmdir()


def existing(topo: Topology) -> list[str]:
    names = [p.netns for p in topo.hosts if p.netns] + ([topo.switch_netns] if topo.switch_netns else [])
    return [ns for ns in names if exists(ns)]


def heal(topo: Topology) -> None:
    """Lift every fault rule from the cluster's hosts."""
    for place in topo.hosts:
        if place.netns:
            link_faults.heal(str(NETNS_DIR / place.netns))
