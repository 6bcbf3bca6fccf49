"""The drill's single source of truth: one append-only list of events (JSON lines on disk).

Vocabulary (after Jepsen):
- process: who did it: "writer-0", "reader-0", "monitor", "nemesis", "drill".
- type: "invoke" (an operation starts), "ok" (it definitely happened), "fail" (it definitely did
  not happen), "info" (outcome unknown, or a plain observation).
- op: what was done:
    "write"  value = the row id (int); node = the node that committed it (on "ok")
    "read"   value = {"port": int, "in_recovery": bool} on "ok"
    "role"   process "monitor", type "info", node = the node polled, value = RoleSample fields
    "fault"  process "nemesis", type "info", value = {"fault": str, "target": node name}
    "heal"   process "nemesis", type "info", value = {"fault": str, "target": node name}
    "phase"  process "drill", type "info", value = {"phase": "steady" | "fault" | "recovered" |
             "healed" | "rejoined" | "done"}
- time: seconds since the epoch (float, time.time()).

A write's "invoke" and its completion share the same value (the id), so a checker pairs them by
(process, value).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

EventType = Literal["invoke", "ok", "fail", "info"]


@dataclass(frozen=True)
class Event:
    time: float
    process: str
    type: EventType
    op: str
    value: Any = None
    node: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Event:
        data = json.loads(line)
        return cls(
            time=float(data["time"]),
            process=str(data["process"]),
            type=data["type"],
            op=str(data["op"]),
            value=data.get("value"),
            node=data.get("node"),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class RoleSample:
    """What the monitor saw on one node at one moment (the value of a "role" event).

    rest_role: Patroni's role from GET /patroni ("primary", "replica", ...; None: no answer).
    in_recovery: pg_is_in_recovery() over a direct connection (None: could not connect).
    accepts_writes: in_recovery is False and the node is not read-only (default_transaction_read_only
    off): this node would have acknowledged a write at that moment.
    timeline: the node's timeline (None: unknown).
    streaming: the node is a replica with a live walreceiver (Patroni state "streaming").
    """

    rest_role: str | None
    in_recovery: bool | None
    accepts_writes: bool
    timeline: int | None = None
    streaming: bool = False


@dataclass(frozen=True)
class FinalState:
    """What the drill read after the load stopped and the cluster settled."""

    primary: str | None  # node name of the final primary (None: none)
    rows: dict[str, list[int]]  # node -> ids present in the drill table on that node
    caught_up: dict[str, bool]  # node -> replica had replayed everything the primary had
    timelines: dict[str, int | None] = field(default_factory=dict)
    # The primary's WAL archive after the load (clusters with backups): pg_stat_archiver's
    # failed_count, last_failed_time and last_archived_time (epoch s), and "passed" or why
    # `pgbackrest check` (a segment switched now reaches the repository) failed. None: no backups.
    archive: dict[str, float | int | str | None] | None = None
    # The fencing guards' fences during the run: (node, epoch seconds). None: no guard (no fencing).
    fences: list[tuple[str, float]] | None = None


@dataclass(frozen=True)
class CheckerResult:
    name: str  # "outage" | "lost_writes" | "split_brain" | "rejoin" | ...
    passed: bool
    summary: str  # one plain sentence
    metrics: dict[str, float | int | str | None] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)


class History:
    """Events in memory and, when a path is given, appended to a JSON-lines file as they come."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._events: list[Event] = []
        self._lock = threading.Lock()  # writers, the reader, the monitor and the nemesis share it
        self._file = open(path, "a", buffering=1) if path is not None else None  # noqa: SIM115

    def append(self, event: Event) -> Event:
        with self._lock:
            self._events.append(event)
            if self._file is not None:
                self._file.write(event.to_json() + "\n")
        return event

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


def read_history(path: Path) -> list[Event]:
    return [Event.from_json(line) for line in path.read_text().splitlines() if line.strip()]


def sorted_events(events: Iterable[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.time)


@dataclass(frozen=True)
class RunInfo:
    """What a drill run was (meta.json in the run directory)."""

    cluster: str
    profile: str
    fault: str
    target: str  # the faulted node, by name
    via: str  # "haproxy" | "multihost"
    rate: float  # writes per second asked for
    started: float
    ended: float
    old_primary: str | None
    new_primary: str | None
    nodes: list[str] = field(default_factory=list)
    ttl: int | None = None
    loop_wait: int | None = None
    synchronous_mode: bool | None = None
    # How HAProxy learns of a new primary (pgha.report.seconds): its checks, or pgha's pushed routing.
    haproxy_inter_ms: int | None = None
    haproxy_rise: int | None = None
    haproxy_fastinter_ms: int | None = None
    haproxy_downinter_ms: int | None = None
    push_routing: bool | None = None
    # What else decides how fast a new primary serves (the report's "what the default sets instead").
    retry_timeout: int | None = None
    haproxy_fall: int | None = None
    haproxy_maxconn: int | None = None
    haproxy_timeout_connect_ms: int | None = None
    # With a fencing guard (spec.fencing): how long the primary must be silent before it is fenced.
    fence_after_s: float | None = None


@dataclass(frozen=True)
class LogLine:
    """One meaningful line from a component's log, placed on the drill's clock."""

    time: float
    component: str  # "node0", "postgresql-node0", "haproxy", "dcs1"
    node: str | None  # the node it concerns, where one can tell
    kind: str  # e.g. "lock_acquired", "promoted", "demoted", "following", "rewind", "backend_down"
    message: str
