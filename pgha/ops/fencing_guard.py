"""The fencing guard: a lost primary is fenced, then replaced at once instead of after Patroni's ttl.

Shipped to every HAProxy host as one file (standard library, psutil and Patroni only: it runs with
the Python of the host's Patroni venv, where pgha is not installed):

    python fencing_guard.py CONFIG

Patroni lets no replica take over while the old leader's key lives (ttl, at least 20 s), because
nothing proves the old primary is gone. The guard proves it, then removes the key:

1. one guard at a time is active: it holds a key of its own in the DCS under the DCS's own lease
   (etcd), renewed every tick; a guard that cannot renew it does nothing;
2. it asks every node's Patroni (`GET /patroni`) several times a second, each node in a thread of
   its own; when the leader's Patroni has not answered as the primary for `fence_after_s` (a
   Patroni that answers is alive and in charge, even while its PostgreSQL restarts) **and** the
   replicas confirm it from where they stand (the synchronous standby, and every other replica
   that answers, reports that its WAL receiver is not streaming: with a short
   `wal_receiver_timeout` a standby gives up on a silent primary within seconds, while a healthy
   idle primary answers its pings), so that a guard cut off from a healthy primary does nothing,
3. it fences the primary (signals to its Patroni and postmaster process trees, or an operator's
   fence command, the fence-agents convention), verifies the fence (the processes gone; after a
   command, nothing answering on the node's ports), and only then deletes the leader key, on the condition that it
   still names that node. Patroni's replicas watch that key: they hold their election at once, and
   with synchronous_mode only the synchronous standby can win, so no acknowledged write is lost.

A fenced node stays down (nothing here restarts it); started again, it rejoins as a replica. Every
observation that changes what the guard does, and every decision, is one line of its log; its state
(active, armed, watching which leader, what it fenced) is a JSON file pgha reads for status/check.

The decision is `decide`, a pure function of what the guard remembers and what it saw this tick.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("pgha-fencing-guard")

LOG_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
# How long a fence may take to be seen complete before the guard gives up on it (and does nothing more).
VERIFY_WITHIN_S = 5.0
# The fences a guard's state file lists (pgha's drills read those of their run).
FENCES_KEPT = 50
# How long a port is given to answer when the guard checks that a fenced node is unreachable.
PORT_CHECK_S = 0.3


# --- the decision (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSeen:
    name: str
    answered: bool  # its Patroni answered GET /patroni lately, its PostgreSQL running
    streaming: bool  # ... and said its WAL receiver streams from the primary
    sync: bool  # the DCS names it the synchronous standby


@dataclass(frozen=True)
class Seen:
    """One tick's observations (times are monotonic seconds)."""

    at: float
    active: bool  # this guard holds the guards' key (renewed this tick)
    leader: str | None  # the node the leader key names; None: no leader key
    # When the leader's Patroni last answered as the primary (the start of that probe); None: never.
    leader_answered_at: float | None
    replicas: tuple[ReplicaSeen, ...] = ()


@dataclass(frozen=True)
class Settings:
    fence_after_s: float
    synchronous_mode: bool
    # A primary that answered within this long (a probe's cadence and timeout) still answers.
    answering_within_s: float = 1.0


@dataclass(frozen=True)
class Memory:
    leader: str | None = None
    # When this guard first saw that node hold the leader key: a node is not silent as a primary
    # for longer than it has been one.
    leader_since: float | None = None
    fenced: frozenset[str] = frozenset()  # nodes this guard fenced, until they answer again


@dataclass(frozen=True)
class Decision:
    action: str  # NONE, FENCE (then verify, then delete the key), DELETE_KEY (fenced already)
    reason: str  # one sentence for the log; the same sentence for the same situation


NONE, FENCE, DELETE_KEY = "none", "fence", "delete-key"


def _confirmation(seen: Seen, settings: Settings) -> str | None:
    """None when the replicas confirm that the leader is gone, else why they do not."""
    answered = [r for r in seen.replicas if r.answered]
    if not answered:
        return "no replica answers to confirm it"
    streaming = [r.name for r in answered if r.streaming]
    if streaming:
        return f"{', '.join(streaming)} still stream{'s' if len(streaming) == 1 else ''} from it"
    sync = [r for r in seen.replicas if r.sync]
    if settings.synchronous_mode:
        if not sync:
            return "there is no synchronous standby to take over"
        if not any(r.answered for r in sync):
            return f"the synchronous standby {sync[0].name} does not answer"
    return None


