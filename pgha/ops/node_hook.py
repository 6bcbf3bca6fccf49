"""Patroni's hooks on a node, shipped to every node host as one file (standard library and
psycopg only: it runs with the Python of the node's Patroni venv, where pgha is not installed).

    python node_hook.py CONFIG before_stop                 (postgresql.before_stop)
    python node_hook.py CONFIG on_role_change ROLE SCOPE    (postgresql.callbacks)
    python node_hook.py CONFIG resume-when-ready            (started by before_stop, detached)
    python node_hook.py CONFIG post_bootstrap URL           (bootstrap.post_bootstrap)

before_stop: when the primary's PostgreSQL is about to stop (a graceful stop, a switchover's
demotion), every pooler is paused, so that the transactions in flight finish and new ones wait
instead of failing; a detached watcher resumes them once another node accepts writes and every
HAProxy sends writes there (or after `resume_within_s`, whatever happened).

on_role_change to primary: every HAProxy this host can reach through its admin socket is told at
once that this node is the one server for writes (the health checks confirm it afterwards), and once
writes through every HAProxy land here the poolers are resumed: should the watcher have died, a
promotion still ends the pause.

post_bootstrap: once, on the node that initialised the cluster, the application role (LOGIN and
nothing else, its password hashed here, never sent in the clear) and its own database; every
role loses CONNECT on `postgres`. pgha checks the same after every `up` (pgha.security.app_role);
this makes a fleet installed from bundles, where pgha does not run, have them too.

CONFIG is a JSON file (0600, it holds passwords) that pgha renders for the node; in a container
image it holds none, and names the environment variables to read them from instead.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

CONNECT_TIMEOUT_S = 2
POLL_S = 0.05
# A new primary waits this long at most for the health checks to route writes to it (where it
# cannot push routing itself) before it resumes the poolers.
ROUTED_WITHIN_S = 10.0


def log(message: str) -> None:
    # Patroni passes a hook's output on to its own log.
    print(f"pgha-node-hook: {message}", file=sys.stderr, flush=True)


def _dsn(cfg: dict[str, Any], host: str, port: int, *, user: str, password: str, dbname: str,
         verify_name: bool) -> str:
    tls = cfg.get("ca")
    extra = {"sslmode": "verify-full" if verify_name else "verify-ca", "sslrootcert": tls} if tls else {}
    return make_conninfo(host=host, port=port, user=user, password=password, dbname=dbname,
                         connect_timeout=CONNECT_TIMEOUT_S, **extra)


def _console(cfg: dict[str, Any], pooler: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(_dsn(cfg, pooler["host"], pooler["port"], user=cfg["pooler_user"],
                                password=cfg["pooler_password"], dbname="pgbouncer", verify_name=True),
                           autocommit=True)


def _writable(cfg: dict[str, Any], host: str, port: int, verify_name: bool) -> tuple[str, int] | None:
    """(address, port) of the server a connection lands on, when it accepts writes."""
    try:
        with psycopg.connect(_dsn(cfg, host, port, user=cfg["app_user"], password=cfg["app_password"],
                                  dbname=cfg["dbname"], verify_name=verify_name), autocommit=True) as conn:
            row = conn.execute("SELECT host(inet_server_addr()), inet_server_port(), pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return None
    return (str(row[0]), int(row[1])) if row and not row[2] else None


def am_primary(cfg: dict[str, Any]) -> bool:
    me = next(n for n in cfg["nodes"] if n["name"] == cfg["node"])
    return _writable(cfg, me["host"], me["port"], True) is not None


def _pause_one(cfg: dict[str, Any], pooler: dict[str, Any], accepted: list[str]) -> None:
    try:
        with _console(cfg, pooler) as conn:
            accepted.append(pooler["name"])  # PgBouncer holds new transactions from here on
            conn.execute("PAUSE")  # and answers once the ones in flight are done
    except psycopg.Error as e:
        text = str(e).strip()
        if "already" in text:
            return  # paused by pgha's own hand-over
        if pooler["name"] in accepted:
            accepted.remove(pooler["name"])
        log(f"could not pause {pooler['name']}: {text.splitlines()[0] if text else 'error'}")


def pause(cfg: dict[str, Any]) -> list[str]:
    """PAUSE every pooler, waiting at most pause_timeout_s for the transactions in flight (a
    pause still pending then completes when the stop ends them); the poolers that took it."""
    accepted: list[str] = []
    threads = [threading.Thread(target=_pause_one, args=(cfg, p, accepted), daemon=True) for p in cfg["poolers"]]
    for t in threads:
        t.start()
    deadline = time.monotonic() + float(cfg["pause_timeout_s"])
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return accepted


def resume(cfg: dict[str, Any]) -> None:
    for pooler in cfg["poolers"]:
        try:
            with _console(cfg, pooler) as conn:
                conn.execute("RESUME")
        except psycopg.Error as e:
            text = str(e).strip()
            if "not paused" not in text:
                log(f"could not resume {pooler['name']}: {text.splitlines()[0] if text else 'error'}")


def haproxy_command(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def route_writes_to(cfg: dict[str, Any], primary: str) -> None:
    """Every reachable HAProxy: `primary` up in the read-write proxy, every other node down."""
    # The new primary up first: never a moment with no server for writes.
    order = [primary, *(n["name"] for n in cfg["nodes"] if n["name"] != primary)]
    for path in cfg["haproxy_sockets"]:
        for node in order:
            state = "up" if node == primary else "down"
            try:
                answer = haproxy_command(path, f"set server {cfg['rw_proxy']}/{node} health {state}")
            except OSError as e:
                log(f"HAProxy at {path} did not answer: {e}")
                break
            if answer.strip():
                log(f"HAProxy at {path}: {answer.strip()[:200]}")


def new_primary(cfg: dict[str, Any]) -> str | None:
    """Another node that accepts writes, by name."""
    for node in cfg["nodes"]:
        if node["name"] != cfg["node"] and _writable(cfg, node["host"], node["port"], True) is not None:
            return str(node["name"])
    return None


def routed_to(cfg: dict[str, Any], primary: str) -> bool:
    """Writes through every HAProxy land on `primary`."""
    address = next((n["host"], n["port"]) for n in cfg["nodes"] if n["name"] == primary)
    return all(_writable(cfg, e["host"], e["port"], False) == address for e in cfg["entrypoints"])


def resume_when_ready(cfg: dict[str, Any]) -> None:
    deadline = time.monotonic() + float(cfg["resume_within_s"])
    primary = None
    while time.monotonic() < deadline:
        if primary is None:
            primary = new_primary(cfg)
            if primary is not None:
                route_writes_to(cfg, primary)
        if primary is not None and routed_to(cfg, primary):
            log(f"{primary} takes writes through every HAProxy: resuming the poolers")
            break
        time.sleep(POLL_S)
    else:
        log(f"no other primary within {cfg['resume_within_s']} s: resuming the poolers anyway")
    resume(cfg)


def create_app_role(cfg: dict[str, Any], url: str) -> None:
    user, dbname = cfg["app_user"], cfg["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is None:
            verifier = conn.pgconn.encrypt_password(cfg["app_password"].encode(), user.encode(), b"scram-sha-256")
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                 "NOBYPASSRLS PASSWORD {}").format(sql.Identifier(user),
                                                                   sql.Literal(verifier.decode())))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(user)))
        conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
    log(f"the application role {user} and its database {dbname} exist")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    for key in ("app_password", "pooler_password"):
        if cfg.get(f"{key}_env"):
            cfg[key] = os.environ.get(cfg[f"{key}_env"], "")
    action = argv[2]
    if action == "before_stop":
        if cfg["poolers"] and am_primary(cfg) and pause(cfg):
            # Detached: Patroni goes on with the stop while it waits.
            log("the primary stops: poolers paused until another node takes writes")
            subprocess.Popen([sys.executable, __file__, argv[1], "resume-when-ready"], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr, close_fds=True)
    elif action == "post_bootstrap":
        create_app_role(cfg, argv[3])
    elif action == "resume-when-ready":
        resume_when_ready(cfg)
    elif action == "on_role_change":
        role = argv[3] if len(argv) > 3 else ""
        if role in ("primary", "master"):
            route_writes_to(cfg, cfg["node"])
            if cfg["poolers"]:
                deadline = time.monotonic() + ROUTED_WITHIN_S
                while not routed_to(cfg, cfg["node"]) and time.monotonic() < deadline:
                    time.sleep(POLL_S)
                resume(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
