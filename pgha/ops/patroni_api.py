"""Planned operations through Patroni's REST API: the switchover request both `pgha switchover`
and the drill's `switchover` fault send, a node's restart (`pgha restart`), and a reload of its
configuration file (after a restore in place). Side effects only;
the waiting is the caller's."""

from __future__ import annotations

import base64
from typing import Any

from pgha.errors import BackendError
from pgha.net.dial import http_request
from pgha.net.reach import Reach
from pgha.state.secrets import REST_USER

TIMEOUT_S = 30.0
RESTART_TIMEOUT_S = 120.0


def _post(reach: Reach, rest_password: str, node: str, path: str, body: dict[str, Any],
          timeout: float) -> tuple[int, Any]:
    # Unsafe methods need the REST user's password (and, with TLS, pgha's client certificate).
    token = base64.b64encode(f"{REST_USER}:{rest_password}".encode()).decode()
    try:
        return http_request(reach.rest(node), path, timeout, method="POST", body=body,
                            headers={"Authorization": f"Basic {token}"})
    except OSError as e:
        raise BackendError(f"{node}'s REST API did not answer the {path} request: {e}") from None


def request_switchover(reach: Reach, rest_password: str, leader: str, candidate: str | None = None) -> None:
    """Ask `leader` to hand over (to `candidate`, or to the replica Patroni picks); raises
    BackendError with Patroni's own reason when it refuses (e.g. a candidate that is not the
    synchronous standby while synchronous_mode is on)."""
    body = {"leader": leader, **({"candidate": candidate} if candidate else {})}
    status, answer = _post(reach, rest_password, leader, "switchover", body, TIMEOUT_S)
    if status >= 400:
        reason = answer if isinstance(answer, str) else (answer or "")
        raise BackendError(f"Patroni refused the switchover from {leader}: HTTP {status} {reason}".strip())


def request_restart(reach: Reach, rest_password: str, node: str) -> None:
    """Restart PostgreSQL on `node` (Patroni answers once it is back); BackendError with Patroni's
    reason when it refuses or the restart fails."""
    status, answer = _post(reach, rest_password, node, "restart", {"timeout": int(RESTART_TIMEOUT_S)},
                           RESTART_TIMEOUT_S + 10)
    if status >= 400:
        reason = answer if isinstance(answer, str) else (answer or "")
        raise BackendError(f"Patroni did not restart {node}: HTTP {status} {reason}".strip())


def request_reload(reach: Reach, rest_password: str, node: str) -> None:
    """Have Patroni on `node` read its configuration file again (and reload PostgreSQL's)."""
    status, answer = _post(reach, rest_password, node, "reload", {}, TIMEOUT_S)
    if status >= 400:
        reason = answer if isinstance(answer, str) else (answer or "")
        raise BackendError(f"Patroni did not reload {node}'s configuration: HTTP {status} {reason}".strip())
