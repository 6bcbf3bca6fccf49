"""A planned switchover through Patroni's REST API: the one request both `pgha switchover` and
the drill's `switchover` fault send (side effects only; the waiting is the caller's)."""

from __future__ import annotations

import base64

from pgha.dial import http_request
from pgha.errors import BackendError
from pgha.reach import Reach
from pgha.secrets import REST_USER

TIMEOUT_S = 30.0


def request_switchover(reach: Reach, rest_password: str, leader: str, candidate: str | None = None) -> None:
    """Ask `leader` to hand over (to `candidate`, or to the replica Patroni picks); raises
    BackendError with Patroni's own reason when it refuses (e.g. a candidate that is not the
    synchronous standby while synchronous_mode is on)."""
    token = base64.b64encode(f"{REST_USER}:{rest_password}".encode()).decode()
    body = {"leader": leader, **({"candidate": candidate} if candidate else {})}
    try:
        status, answer = http_request(reach.rest(leader), "switchover", TIMEOUT_S, method="POST", body=body,
                                      headers={"Authorization": f"Basic {token}"})
    except OSError as e:
        raise BackendError(f"{leader}'s REST API did not answer the switchover request: {e}") from None
    if status >= 400:
        reason = answer if isinstance(answer, str) else (answer or "")
        raise BackendError(f"Patroni refused the switchover from {leader}: HTTP {status} {reason}".strip())
