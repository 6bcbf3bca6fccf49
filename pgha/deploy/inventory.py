"""An inventory of real machines (hosts.yaml) -> a spec and a topology for their bundles.

    cluster: {name: prod, profile: default}      # any pgha.yaml settings
    clients: [10.0.1.0/24]                       # who may connect besides the cluster's hosts
    hosts:
      - {name: db1, address: 10.0.0.11, runs: [node, dcs]}
      - {name: lb1, address: 10.0.0.21, runs: [haproxy]}
      - {name: bk1, address: 10.0.0.31, runs: [backup]}   # optional: the backup repository host
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pgha.deploy.host_bundle import HostBundle
from pgha.model.ports import POOLER_PORT
from pgha.model.spec import Spec, SpecError, build_spec, format_validation_error, load_spec_file
from pgha.model.topology import (
    REPOSITORY,
    DcsPorts,
    HAProxyPorts,
    NodePorts,
    Place,
    Topology,
    backup_agent_name,
    dcs_member_name,
    haproxy_name,
    netns_topology_ports,
    pooler_name,
)


class InventoryHost(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
    address: str
    runs: list[Literal["node", "dcs", "haproxy", "backup"]] = Field(min_length=1)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv4 address") from None
        return v


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    cluster: dict[str, Any] = Field(default_factory=dict)
    clients: list[str] = Field(default_factory=list)
    hosts: list[InventoryHost] = Field(min_length=1)

    @field_validator("clients")
    @classmethod
    def _clients(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.IPv4Network(net)
            except ValueError:
                raise ValueError(f"{net!r} is not a network such as 10.0.1.0/24") from None
        return v

    @model_validator(mode="after")
    def _unique(self) -> Inventory:
        for what in ("name", "address"):
            seen = [getattr(h, what) for h in self.hosts]
            dup = next((x for x in seen if seen.count(x) > 1), None)
            if dup is not None:
                raise ValueError(f"hosts: {what} {dup} appears twice")
        for role in ("node", "dcs", "haproxy"):
            if not any(role in h.runs for h in self.hosts):
                raise ValueError(f"hosts: no host runs {role}")
        if len(self.hosts_running("backup")) > 1:
            raise ValueError("hosts: only one host may run backup (the cluster has one repository)")
        return self

    def hosts_running(self, role: str) -> list[InventoryHost]:
        return [h for h in self.hosts if role in h.runs]


def load_inventory(path: Path) -> Inventory:
    data = load_spec_file(path)
    try:
        return Inventory.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"inventory: {format_validation_error(e)}") from None


def inventory_spec(inv: Inventory) -> Spec:
    settings = dict(inv.cluster)
    dcs = {**settings.get("dcs", {}), "members": len(inv.hosts_running("dcs"))}
    settings.update(nodes=len(inv.hosts_running("node")), dcs=dcs, backend="local")
    if "tls" not in settings:
        # Real machines talk over a network: TLS unless the lab's profile is asked for.
        settings["tls"] = settings.get("profile", "default") == "default"
    backup = settings.get("backup") if isinstance(settings.get("backup"), dict) else {}
    asked = backup.get("enabled") if isinstance(backup, dict) else None
    host = inv.hosts_running("backup")
    if asked and not host:
        raise SpecError("inventory: cluster.backup.enabled: no host runs backup (add backup to one host's runs)")
    if host and asked is False:
        raise SpecError(f"inventory: host {host[0].name} runs backup, but cluster.backup.enabled is false")
    if host and not settings["tls"]:
        raise SpecError(f"inventory: host {host[0].name} runs backup: pgBackRest's TLS server needs cluster.tls")
    fencing = settings.get("fencing") if isinstance(settings.get("fencing"), dict) else {}
    if isinstance(fencing, dict) and fencing.get("enabled"):
        raise SpecError("inventory: cluster.fencing.enabled: fencing real machines needs an operator's fence "
                        "command (IPMI, a cloud API), which bundles do not take yet")
    # Until then a lost primary on real machines is replaced after Patroni's ttl, as without pgha.
    settings["fencing"] = {**(fencing if isinstance(fencing, dict) else {}), "enabled": False}
    monitoring = settings.get("monitoring") if isinstance(settings.get("monitoring"), dict) else {}
    if isinstance(monitoring, dict) and monitoring.get("enabled"):
        raise SpecError("inventory: cluster.monitoring.enabled: bundles do not carry Prometheus yet")
    settings["monitoring"] = {**(monitoring if isinstance(monitoring, dict) else {}), "enabled": False}
    # With a backup host the nodes archive to it (pgha.components.backup); without one, nothing archives.
    settings["backup"] = {**(backup if isinstance(backup, dict) else {}), "enabled": bool(host)}
    return build_spec(None, settings)


def inventory_topology(spec: Spec, inv: Inventory) -> Topology:
    def places(role: Literal["node", "dcs", "haproxy"]) -> tuple[Place, ...]:
        hosts = inv.hosts_running(role)
        names = {"node": lambda i: spec.node_names[i], "dcs": dcs_member_name, "haproxy": haproxy_name}[role]
        return tuple(Place(names(i), role, i, h.address, None) for i, h in enumerate(hosts))

    node_ports, dcs_ports, haproxy_ports = netns_topology_ports(spec, len(inv.hosts_running("haproxy")))
    nets = sorted({f"{h.address}/32" for h in inv.hosts} | set(inv.clients))
    haproxies = places("haproxy")
    # The pooler runs on every HAProxy host, beside it.
    poolers = tuple(Place(pooler_name(h.index), "pooler", h.index, h.address, None)
                    for h in haproxies) if spec.pooler.enabled else ()
    nodes = places("node")
    backup_host = inv.hosts_running("backup")
    repository = tuple(Place(REPOSITORY, "repository", 0, h.address, None) for h in backup_host)
    # pgBackRest's server beside each node, on the node's host: the repository host backs it up through it.
    agents = tuple(Place(backup_agent_name(n.name), "backup-agent", n.index, n.address, None)
                   for n in nodes) if repository else ()
    return Topology(spec=spec, nodes=nodes, dcs=places("dcs"), haproxies=haproxies,
                    node_ports=node_ports, dcs_ports=dcs_ports, haproxy_ports=haproxy_ports,
                    poolers=poolers, pooler_ports=(POOLER_PORT,) * len(poolers),
                    client_networks=tuple(nets), switch_netns=None, repository=repository, backup_agents=agents)


def host_bundles(topo: Topology, inv: Inventory, root: Path) -> list[HostBundle]:
    by_address: dict[str, list[Place]] = {}
    for place in topo.places:
        by_address.setdefault(place.address, []).append(place)
    return [HostBundle(h.name, tuple(by_address.get(h.address, [])), root) for h in inv.hosts]


__all__ = ["DcsPorts", "HAProxyPorts", "Inventory", "NodePorts", "host_bundles", "inventory_spec",
           "inventory_topology", "load_inventory"]