def silence(memory: Memory, seen: Seen) -> float:
    """How long the leader has not answered as a primary (0 without a leader)."""
    if seen.leader is None:
        return 0.0
    since = memory.leader_since if memory.leader == seen.leader and memory.leader_since is not None else seen.at
    last = max(since, seen.leader_answered_at if seen.leader_answered_at is not None else since)
    return max(0.0, seen.at - last)


def decide(memory: Memory, seen: Seen, settings: Settings) -> tuple[Memory, Decision]:
    """What the guard does after this tick, and what it remembers for the next."""
    silent = silence(memory, seen)
    answering = seen.leader is not None and silent <= settings.answering_within_s
    back = {r.name for r in seen.replicas if r.answered} | ({seen.leader} if answering else set())
    fenced = frozenset(memory.fenced - back)
    if seen.leader is None:
        return Memory(None, None, fenced), Decision(NONE, "no leader key: Patroni's election is under way")
    since = memory.leader_since if memory.leader == seen.leader and memory.leader_since is not None else seen.at
    remembered = Memory(seen.leader, since, fenced)
    if answering:
        return remembered, Decision(NONE, f"the primary {seen.leader} answers")
    if not seen.active:
        return remembered, Decision(NONE, f"the primary {seen.leader} does not answer, but this guard does not "
                                          "hold the guards' key (another guard is the active one, or it cannot "
                                          "renew it): not fencing")
    if seen.leader in fenced:
        return remembered, Decision(DELETE_KEY, f"the leader key still names {seen.leader}, which this guard "
                                                "fenced: removing it")
    if silent < settings.fence_after_s:
        return remembered, Decision(NONE, f"the primary {seen.leader} stopped answering: fenced if it stays "
                                          f"silent for {settings.fence_after_s:g} s and its replicas confirm it")
    unconfirmed = _confirmation(seen, settings)
    if unconfirmed is not None:
        return remembered, Decision(NONE, f"the primary {seen.leader} has been silent for "
                                          f"{settings.fence_after_s:g} s or more, but {unconfirmed}: not fencing")
    return remembered, Decision(FENCE, f"the primary {seen.leader} has been silent for {silent:.1f} s and no "
                                       "replica receives from it: fencing it")


# --- the edges: configuration, probes, the DCS, fencing -------------------------------------------


@dataclass(frozen=True)
class NodeConfig:
    name: str
    rest: str  # the base URL of its Patroni REST API
    ports: tuple[tuple[str, int], ...]  # (address, port) of everything it listens on
    fence: dict[str, Any]  # {"signal": {"pidfile": ..., "pgdata": ...}} or {"command": [argv]}


@dataclass(frozen=True)
class Config:
    name: str
    scope: str
    namespace: str
    guard_namespace: str
    settings: Settings
    interval_s: float
    probe_timeout_s: float
    lease_ttl_s: int
    dcs: dict[str, Any]  # Patroni's section for the DCS, with the guard's login
    rest_ca: str | None
    state_file: str
    nodes: tuple[NodeConfig, ...] = field(default=())

    @classmethod
    def load(cls, path: str) -> Config:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        nodes = tuple(NodeConfig(n["name"], n["rest"], tuple((a, int(p)) for a, p in n["ports"]), n["fence"])
                      for n in raw["nodes"])
        return cls(raw["name"], raw["scope"], raw["namespace"], raw["guard_namespace"],
                   Settings(float(raw["fence_after_s"]), bool(raw["synchronous_mode"]),
                            float(raw["interval_s"]) + float(raw["probe_timeout_s"])),
                   float(raw["interval_s"]), float(raw["probe_timeout_s"]), int(raw["lease_ttl_s"]),
                   raw["dcs"], raw.get("rest_ca"), raw["state_file"], nodes)

    def node(self, name: str) -> NodeConfig | None:
        return next((n for n in self.nodes if n.name == name), None)


def _http_get(url: str, timeout: float, ctx: ssl.SSLContext | None) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


@dataclass(frozen=True)
class Answer:
    at: float  # when the probe started (monotonic)
    primary: bool  # Patroni says it is the primary
    running: bool  # its PostgreSQL runs (a replica whose PostgreSQL does not can vouch for nothing)
    streaming: bool  # a replica whose WAL receiver streams


