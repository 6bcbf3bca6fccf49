"""Faults and their heals, injected only through the Backend (never by matching process names).

Each fault is a pair of actions: inject (at the fault time) and heal (when the drill decides the
cluster has recovered, or a deadline passed). Both are recorded in the history by the runner.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from pgha.backends.base import Backend
from pgha.secrets import REST_USER
from pgha.spec import Spec

STALL_SECONDS = 3.0


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    # Whether the fault is expected to move the primary when it targets the primary.
    moves_primary: bool
    # Whether the drill keeps the fault until the cluster recovered (False: a one-shot action).
    held: bool


FAULTS: dict[str, Fault] = {
    "stop": Fault("stop", "graceful stop of Patroni (SIGTERM, as `docker stop`); restarted at heal", True, True),
    "kill": Fault("kill", "SIGKILL to Patroni and PostgreSQL, restarted at once by the supervisor", False, False),
    "node-loss": Fault("node-loss", "SIGKILL to every process of the node; no restart until heal", True, True),
    "freeze": Fault("freeze", "SIGSTOP to every process of the node (a hung host); SIGCONT at heal", True, True),
    "crash-postgres": Fault("crash-postgres", "SIGKILL to the postmaster only; Patroni stays up", False, False),
    "dcs-down": Fault("dcs-down", "stop one DCS member (target 'all': every member); restarted at heal",
                      False, True),
    "stall-then-kill": Fault("stall-then-kill", f"pause the primary's WAL senders for {STALL_SECONDS:.0f} s "
                             "under load, then lose the primary (node-loss)", True, True),
    "switchover": Fault("switchover", "planned switchover through Patroni's REST API", True, False),
}


class Nemesis:
    def __init__(self, spec: Spec, backend: Backend, rest_password: str,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.backend = backend
        self.rest_password = rest_password
        self.sleep = sleep

    def inject(self, fault: str, target: str) -> None:
        b = self.backend
        if fault == "stop":
            b.stop_node(target)
        elif fault == "kill":
            b.kill_node(target)
            # The supervisor (restart: always, systemd) brings the node straight back.
            b.start_node(target)
        elif fault == "node-loss":
            b.kill_node(target)
        elif fault == "freeze":
            b.freeze_node(target)
        elif fault == "crash-postgres":
            b.kill_postgres(target)
        elif fault == "dcs-down":
            for member in self._dcs_members(target):
                b.stop_dcs_member(member)
        elif fault == "stall-then-kill":
            # The senders stop, not the receivers: a stopped receiver's kernel still takes the WAL
            # into its socket buffer and nothing would be lost. What the senders never sent dies
            # with the primary, unless commits waited for a synchronous standby.
            b.freeze_walsenders(target)
            self.sleep(STALL_SECONDS)
            b.kill_node(target)
        elif fault == "switchover":
            self._switchover(target)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def heal(self, fault: str, target: str) -> None:
        b = self.backend
        if fault in ("stop", "node-loss", "stall-then-kill", "kill"):
            b.start_node(target)
        elif fault == "freeze":
            b.thaw_node(target)
        elif fault == "dcs-down":
            for member in self._dcs_members(target):
                b.start_dcs_member(member)

    def _dcs_members(self, target: str) -> list[int]:
        if target == "all":
            return list(range(self.spec.dcs.members))
        return [int(target.removeprefix("dcs"))]

    def _switchover(self, leader: str) -> None:
        i = self.spec.node_index(leader)
        url = f"http://{self.spec.node_host}:{self.spec.ports.rest[i]}/switchover"
        token = base64.b64encode(f"{REST_USER}:{self.rest_password}".encode()).decode()
        req = urllib.request.Request(url, data=json.dumps({"leader": leader}).encode(), method="POST",
                                     headers={"Authorization": f"Basic {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
