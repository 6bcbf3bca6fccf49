"""A component at its place in the topology -> (the files it reads, the unit that starts it).
Pure: every backend, the host bundles and the compose image use this one function."""

from __future__ import annotations

from pgha.components.base import Site, Unit
from pgha.components.kinds import component_for
from pgha.render import RenderedFile
from pgha.state.layout import SERVICE_USER


def render_component(site: Site, user: str = SERVICE_USER) -> tuple[list[RenderedFile], Unit]:
    component = component_for(site.topo.spec, site.place)
    return component.files(site), component.unit(site, user)
