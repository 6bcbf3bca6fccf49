"""Component logs -> the few lines that tell the story of a drill, on the drill's clock.

Pure functions: text in, LogLine out. Every component logs in UTC; times become epoch seconds so
they line up with the history's events.

Which parser a component gets is decided by its name (the log file's stem):
    "haproxy", "haproxy1", ..         HAProxy (`log stdout format iso`), one log per HAProxy host
    "postgresql-<node>"               PostgreSQL (log_line_prefix '%m [%p] ')
    "dcs<i>"                          etcd (zap JSON) or ZooKeeper (log4j), told apart per line
    "guard", "guard1", ..             the fencing guards (one line per decision, as pgha's own)
    anything else ("node0", "postgresql0" in the lab profile)   Patroni

Kinds (LogLine.kind):
    Patroni:    patroni_start, lock_acquired, promoted, demoted, following, lock_free, lock_owner,
                rewind, starting, crash_recovery, bootstrap, failsafe, dcs_error, leader_race,
                race_probe (a member asked for its state), error
    PostgreSQL: pg_ready, pg_ready_ro, pg_promoted, pg_shutdown, pg_stopped, pg_crash,
                crash_recovery, diverged, standby, recovery, timeline, streaming, replication_lost, sync
    HAProxy:    backend_up, backend_down, no_server
    etcd:       dcs_leader, dcs_leader_lost, dcs_event, dcs_peer
    ZooKeeper:  dcs_leader, dcs_follower, dcs_looking, session_expired, dcs_event
    guard:      guard (what it saw and decided), fenced (a fence and the leader key it removed)

Patroni and PostgreSQL repeat themselves every loop (Patroni) or every retry (PostgreSQL's
walreceiver); a repeated line says nothing new, so per component a line is kept only when it
changes the state it reports (see _Dedup and the per-format notes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pgha.drill.history import LogLine

Classified = tuple[str, str]  # (kind, message)

# ---------------------------------------------------------------- timestamps


def _epoch(date_time: str, fraction: str = "0") -> float:
    """'2026-11-27 15:48:21' (or with a 'T') + a decimal fraction, in UTC -> epoch seconds."""
    dt = datetime.strptime(date_time.replace("T", " "), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return dt.timestamp() + float("0." + fraction)


def _iso_epoch(stamp: str) -> float | None:
    try:
        dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    # A stamp without an offset is still UTC: every component runs with TZ=UTC.
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


# ---------------------------------------------------------------- repetition


@dataclass
class _Dedup:
    """Per kind, the messages already kept: a message seen before says nothing new.

    Reset when something happened that makes the lines news again (a restart, a role change).
    """

    seen: dict[str, set[str]] = field(default_factory=dict)

    def fresh(self, kind: str, message: str) -> bool:
        messages = self.seen.setdefault(kind, set())
        if message in messages:
            return False
        messages.add(message)
        return True

    def reset(self, keep: str | None = None) -> None:
        """Forget every kind's messages but `keep`'s."""
        self.seen = {kind: seen for kind, seen in self.seen.items() if kind == keep}


# ---------------------------------------------------------------- Patroni

_PATRONI = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ([A-Z]+): (.*)$")
_LOCK_OWNER = re.compile(r"^Lock owner: (\S+?); I am (\S+)")
_FOLLOWING_LEADER = re.compile(r"following a leader \((\S+?)\)")
_PATRONI_START = re.compile(r"^(Using default value thread_stack_size|Patroni global thread_pool_size)")
_STEADY_OWNER = re.compile(
    r"^no action\. I am \((\S+?)\), the leader with the lock|^no action\. .*following a leader \((\S+?)\)"
)
_UNKNOWN = "\0unknown"  # no "Lock owner" line seen yet: the first one is the steady state, not news

# First match wins; the order matters where phrases overlap ("cleared rewind state after
# becoming the leader" is a promotion, not a rewind).
_PATRONI_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lock_acquired", re.compile(r"acquired session lock|acquiring session lock|promoted self to leader", re.I)),
    ("promoted", re.compile(r"cleared rewind state after becoming the leader|updated leader lock during promote")),
    ("demoted", re.compile(r"\bdemot", re.I)),
    ("rewind", re.compile(r"rewind", re.I)),
    ("failsafe", re.compile(r"failsafe", re.I)),
    ("dcs_error", re.compile(
        r"Error communicating with DCS|DCS is not accessible|waiting on (etcd|zookeeper)|"
        r"watchprefix failed|Failed to get list of machines|failed to update leader lock|"
        r"Connection to (etcd|zookeeper)|KazooTimeout|SessionExpired|EtcdConnectionFailed",
        re.I,
    )),
    ("following", re.compile(r"following (a different|new) leader|following a leader \(", re.I)),
    ("starting", re.compile(r"starting as (a secondary|readonly)|restarting after failure", re.I)),
    ("crash_recovery", re.compile(r"crash recovery", re.I)),
    ("bootstrap", re.compile(r"bootstrap|initialized a new cluster|replica has been created", re.I)),
    ("leader_race", re.compile(r"leader race|Could not take out TTL lock|failed to acquire initialize lock", re.I)),
    # Patroni asking another member for its state: in the leader race (is this node the healthiest?)
    # and in a primary's shutdown (is there a candidate?). Rewritten short: the member and the answer.
    ("race_probe", re.compile(r"^(Got response from|Request failed to) \S+?[: ]")),
)
_PROBED = re.compile(r"^(Got response from|Request failed to) (\S+?)[: ]")


def _patroni_kind(message: str) -> str | None:
    return next((kind for kind, rule in _PATRONI_RULES if rule.search(message)), None)


def _parse_patroni(component: str, text: str, node: str | None) -> list[LogLine]:
    out: list[LogLine] = []
    dedup = _Dedup()
    owner = _UNKNOWN
    leader = ""  # whom the last kept "following" line named (or its text, when it names no one)
    for raw in text.splitlines():
        m = _PATRONI.match(raw)
        if m is None:  # initdb / pg_ctl / pg_controldata output, PostgreSQL's own early lines
            continue
        t = _epoch(m[1], m[2])
        level, message = m[3], m[4].strip()

        if _PATRONI_START.match(message):
            # A new Patroni process: everything it says from now on is news again.
            dedup.reset()
            leader = ""
            if not (out and out[-1].kind == "patroni_start" and t - out[-1].time < 5.0):  # both start lines
                out.append(LogLine(t, component, node, "patroni_start", "Patroni started"))
            continue

        lock = _LOCK_OWNER.match(message)
        if lock is not None:
            new_owner = "" if lock[1] == "None" else lock[1]
            if new_owner != owner and owner != _UNKNOWN:
                if not new_owner:
                    out.append(LogLine(t, component, node, "lock_free", message))
                elif new_owner != lock[2]:  # our own lock shows up as lock_acquired already
                    out.append(LogLine(t, component, node, "lock_owner", message))
            owner = new_owner
            continue

        # The steady-state loop lines name the lock's owner too; without them a leader that never
        # printed "Lock owner: ..." would not see its lock pass to another node as news.
        steady = _STEADY_OWNER.match(message)
        if steady is not None:
            owner = steady[1] or steady[2]

        kind = _patroni_kind(message)
        if kind == "following":
            # "no action. ... following a leader (x)" comes every loop: news only when x changes.
            # Other "following ..." lines carry a reason, and the reason is the news.
            named = _FOLLOWING_LEADER.search(message)
            key = named[1] if named is not None else message
            if key == leader:
                continue
            leader = key
        elif kind is None:
            if level not in ("ERROR", "CRITICAL"):
                continue
            kind = "error"
            if not dedup.fresh(kind, message):
                continue
        elif message.startswith("no action."):
            continue  # a steady-state loop line that happens to match a rule
        elif kind == "starting":
            # "restarting after failure in progress" repeats every loop while PostgreSQL starts;
            # "starting as a secondary" again after a rewind is a new start.
            if out and out[-1].kind == kind and out[-1].message == message:
                continue
        elif kind == "race_probe":
            probed = _PROBED.match(message)
            assert probed is not None  # the rule matched the same start
            answer = "it answered" if probed[1] == "Got response from" else "no answer"
            message = f"asked {probed[2]} for its state: {answer}"
            if not dedup.fresh(kind, message):
                continue
        elif not dedup.fresh(kind, message):
            continue

        if kind in ("lock_acquired", "demoted"):
            # A role change: what the node repeated before (starting, errors, races) is news again;
            # the change's own follow-up lines ("starting after demotion in progress") are not.
            dedup.reset(keep=kind)
            leader = ""
        elif kind == "starting":
            dedup.reset()
            leader = ""
        out.append(LogLine(t, component, node, kind, message))
    return out


# ---------------------------------------------------------------- PostgreSQL

_POSTGRES = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d+))? (?:UTC|GMT|\+00|Z)? ?\[\d+\] ([A-Z]+):\s+(.*)$"
)

_POSTGRES_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("pg_ready_ro", re.compile(r"database system is ready to accept read-only connections")),
    ("pg_ready", re.compile(r"database system is ready to accept connections")),
    ("pg_promoted", re.compile(r"received promote request|selected new timeline ID")),
    ("pg_shutdown", re.compile(r"received (fast|smart|immediate) shutdown request")),
    ("pg_stopped", re.compile(r"database system is shut down")),
    ("pg_crash", re.compile(
        r"terminating any other active server processes|server process .* was terminated by signal|"
        r"all server processes terminated; reinitializing|was terminated by signal"
    )),
    ("crash_recovery", re.compile(r"was not properly shut down; automatic recovery")),
    # A rejoining old primary that wrote past the fork point: pg_rewind (or a rebuild) must follow.
    ("diverged", re.compile(r"forked off current database system timeline")),
    ("streaming", re.compile(r"started streaming WAL from primary|restarted WAL streaming")),
    ("replication_lost", re.compile(
        r"replication terminated by primary server|could not connect to the primary server|"
        r"could not receive data from WAL stream|could not start WAL streaming"
    )),
    ("timeline", re.compile(r"new target timeline is")),
    ("standby", re.compile(r"entering standby mode")),
    # "interrupted while in recovery" is also what a standby says after pg_rewind: not a crash.
    ("recovery", re.compile(r"redo done|archive recovery complete|was interrupted while in recovery")),
    ("sync", re.compile(r"is now a synchronous standby")),
)


def _postgres_kind(message: str) -> str | None:
    return next((kind for kind, rule in _POSTGRES_RULES if rule.search(message)), None)


def _parse_postgres(component: str, text: str, node: str | None) -> list[LogLine]:
    out: list[LogLine] = []
    replication = ""  # the last replication kind kept: the walreceiver retries every 5 s
    diverged: set[str] = set()
    for raw in text.splitlines():
        m = _POSTGRES.match(raw)
        if m is None:  # DETAIL/HINT continuation lines are tab-indented, without a stamp
            continue
        t = _epoch(m[1], m[2] or "0")
        level, message = m[3], m[4].strip()
        kind = _postgres_kind(message)
        if kind is None and level == "PANIC":
            kind = "pg_crash"
        if kind is None:
            continue
        if kind == "replication_lost":
            if replication == kind:
                continue
            replication = kind
        elif kind == "diverged":
            if message in diverged:
                continue  # the startup process repeats it after every failed streaming attempt
            diverged.add(message)
        elif kind in ("streaming", "pg_stopped", "pg_crash", "standby"):
            replication = ""  # a restarted or reconnected walreceiver may lose the primary again
            if kind != "streaming":
                diverged.clear()
        out.append(LogLine(t, component, node, kind, message))
    return out


# ---------------------------------------------------------------- HAProxy

_HAPROXY = re.compile(r"^(\d{4}-\d{2}-\d{2}T\S+) (.*)$")
_SERVER_STATE = re.compile(r"^Server (\S+?)/(\S+) is (?:going )?(UP|DOWN)\b")
_NO_SERVER = re.compile(r"^(?:proxy|backend) '?([^' ]+)'? has no server available")
# Check timings and session counters differ on every line and say nothing about the failover.
_HAPROXY_NOISE = re.compile(r", check duration: \d+ms|\s*\d+ sessions (active|requeued).*$")


def _parse_haproxy(component: str, text: str, node: str | None) -> list[LogLine]:
    out: list[LogLine] = []
    for raw in text.splitlines():
        # "[WARNING]  (pid) : ..." lines are HAProxy's stderr copies of the timestamped ones.
        m = _HAPROXY.match(raw)
        if m is None:
            continue
        t = _iso_epoch(m[1])
        if t is None:
            continue
        message = m[2].strip()
        state = _SERVER_STATE.match(message)
        if state is not None:
            kind = "backend_up" if state[3] == "UP" else "backend_down"
            out.append(LogLine(t, component, state[2], kind, _HAPROXY_NOISE.sub("", message).rstrip(" .") + "."))
            continue
        if _NO_SERVER.match(message) is not None:
            out.append(LogLine(t, component, node, "no_server", message))
    return out


# ---------------------------------------------------------------- etcd and ZooKeeper

_ETCD_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("dcs_leader_lost", re.compile(r"lost leader|stepped down to follower")),
    # Each member logs "elected leader"; the winner's "became leader" at the same instant repeats it.
    ("dcs_leader", re.compile(r"elected leader|leader changed")),
    ("dcs_event", re.compile(
        r"received signal; shutting down|closed etcd server|starting an etcd server|"
        r"restarting local member|member has been permanently removed"
    )),
    ("dcs_peer", re.compile(r"^peer became (in)?active")),
)

# log4j "%d{ISO8601} %-5p [%t] %c{1}: %m" (pgha.components.dcs.ZOOKEEPER_LOG4J); thread names nest brackets:
# "[QuorumPeer[myid=1](plain=127.0.0.1:2181)(secure=disabled)]".
_ZOOKEEPER = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ([A-Z]+)\s+\[.*?\] (\S+?): (.*)$")
_ZOOKEEPER_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("dcs_leader", re.compile(r"^LEADING\b")),
    ("dcs_follower", re.compile(r"^FOLLOWING\b")),
    ("dcs_looking", re.compile(r"^LOOKING\b")),
    ("session_expired", re.compile(r"^Expiring session")),
    ("dcs_event", re.compile(r"^(Shutting down|shutdown called|Shutdown called|Starting quorum peer)", re.I)),
)


def _etcd_line(raw: str) -> tuple[float, Classified] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None  # etcd's own non-JSON lines (grpc warnings, /health errors) repeat the raft ones
    if not isinstance(data, dict):
        return None
    msg, ts = str(data.get("msg", "")), data.get("ts")
    kind = next((k for k, rule in _ETCD_RULES if rule.search(msg)), None)
    t = _iso_epoch(ts) if isinstance(ts, str) else None
    if kind is None or t is None:
        return None
    peer = data.get("remote-peer-id") or data.get("peer-id")
    return t, (kind, f"{msg} ({peer})" if kind == "dcs_peer" and peer else msg)


def _zookeeper_line(raw: str) -> tuple[float, Classified] | None:
    m = _ZOOKEEPER.match(raw)
    if m is None:
        return None
    message = m[5].strip()
    kind = next((k for k, rule in _ZOOKEEPER_RULES if rule.search(message)), None)
    return None if kind is None else (_epoch(m[1], m[2]), (kind, f"{m[4]}: {message}"))


def _parse_dcs(component: str, text: str, node: str | None) -> list[LogLine]:
    out: list[LogLine] = []
    state = ""  # ZooKeeper logs its peer state several times per transition, and many "shutdown"s
    for raw in text.splitlines():
        parsed = _etcd_line(raw) if raw.startswith("{") else _zookeeper_line(raw)
        if parsed is None:
            continue
        t, (kind, message) = parsed
        if kind in ("dcs_leader", "dcs_follower", "dcs_looking", "dcs_event") and not raw.startswith("{"):
            key = kind if kind != "dcs_event" else ("start" if "Starting" in message else "stop")
            if key == state:
                continue
            state = key
        out.append(LogLine(t, component, node, kind, message))
    return out


# ---------------------------------------------------------------- entry points

Parser = Callable[[str, str, str | None], list[LogLine]]


# pgha's own decisions (pgha.state.journal): Patroni's format, then who decided.
_PGHA = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ([A-Z]+): (.*?)(?: \[pgha[\w.]*\])?$")


def _decisions(component: str, text: str, kind_of: Callable[[str, str], str]) -> list[LogLine]:
    """Every line is news: pgha and its guards log one line per decision, never a loop's repetition;
    kind_of(level, message) names its kind."""
    out: list[LogLine] = []
    for raw in text.splitlines():
        m = _PGHA.match(raw)
        if m is not None:
            out.append(LogLine(_epoch(m.group(1), m.group(2)), component, None, kind_of(m.group(3), m.group(4)),
                               m.group(4)))
    return out


def _parse_pgha(component: str, text: str, node: str | None) -> list[LogLine]:
    return _decisions(component, text, lambda level, _: "pgha" if level == "INFO" else "pgha_gave_up")


_FENCED = re.compile(r"fencing it|^fenced |is fenced:|deleted the leader key|fencing \S+ failed|after its fence")


def _parse_guard(component: str, text: str, node: str | None) -> list[LogLine]:
    return _decisions(component, text, lambda _, message: "fenced" if _FENCED.search(message) else "guard")


# Log names of the components that are not nodes; a node prefix can never produce them
# (spec refuses prefixes like "dcs" or "haproxy1"; "pgha" has no index).
HAPROXY_LOG = re.compile(r"haproxy\d*")
DCS_LOG = re.compile(r"dcs\d*")
GUARD_LOG = re.compile(r"guard\d*")
PGHA_LOG = "pgha"


def parser_for(component: str) -> Parser:
    """The parser for a component, by its name (see the module docstring)."""
    if HAPROXY_LOG.fullmatch(component):
        return _parse_haproxy
    if component.startswith("postgresql-"):
        return _parse_postgres
    if DCS_LOG.fullmatch(component):
        return _parse_dcs
    if component == PGHA_LOG:
        return _parse_pgha
    if GUARD_LOG.fullmatch(component):
        return _parse_guard
    return _parse_patroni


def parse_log(component: str, text: str, node: str | None) -> list[LogLine]:
    """The meaningful lines of one component's log, in file order, each with a kind."""
    return parser_for(component)(component, text, node)


def node_of(component: str) -> str | None:
    """The node a component's log is about: "node0" and "postgresql-node0" -> "node0"; the
    lab profile's "postgresql0" and "postgresql-postgresql0" -> "postgresql0"; HAProxy and DCS
    members -> None (HAProxy lines name their server themselves)."""
    if any(p.fullmatch(component) for p in (HAPROXY_LOG, DCS_LOG, GUARD_LOG)) or component == PGHA_LOG:
        return None
    return component.removeprefix("postgresql-") or None


def merge(lines: Iterable[list[LogLine]], start: float | None, end: float | None) -> list[LogLine]:
    """One time-ordered list within [start, end]; equal times keep the input order."""
    lo = float("-inf") if start is None else start
    hi = float("inf") if end is None else end
    # sorted() is stable, so same-instant lines stay in file order (and components in input order).
    return sorted((line for group in lines for line in group if lo <= line.time <= hi), key=lambda line: line.time)
