"""Which component kind runs at a place: the one table of kinds (adding a kind is one class
plus one entry here; a DCS kind is an entry of pgha.components.dcs.DCS_KINDS)."""

from __future__ import annotations

from pgha.components.backup import BACKUP_AGENT, REPOSITORY_HOST
from pgha.components.base import Component
from pgha.components.dcs import dcs_component
from pgha.components.guard import FENCING_GUARD
from pgha.components.haproxy import HAProxy
from pgha.components.monitor import PROMETHEUS
from pgha.components.patroni import PatroniNode
from pgha.components.pooler import Pooler
from pgha.model.spec import Spec
from pgha.model.topology import Place

PATRONI = PatroniNode()
HAPROXY = HAProxy()
POOLER = Pooler()


def components(spec: Spec) -> tuple[Component, ...]:
    """Every kind a cluster of this spec runs (in the order install.sh lists their packages and
    a preflight checks their programs)."""
    return (PATRONI, HAPROXY, dcs_component(spec), *((POOLER,) if spec.pooler.enabled else ()),
            *((REPOSITORY_HOST, BACKUP_AGENT) if spec.backup.enabled else ()),
            *((FENCING_GUARD,) if spec.fencing.enabled else ()),
            *((PROMETHEUS,) if spec.monitoring.enabled else ()))


def component_for(spec: Spec, place: Place) -> Component:
    return {c.kind: c for c in components(spec)}[place.kind]
