"""The lab, step by step, as its students ran it: the seed profile rendered by `pgha render
compose`, then only Docker's own commands (docker-compose v1, Debian's 1.29, the lab's), every
step asserted. pgha itself starts nothing here; README's "The lab, step by step" shows the same
commands and what they printed.

Run by `make test-containers` (after scripts/container-engine.sh), not by `make test`.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import run_pgha

pytestmark = pytest.mark.containers

NAME = "lab"
BASE_PORT = 30200  # the lab's 5432 -> 30200, pg-master's 5433 -> 30201, pg-slave's 5434 -> 30202
NETWORK = "198.18.33.0/24"
COMPOSE = "/usr/bin/docker-compose"  # v1, the lab's command
BASE_IMAGE = "localhost/pgha-base:bookworm"  # scripts/container-engine.sh; no registry here
CONTAINER = {"pg-master": "pgha-lab-pg-master", "pg-slave": "pgha-lab-pg-slave"}
CONFIG = {"pg-master": "/etc/pgha/postgresql0.yml", "pg-slave": "/etc/pgha/postgresql1.yml"}
MEMBER = {"pg-master": "postgresql0", "pg-slave": "postgresql1"}
PORT = {"pg-master": BASE_PORT + 1, "pg-slave": BASE_PORT + 2}
WAIT_S = 180.0  # generous: behaviour, not speed


def _sh(*argv: str, cwd: Path | None = None, check: bool = True, timeout: float = 600) -> str:
    result = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def _wait(what: str, probe: Callable[[], object]) -> object:
    deadline = time.monotonic() + WAIT_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (psycopg.Error, AssertionError) as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"{what}: not after {WAIT_S:.0f} s (last: {last})")


def _members(service: str) -> dict[str, str]:
    """`docker exec <service> patronictl list`: member -> role."""
    out = _sh("docker", "exec", CONTAINER[service], "patronictl", "-c", CONFIG[service], "list")
    return {m.group(1): m.group(2) for m in re.finditer(r"^\|\s*(postgresql\d)\s*\|[^|]*\|\s*(\w[\w ]*?)\s*\|", out,
                                                          re.MULTILINE)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    spec = tmp_path_factory.mktemp("spec") / "pgha.yaml"
    spec.write_text(f"network: {NETWORK}\n")
    out = tmp_path_factory.mktemp("lab")
    run_pgha("render", "compose", "--profile", "seed", "--name", NAME, "--out", str(out), "--base-port",
             str(BASE_PORT), "--base-image", BASE_IMAGE, "--config", str(spec), check=True)
    env = dict(line.split("=", 1) for line in (out / ".env").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    try:
        _sh(COMPOSE, "up", "-d", cwd=out, timeout=1200)
        yield out, env["PGHA_SUPERUSER_PASSWORD"]
    finally:
        _sh(COMPOSE, "down", "-v", cwd=out, check=False)
        images = _sh("docker", "images", "-q", "--filter", f"reference=localhost/pgha-{NAME}", check=False).split()
        if images:
            _sh("docker", "rmi", "-f", *images, check=False)


def _connect(port: int, password: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password, dbname="postgres",
                           connect_timeout=3, autocommit=True)


def test_the_lab_step_by_step(lab: tuple[Path, str]) -> None:
    directory, password = lab
    # docker-compose ps: the lab's four containers, running.
    ps = _sh(COMPOSE, "ps", cwd=directory)
    for service in ("pg-master", "pg-slave", "zoo", "haproxy"):
        line = next((row for row in ps.splitlines() if row.startswith(f"pgha-{NAME}-{service} ")), "")
        assert " Up " in line, ps

    # One of the two wins Patroni's bootstrap race (in the lab it was pg-master). The lab has
    # synchronous_mode on: only the synchronous standby may take over, so a primary stopped
    # before the primary named its replica synchronous (its next loop, up to loop_wait later)
    # leaves the cluster without a leader until it comes back (seen here). The lab's students
    # waited; so does this.
    def settled() -> dict[str, str] | None:
        members = _members("pg-slave")
        return members if sorted(members.values()) == ["Leader", "Sync Standby"] else None

    members = _wait("a leader and a synchronous standby", settled)
    assert isinstance(members, dict)
    leader = next(s for s in CONTAINER if members[MEMBER[s]] == "Leader")
    replica = next(s for s in CONTAINER if s != leader)

    # A table written through HAProxy (5432 in the lab) reaches the replica.
    def write(table_value: str) -> bool:
        with _connect(BASE_PORT, password) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS lab (v text)")
            conn.execute("INSERT INTO lab VALUES (%s)", (table_value,))
        return True

    _wait("a write through HAProxy", lambda: write("before"))
    _wait("the row on the replica", lambda: _rows(PORT[replica], password) == ["before"])
    # The replica refuses writes: SQLSTATE 25006 (read_only_sql_transaction).
    with _connect(PORT[replica], password) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO lab VALUES ('on the replica')")

    # docker stop <the leader>; after the wait, patronictl on the other shows it as Leader.
    _sh("docker", "stop", CONTAINER[leader])
    _wait(f"{replica} as Leader", lambda: _members(replica).get(MEMBER[replica]) == "Leader")
    _wait("a write through HAProxy after the failover", lambda: write("after"))
    assert _rows(PORT[replica], password) == ["after", "before"]

    # docker start <the old leader>: it rejoins as a replica and has every row.
    _sh("docker", "start", CONTAINER[leader])
    _wait(f"{leader} back as a replica",
          lambda: _members(replica).get(MEMBER[leader]) in ("Replica", "Sync Standby"))
    _wait(f"every row on {leader}", lambda: _rows(PORT[leader], password) == ["after", "before"])


def test_ports_publish_to_the_host_and_expose_does_not(lab: tuple[Path, str]) -> None:
    """The lab's question (a): `ports` makes a container's port reachable from the host;
    `expose` (8008, Patroni's REST API) does not."""
    for service in CONTAINER:
        published = _sh("docker", "port", CONTAINER[service]).split()
        assert published == ["5432/tcp", "->", f"127.0.0.1:{PORT[service]}"], published
    inspect = _sh("docker", "inspect", "--format", "{{json .Config.ExposedPorts}}", CONTAINER["pg-master"])
    assert '"8008/tcp"' in inspect and '"5432/tcp"' in inspect


def _rows(port: int, password: str) -> list[str]:
    with _connect(port, password) as conn:
        return sorted(str(r[0]) for r in conn.execute("SELECT v FROM lab").fetchall())