class Prober:
    """Asks one node's Patroni (GET /patroni) every interval in a thread of its own, so a node that
    hangs delays no other observation; remembers its latest answers."""

    def __init__(self, node: NodeConfig, interval: float, timeout: float, ctx: ssl.SSLContext | None) -> None:
        self.node, self.interval, self.timeout, self.ctx = node, interval, timeout, ctx
        self.latest: Answer | None = None  # the latest probe that got an answer
        self.last_primary_at: float | None = None  # the start of the latest that found Patroni a primary
        self.thread = threading.Thread(target=self._run, name=f"probe-{node.name}", daemon=True)

    def start(self) -> Prober:
        self.thread.start()
        return self

    def _ask(self) -> Answer | None:
        started = time.monotonic()
        try:
            status, body = _http_get(f"{self.node.rest}/patroni", self.timeout, self.ctx)
        except (OSError, ValueError):
            return None
        if status not in (200, 503) or not isinstance(body, dict):
            return None
        # Patroni answering as the primary, whatever its PostgreSQL is doing (restarting, recovering
        # from a crash): Patroni is alive and in charge, and lets the key go itself if it must.
        primary = body.get("role") in ("primary", "master")
        return Answer(started, primary, body.get("state") == "running", body.get("replication_state") == "streaming")

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            answer = self._ask()
            if answer is not None:
                self.latest = answer
                if answer.primary:
                    self.last_primary_at = answer.at
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def replica_seen(self, now: float, fresh_within: float, sync: bool) -> ReplicaSeen:
        """What this node, a replica, says of the primary: only a running replica that answered
        lately is a witness (one whose PostgreSQL is down receives nothing from anyone)."""
        latest = self.latest
        if latest is None or now - latest.at > fresh_within or not latest.running:
            return ReplicaSeen(self.node.name, False, False, sync)
        return ReplicaSeen(self.node.name, True, latest.streaming, sync)


def _psutil() -> Any:
    import psutil  # Patroni's own dependency, so it is in every node venv

    return psutil


