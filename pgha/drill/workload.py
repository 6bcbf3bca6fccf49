"""The drill's clients: writers through the entrypoint, a reader, and a monitor of every node.

Each write opens a fresh connection (connect_timeout bounds it), inserts one row with a unique
id and learns from inet_server_addr()/port() which node committed it. A fresh connection per write
means a write hangs only if the node freezes between connect and commit, so a frozen primary
cannot stall the whole load.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from typing import Any

import psycopg

from pgha.drill.history import Event, History, RoleSample
from pgha.model.topology import SERVER_SQL, server_names
from pgha.net.dial import PgTarget
from pgha.net.probe import node_rest
from pgha.net.reach import Reach

TABLE = "pgha_drill"
CONNECT_TIMEOUT = 2
MONITOR_INTERVAL = 0.2
READ_INTERVAL = 0.25
MAX_IN_FLIGHT = 64

# SQLSTATE classes after which the server certainly did not commit the row.
_DEFINITE_FAILURE_CLASSES = ("22", "23", "25", "42")


# What PgBouncer says when it sent the transaction to no server at all (1.18 answers these after
# the client's login, with the generic SQLSTATE 08P01).
_POOLER_NEVER_SENT = ("server login has been failing", "query_wait_timeout", "no more connections allowed",
                      "pgbouncer cannot connect to server")


def classify_error(error: BaseException, connected: bool) -> str:
    """"fail" when the write certainly did not happen, "info" when it may have (pure)."""
    if not connected:
        return "fail"
    sqlstate = getattr(error, "sqlstate", None) or ""
    if sqlstate[:2] in _DEFINITE_FAILURE_CLASSES:
        return "fail"
    if any(text in str(error) for text in _POOLER_NEVER_SENT):
        return "fail"
    return "info"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else error.__class__.__name__)[:200]


class Workload:
    """Writers at a steady rate, a reader and a monitor, all appending to one History."""

    def __init__(self, reach: Reach, history: History, write_dsn: str, read_dsn: str | None,
                 node_targets: dict[str, PgTarget], rate: float) -> None:
        self.reach = reach
        self.spec = reach.spec
        self.history = history
        self.write_dsn = write_dsn
        self.read_dsn = read_dsn
        self.node_targets = node_targets
        self.rate = rate
        self._server_to_node = server_names(reach.topology)
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._monitor_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="writer")
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._write_loop, "scheduler")
        if self.read_dsn:
            self._spawn(self._read_loop, "reader")
        for node in self.spec.node_names:
            self._spawn(functools.partial(self._monitor_loop, node), f"monitor-{node}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop_writes(self) -> None:
        """Stop issuing writes and wait (bounded) for those in flight."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 30
        acquired = 0
        while acquired < MAX_IN_FLIGHT and time.monotonic() < deadline:
            if self._slots.acquire(timeout=0.5):
                acquired += 1

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=5)

    def _event(self, **kw: Any) -> Event:
        return self.history.append(Event(time=time.time(), **kw))

    # --- writers ---------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        worker = 0
        while not self._stop.is_set():
            next_at += interval
            if self._slots.acquire(blocking=False):
                write_id = next(self._ids)
                process = f"writer-{worker % MAX_IN_FLIGHT}"
                worker += 1
                try:
                    self._pool.submit(self._write_one, process, write_id)
                except RuntimeError:  # pool shut down meanwhile
                    self._slots.release()
                    return
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def _write_one(self, process: str, write_id: int) -> None:
        try:
            self._event(process=process, type="invoke", op="write", value=write_id)
            connected = False
            try:
                with psycopg.connect(self.write_dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
                    connected = True
                    row = conn.execute(
                        f"INSERT INTO {TABLE} (id) VALUES (%s) RETURNING {SERVER_SQL}", (write_id,)
                    ).fetchone()
                server = (str(row[0]), int(row[1])) if row else ("?", -1)
                self._event(process=process, type="ok", op="write", value=write_id,
                            node=self._server_to_node.get(server, f"{server[0]}:{server[1]}"))
            except psycopg.Error as e:
                self._event(process=process, type=classify_error(e, connected), op="write", value=write_id,
                            error=_first_line(e))
        finally:
            self._slots.release()

    # --- reader ----------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self.read_dsn is not None
        while not self._stop.is_set():
            self._event(process="reader-0", type="invoke", op="read")
            try:
                with psycopg.connect(self.read_dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
                    row = conn.execute(f"SELECT {SERVER_SQL}, pg_is_in_recovery()").fetchone()
                assert row is not None
                self._event(process="reader-0", type="ok", op="read",
                            value={"port": int(row[1]), "in_recovery": bool(row[2])},
                            node=self._server_to_node.get((str(row[0]), int(row[1]))))
            except psycopg.Error as e:
                self._event(process="reader-0", type="fail", op="read", error=_first_line(e))
            self._stop.wait(READ_INTERVAL)

    # --- monitor ---------------------------------------------------------------------------------

    def _monitor_loop(self, node: str) -> None:
        # The SQL probe runs in its own thread: on a frozen node it blocks until the thaw, and the
        # monitor must keep recording "no answer" samples meanwhile rather than fall silent.
        probe = _SqlProbe(self.node_targets[node])
        while not self._monitor_stop.is_set():
            code, body = node_rest(self.reach, node, timeout=0.5)
            rest = body if isinstance(body, dict) and code else {}
            answer = probe.poll(MONITOR_INTERVAL)
            in_recovery, read_only = answer if answer is not None else (None, True)
            sample = RoleSample(
                rest_role=rest.get("role"),
                in_recovery=in_recovery,
                accepts_writes=in_recovery is False and not read_only,
                timeline=rest.get("timeline"),
                streaming=rest.get("replication_state") == "streaming",
            )
            self._event(process="monitor", type="info", op="role", node=node, value=asdict(sample))
            self._monitor_stop.wait(MONITOR_INTERVAL)
        probe.close()

    def stop_monitor(self) -> None:
        self._monitor_stop.set()
        self.join()


class _SqlProbe:
    """pg_is_in_recovery() and transaction_read_only of one node over a kept connection, asked in
    a worker thread so that a hung node costs the caller at most `timeout`."""

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self._conn: psycopg.Connection[Any] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe")
        self._pending: Future[tuple[bool, bool] | None] | None = None

    def _ask(self) -> tuple[bool, bool] | None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self.target.connect(connect_timeout=1, autocommit=True)
            row = self._conn.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone()
            assert row is not None
            return bool(row[0]), row[1] == "on"
        except psycopg.Error:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return None

    def poll(self, timeout: float) -> tuple[bool, bool] | None:
        """The latest answer, or None if the node did not answer within timeout."""
        if self._pending is None:
            self._pending = self._pool.submit(self._ask)
        try:
            answer = self._pending.result(timeout=timeout)
        except FutureTimeout:
            return None
        self._pending = None
        return answer

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if (self._pending is None or self._pending.done()) and self._conn is not None:
            self._conn.close()
