"""Pushed routing: every HAProxy told through its admin socket which node takes writes, at once,
instead of after its next health checks (which go on, and confirm it)."""

from __future__ import annotations

from pgha.model.topology import RW_PROXY
from pgha.net.probe import haproxy_command
from pgha.net.reach import Reach

TIMEOUT_S = 2.0


def route_writes_to(reach: Reach, primary: str) -> list[str]:
    """`primary` up in every HAProxy's read-write proxy, every other node down; the problems,
    one per HAProxy that did not take it."""
    problems = []
    # The new primary up first: never a moment with no server for writes.
    order = [primary, *(n for n in reach.spec.node_names if n != primary)]
    for name, path in reach.haproxy_sockets.items():
        for node in order:
            state = "up" if node == primary else "down"
            try:
                answer = haproxy_command(path, f"set server {RW_PROXY}/{node} health {state}", TIMEOUT_S).strip()
            except OSError as e:
                problems.append(f"{name}: {e}")
                break
            if answer:
                problems.append(f"{name}: {answer[:200]}")
                break
    return problems