def _start_ticks(pid: int) -> int:
    """When the process started, in clock ticks since boot: unlike psutil's create_time (boot time
    plus that), it does not move when the wall clock is slewed (pgha.state.procs, the same)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def _recorded_process(pidfile: str) -> Any:
    """The live process a pgha pidfile ({"pid", "create_time", "start_ticks"}) records, or None."""
    psutil = _psutil()
    try:
        data = json.loads(Path(pidfile).read_text())
        proc = psutil.Process(int(data["pid"]))
        if "start_ticks" in data:
            same = _start_ticks(proc.pid) == int(data["start_ticks"])
        else:
            same = abs(proc.create_time() - float(data["create_time"])) <= 1.5
        return proc if same else None
    except (OSError, ValueError, KeyError, IndexError, psutil.Error):
        return None


def _postmaster(pgdata: str) -> Any:
    psutil = _psutil()
    try:
        first = (Path(pgdata) / "postmaster.pid").read_text().splitlines()[0]
        proc = psutil.Process(int(first))
        cmd = proc.cmdline()
        return proc if cmd and "postgres" in Path(cmd[0]).name else None
    except (OSError, IndexError, ValueError, psutil.Error):
        return None


def fence_by_signal(how: dict[str, Any]) -> list[int]:
    """SIGKILL to the node's Patroni and postmaster and everything under them (a frozen process
    dies of it too); the pids signalled."""
    psutil = _psutil()
    mains = [p for p in (_recorded_process(how["pidfile"]), _postmaster(how["pgdata"])) if p is not None]
    targets: dict[int, Any] = {}
    for main in mains:
        targets[main.pid] = main
        with contextlib.suppress(psutil.Error):
            for child in main.children(recursive=True):
                targets[child.pid] = child
    for proc in targets.values():
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    return sorted(targets)


def fence_by_command(argv: list[str], node: str) -> str | None:
    """The operator's fence command (IPMI, a cloud API): None when it exited 0, else why not."""
    try:
        done = subprocess.run([*argv, node], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the fence command could not run: {e}"
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return f"the fence command exited {done.returncode}: {last[0]}"
    return None


def port_closed(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=PORT_CHECK_S):
            return False
    except OSError:
        return True


def _alive(pid: int) -> bool:
    # A killed process is a zombie until whoever adopted it reaps it: dead for the guard's purpose.
    psutil = _psutil()
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def node_gone(node: NodeConfig, pids: list[int] | None) -> bool:
    """Signalled (pids): every process is gone, which proves it; fenced by a command: nothing
    answers on any of the node's ports."""
    if pids is not None:
        return not any(_alive(pid) for pid in pids)
    return all(port_closed(a, p) for a, p in node.ports)


class Dcs:
    """The cluster's keys and the guards' own key, through Patroni's own DCS classes."""

    def __init__(self, cfg: Config) -> None:
        from patroni.dcs import get_dcs

        self._get_dcs = get_dcs
        self.cfg = cfg
        self.cluster_view = self._dcs(cfg.scope, cfg.namespace, cfg.name, ctl=True)
        # Not a patronictl client: a lease of its own, renewed every tick, and a watcher.
        self.guards = self._dcs(cfg.scope, cfg.guard_namespace, cfg.name, ctl=False, ttl=cfg.lease_ttl_s)

    def _dcs(self, scope: str, namespace: str, name: str, *, ctl: bool, ttl: int = 30) -> Any:
        section = {k: (list(v) if isinstance(v, list) else v) for k, v in self.cfg.dcs.items()}
        key = next(iter(section))
        config = {"scope": scope, "namespace": namespace, "name": name, "ttl": ttl, "loop_wait": 1,
                  "retry_timeout": 2, "patronictl": ctl, key: dict(section[key])}
        return self._get_dcs(config)

    def cluster(self) -> Any:
        return self.cluster_view.get_cluster()

    def hold_guard_key(self) -> bool:
        """Whether this guard holds the guards' key now (taken or renewed this tick)."""
        view = self.guards.get_cluster()
        if view.leader is not None and view.leader.name == self.cfg.name:
            return bool(self.guards.update_leader(view, None))
        if view.leader is None:
            return bool(self.guards.attempt_to_acquire_leader())
        return False

    def delete_leader_key(self, cluster: Any, node: str) -> bool:
        """Delete the leader key if it still names `node` (a compare-and-delete: a key a new leader
        took meanwhile stays)."""
        as_node = self._dcs(self.cfg.scope, self.cfg.namespace, node, ctl=True)
        return bool(as_node.delete_leader(cluster.leader))


class Guard:
    def __init__(self, cfg: Config, dcs: Dcs) -> None:
        self.cfg = cfg
        self.dcs = dcs
        self.memory = Memory()
        ctx = ssl.create_default_context(cafile=cfg.rest_ca) if cfg.rest_ca else None
        self.probers = {n.name: Prober(n, cfg.interval_s, cfg.probe_timeout_s, ctx).start() for n in cfg.nodes}
        self.last_reason = ""
        self.fence_failed: set[str] = set()
        self.fenced_at: dict[str, str] = {}
        self.fences: list[dict[str, Any]] = []  # every fence of this guard's life, the latest last
        self.state: dict[str, Any] = {}
        self.written = 0.0
        self.was_active: bool | None = None

    def say(self, reason: str, level: int = logging.INFO) -> None:
        """One line per change of mind, not one per tick."""
        if reason != self.last_reason:
            log.log(level, reason)
            self.last_reason = reason

    def observe(self) -> tuple[Seen, Any]:
        try:
            active = self.dcs.hold_guard_key()
        except Exception as e:
            self.say(f"cannot renew the guards' key ({e.__class__.__name__}): standing by", logging.WARNING)
            active = False
        cluster = self.dcs.cluster()
        at = time.monotonic()
        leader = cluster.leader.name if cluster.leader is not None else None
        sync_names = set(cluster.sync.members) if cluster.sync is not None else set()
        prober = self.probers.get(leader) if leader else None
        answered_at = prober.last_primary_at if prober is not None else None
        fresh = self.cfg.settings.answering_within_s
        replicas = tuple(p.replica_seen(at, fresh, name in sync_names)
                         for name, p in self.probers.items() if name != leader)
        return Seen(at, active, leader, answered_at, replicas), cluster

    def tick(self) -> None:
        try:
            seen, cluster = self.observe()
        except Exception as e:
            self.say(f"the DCS does not answer ({e.__class__.__name__}): doing nothing", logging.WARNING)
            self.write_state(active=False, armed=False, why="the DCS does not answer")
            return
        before = self.memory.fenced
        self.fence_failed &= {seen.leader}  # a failed fence is not tried again on the same leader
        if seen.active != self.was_active:
            log.info("this guard holds the guards' key: it is the active one" if seen.active
                     else "this guard does not hold the guards' key: standing by")
            self.was_active = seen.active
        self.memory, decision = decide(self.memory, seen, self.cfg.settings)
        for name in sorted(before - self.memory.fenced):
            log.info(f"{name}, fenced earlier, answers again: it is back in the cluster")
        level = logging.WARNING if decision.action != NONE else logging.INFO
        self.say(decision.reason, level)
        if decision.action == FENCE and seen.leader is not None:
            self.fence(seen.leader, cluster)
        elif decision.action == DELETE_KEY and seen.leader is not None:
            self.delete_key(seen.leader, cluster)
        armed = seen.active and seen.leader is not None
        why = "active" if seen.active else "standing by: another guard holds the guards' key"
        self.write_state(active=seen.active, armed=armed, why=why, leader=seen.leader)

    def fence(self, node: str, cluster: Any) -> None:
        if node in self.fence_failed:
            return
        target = self.cfg.node(node)
        if target is None:
            self.say(f"the leader key names {node}, which this guard does not know: not fencing", logging.ERROR)
            return
        how = target.fence
        pids: list[int] | None = None
        if "signal" in how:
            pids = fence_by_signal(how["signal"])
            log.warning(f"fenced {node}: SIGKILL to {len(pids)} processes of its Patroni and PostgreSQL")
        else:
            failed = fence_by_command(list(how["command"]), node)
            if failed is not None:
                self.fence_failed.add(node)
                log.error(f"fencing {node} failed ({failed}): doing nothing more; Patroni's ttl decides")
                return
            log.warning(f"fenced {node}: the fence command exited 0")
        deadline = time.monotonic() + VERIFY_WITHIN_S
        while not node_gone(target, pids):
            if time.monotonic() > deadline:
                self.fence_failed.add(node)
                log.error(f"{node} still answers {VERIFY_WITHIN_S:g} s after its fence: not touching the leader "
                          "key; Patroni's ttl decides")
                return
            time.sleep(0.02)
        log.warning(f"{node} is fenced: " + ("none of its processes runs" if pids is not None
                                             else "none of its ports answers"))
        self.memory = replace(self.memory, fenced=self.memory.fenced | {node})
        now = time.time()
        self.fenced_at[node] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        self.fences = [*self.fences, {"node": node, "at": now}][-FENCES_KEPT:]
        self.delete_key(node, cluster)

    def delete_key(self, node: str, cluster: Any) -> None:
        try:
            deleted = self.dcs.delete_leader_key(cluster, node)
        except Exception as e:
            log.error(f"could not delete the leader key of {node} ({e.__class__.__name__}): trying again")
            return
        if deleted:
            log.warning(f"deleted the leader key of {node}: the replicas hold their election now")
        else:
            log.warning(f"the leader key no longer names {node}: left as it is")

    def write_state(self, *, active: bool, armed: bool, why: str, leader: str | None = None) -> None:
        """Written when it changes, and at least once a second (its age says the guard runs)."""
        state = {"guard": self.cfg.name, "active": active, "armed": armed, "why": why, "leader": leader,
                 "fence_after_s": self.cfg.settings.fence_after_s, "fenced": dict(self.fenced_at),
                 "fences": list(self.fences)}
        now = time.time()
        if state == self.state and now - self.written < 1.0:
            return
        self.state, self.written = state, now
        path = Path(self.cfg.state_file)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({**state, "updated": now}))
        os.replace(tmp, path)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)
    logging.getLogger("patroni").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if len(argv) != 2:
        print("usage: fencing_guard.py CONFIG", file=sys.stderr)
        return 2
    cfg = Config.load(argv[1])
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Nothing to reload (its files are read at start): a stray SIGHUP must not end it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    guard = Guard(cfg, Dcs(cfg))
    log.info(f"guard {cfg.name} of cluster {cfg.scope} starts: a silent primary is fenced after "
             f"{cfg.settings.fence_after_s:g} s once its replicas confirm it")
    while not stopping:
        started = time.monotonic()
        guard.tick()
        time.sleep(max(0.0, cfg.interval_s - (time.monotonic() - started)))
    log.info(f"guard {cfg.name} stops")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
