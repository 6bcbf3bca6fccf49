"""Faults and their heals, injected only through the Backend (never by matching process names).

Each fault is a pair of actions: inject (at the fault time) and heal (when the drill decides the
cluster has recovered, or a deadline passed). Both are recorded in the history by the runner.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

from pgha.backends.base import Backend, NetworkFaults
from pgha.dial import http_request
from pgha.errors import BackendError
from pgha.secrets import REST_USER
from pgha.spec import Spec
from pgha.topology import topology

STALL_SECONDS = 3.0
SETTLE_MARGIN_S = 5.0
LOSS_PERCENT = 30
LAG_MS = 200


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    # Whether the fault is expected to move the primary when it targets the primary.
    moves_primary: bool
    # Whether the drill keeps the fault until the cluster recovered (False: a one-shot action).
    held: bool
    # Whether Patroni reacts only after its leader key runs out: such a fault is held at least
    # ttl + SETTLE_MARGIN_S, or the drill would heal it before anything could happen.
    settles: bool = False


FAULTS: dict[str, Fault] = {
    "stop": Fault("stop", "graceful stop of Patroni (SIGTERM, as `docker stop`); restarted at heal", True, True),
    "kill": Fault("kill", "SIGKILL to Patroni and PostgreSQL, restarted at once by the supervisor", False, False),
    "node-loss": Fault("node-loss", "SIGKILL to every process of the node; no restart until heal", True, True),
    "freeze": Fault("freeze", "SIGSTOP to every process of the node (a hung host); SIGCONT at heal", True, True),
    "crash-postgres": Fault("crash-postgres", "SIGKILL to the postmaster only; Patroni stays up", False, False),
    "dcs-down": Fault("dcs-down", "stop one DCS member (target 'majority' or 'all': that many); restarted "
                      "at heal", False, True, settles=True),
    "stall-then-kill": Fault("stall-then-kill", f"pause the primary's WAL senders for {STALL_SECONDS:.0f} s "
                             "under load, then lose the primary (node-loss)", True, True),
    "switchover": Fault("switchover", "planned switchover through Patroni's REST API", True, False),
    "haproxy-kill": Fault("haproxy-kill", "SIGKILL one HAProxy host (target haproxy, haproxy1..); restarted at heal",
                          False, True),
    # Network faults: hosts of their own only (the netns backend).
    "isolate": Fault("isolate", "cut the host off from every other host (a node, dcsN or an HAProxy); "
                     "reconnected at heal", True, True, settles=True),
    "isolate-dcs": Fault("isolate-dcs", "cut a node off from every DCS member; it still reaches the other nodes",
                         True, True, settles=True),
    "partition": Fault("partition", "split the hosts: the node with a minority of the DCS members against the rest",
                       True, True, settles=True),
    "loss": Fault("loss", f"drop {LOSS_PERCENT}% of the packets on the host's link, both ways", False, True,
                  settles=True),
    "lag": Fault("lag", f"delay every packet leaving the host by {LAG_MS} ms (tc netem)", False, True,
                 settles=True),
}
NETWORK_FAULTS = ("isolate", "isolate-dcs", "partition", "loss", "lag")
# Which targets a fault takes besides nodes (primary | replica | a node name).
OTHER_TARGETS = {"dcs-down": "dcs", "haproxy-kill": "haproxy", "isolate": "any", "loss": "any", "lag": "any"}


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
            # The supervisor (systemd's Restart=, a container's restart policy) brings it back.
            b.crash_node(target)
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
        elif fault == "haproxy-kill":
            b.kill_component(target)
        elif fault in NETWORK_FAULTS:
            self._network(fault, target)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def _network(self, fault: str, target: str) -> None:
        net = self.backend
        if not isinstance(net, NetworkFaults):
            raise BackendError(f"{fault} needs hosts of their own: bring the cluster up with --backend netns")
        dcs = [place.name for place in topology(self.spec).dcs]
        if fault == "isolate":
            net.isolate(target)
        elif fault == "isolate-dcs":
            net.cut(target, dcs)
        elif fault == "partition":
            # The node and a minority of the DCS: the DCS majority side can still elect.
            net.partition([target, *dcs[: len(dcs) // 2]])
        elif fault == "loss":
            net.lose_packets(target, LOSS_PERCENT)
        elif fault == "lag":
            net.lag(target, LAG_MS)

    def heal(self, fault: str, target: str) -> None:
        b = self.backend
        if fault in ("stop", "node-loss", "stall-then-kill", "kill"):
            b.start_node(target)
        elif fault == "freeze":
            b.thaw_node(target)
        elif fault == "dcs-down":
            for member in self._dcs_members(target):
                b.start_dcs_member(member)
        elif fault == "haproxy-kill":
            b.start_component(target)
        elif fault in NETWORK_FAULTS and isinstance(b, NetworkFaults):
            b.heal_network()

    def _dcs_members(self, target: str) -> list[int]:
        if target == "all":
            return list(range(self.spec.dcs.members))
        if target == "majority":
            return list(range(self.spec.dcs.members // 2 + 1))
        return [int(target.removeprefix("dcs"))]

    def _switchover(self, leader: str) -> None:
        token = base64.b64encode(f"{REST_USER}:{self.rest_password}".encode()).decode()
        status, body = http_request(self.backend.reach.rest(leader), "switchover", 30, method="POST",
                                    body={"leader": leader}, headers={"Authorization": f"Basic {token}"})
        if status >= 400:
            raise BackendError(f"switchover refused by {leader}: HTTP {status} {body}")
