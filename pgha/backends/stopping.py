"""Stopping a cluster's components in the one order (pgha.model.topology.stop_order), for every
backend and for a failed `up` that undoes only what it started."""

from __future__ import annotations

import logging
from collections.abc import Collection

from pgha.backends.base import Lifecycle
from pgha.model.topology import Topology, stop_order

log = logging.getLogger(__name__)


def stop_in_order(backend: Lifecycle, topo: Topology, leader: str | None,
                  only: Collection[str] | None = None) -> list[str]:
    """Stop the components (only those in `only`, when given) step by step; what was stopped."""
    stopped: list[str] = []
    for step in stop_order(topo, leader):
        names = [p.name for p in step.places if only is None or p.name in only]
        if names:
            log.info(f"stopping {', '.join(names)}: {step.why}")
            backend.stop_components(names)
            stopped += names
    return stopped
