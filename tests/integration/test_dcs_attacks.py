"""The DCS attacks of issue 12, as an unprivileged local user against a default cluster's etcd:
each write is refused and the cluster is unchanged. A read with Patroni's own credentials is the
control: it shows the same command reaches the same keys, so the refusals are etcd's auth."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import run_pgha

from pgha.cluster import Cluster
from pgha.security.dcs_auth import guard_user, patroni_user

pytestmark = pytest.mark.integration
NAME = "attack"
WATCH_S = 8.0  # longer than loop_wait (1 s) and HAProxy's checks: a write that took would show


@pytest.fixture(scope="module")
def cluster(pgha_home: Path) -> Iterator[Cluster]:
    run_pgha("up", "--name", NAME, "--nodes", "2", "--dcs-members", "1", "--base-port", "13432",
             check=True, timeout=300)
    yield Cluster(NAME)
    run_pgha("down", "--name", NAME, "--purge", timeout=120)


def etcdctl_as_nobody(cluster: Cluster, *args: str, login: tuple[str, str] | None = None,
                      ) -> subprocess.CompletedProcess[str]:
    ep = cluster.reach.dcs_client(0)
    env = ["ETCDCTL_API=3"]
    if login is not None:  # in the environment, not on the command line
        env += [f"ETCDCTL_USER={login[0]}", f"ETCDCTL_PASSWORD={login[1]}"]
    return subprocess.run(["runuser", "-u", "nobody", "--", "env", *env, "etcdctl", f"--endpoints={ep.host}:{ep.port}",
                           "--dial-timeout=3s", "--command-timeout=5s", *args],
                          capture_output=True, text=True, timeout=60)


def leader_and_replica(cluster: Cluster) -> tuple[str, str]:
    state = cluster.wait_healthy(60)
    assert state.leader is not None
    replica = next(m.name for m in state.members if not m.is_leader)
    return state.leader.name, replica


def test_the_control_reads_the_leader_key_with_patronis_credentials(cluster: Cluster) -> None:
    leader, _ = leader_and_replica(cluster)
    scope = cluster.spec.patroni_scope
    result = etcdctl_as_nobody(cluster, "get", "--print-value-only", f"/service/{scope}/leader",
                               login=(patroni_user(scope), cluster.secrets.dcs_password))
    assert result.returncode == 0 and result.stdout.strip() == leader, result.stderr


@pytest.mark.parametrize("attack", ["failover", "leader", "config"])
def test_an_anonymous_write_to_the_dcs_is_refused(cluster: Cluster, attack: str) -> None:
    leader, replica = leader_and_replica(cluster)
    scope = cluster.spec.patroni_scope
    value = {
        "failover": json.dumps({"leader": leader, "member": replica}),
        "leader": "evil",
        "config": json.dumps({"ttl": 20, "loop_wait": 1, "retry_timeout": 5, "postgresql": {
            "parameters": {"archive_mode": "on", "archive_command": "id > /tmp/pgha-attack-proof"}}}),
    }[attack]
    result = etcdctl_as_nobody(cluster, "put", f"/service/{scope}/{attack}", value)
    assert result.returncode != 0 and "user name is empty" in result.stderr, result.stdout + result.stderr
    time.sleep(WATCH_S)
    assert leader_and_replica(cluster) == (leader, replica)
    with psycopg.connect(cluster.clients.entrypoint_dsn(), connect_timeout=5) as conn:
        row = conn.execute("SHOW archive_command").fetchone()
    assert row is not None and "pgha-attack-proof" not in row[0]


def test_up_again_keeps_authentication_on(cluster: Cluster) -> None:
    result = run_pgha("up", "--name", NAME, timeout=300)
    assert result.returncode == 0, result.stderr
    scope = cluster.spec.patroni_scope
    refused = etcdctl_as_nobody(cluster, "put", f"/service/{scope}/leader", "evil")
    assert refused.returncode != 0 and "user name is empty" in refused.stderr


@pytest.mark.parametrize("attack", ["failover", "config"])
def test_the_fencing_guards_login_may_delete_the_leader_key_and_write_nothing_else(cluster: Cluster,
                                                                                  attack: str) -> None:
    # Whoever steals the guards' password can do what a guard does to the leader key (etcd's
    # permissions cannot tell a delete from a put: both are WRITE), and nothing that changes the
    # cluster's settings or picks a leader; Patroni's own password could do all of it.
    leader, replica = leader_and_replica(cluster)
    scope = cluster.spec.patroni_scope
    login = (guard_user(scope), cluster.secrets.guard_dcs_password)
    read = etcdctl_as_nobody(cluster, "get", "--print-value-only", f"/service/{scope}/leader", login=login)
    assert read.returncode == 0 and read.stdout.strip() == leader, read.stderr  # the control: it logs in
    value = json.dumps({"leader": leader, "member": replica}) if attack == "failover" else json.dumps({"ttl": 99})
    result = etcdctl_as_nobody(cluster, "put", f"/service/{scope}/{attack}", value, login=login)
    assert result.returncode != 0 and "permission denied" in result.stderr, result.stdout + result.stderr
    members = etcdctl_as_nobody(cluster, "put", f"/service/{scope}/members/{replica}", "{}", login=login)
    assert members.returncode != 0 and "permission denied" in members.stderr
    time.sleep(WATCH_S)
    assert leader_and_replica(cluster) == (leader, replica)

