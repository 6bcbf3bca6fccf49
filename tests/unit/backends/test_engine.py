"""The container engine's pure parts: how Docker's and Podman's answers are read, and which
specs may name an engine."""

from __future__ import annotations

import json

import pytest

from pgha.backends.engine import Engine, parse_inspect, parse_subnets
from pgha.errors import BackendError
from pgha.model.spec import SpecError, build_spec

# Trimmed from `docker inspect` (20.10) and `podman inspect` (4.3) of a node container.
DOCKER_INSPECT = json.dumps([{"Name": "/pgha-c1-node0", "State": {"Status": "running", "Pid": 4242},
                              "Config": {"Labels": {"io.pgha.cluster": "c1", "io.pgha.component": "node0"}}}])
PODMAN_INSPECT = json.dumps([{"Name": "pgha-c1-node1", "State": {"Status": "paused", "Pid": 0},
                              "Config": {"Labels": {"io.pgha.component": "node1"}}}])


def test_both_engines_inspect_reads_the_same() -> None:
    docker, = parse_inspect(DOCKER_INSPECT)
    assert (docker.name, docker.state, docker.pid, docker.labels["io.pgha.component"]) == \
        ("pgha-c1-node0", "running", 4242, "node0")
    podman, = parse_inspect(PODMAN_INSPECT)
    assert (podman.name, podman.state, podman.pid) == ("pgha-c1-node1", "paused", 0)
    assert parse_inspect("") == [] and parse_inspect("[]") == []


def test_subnets_come_from_where_each_engine_puts_them() -> None:
    docker = json.dumps([{"Name": "pgha-c1_cluster", "IPAM": {"Config": [{"Subnet": "198.18.31.0/24",
                                                                         "Gateway": "198.18.31.1"}]}}])
    podman = json.dumps([{"name": "pgha-c2_cluster", "subnets": [{"subnet": "198.18.32.0/24",
                                                                  "gateway": "198.18.32.1"}]}])
    assert parse_subnets("docker", docker) == ["198.18.31.0/24"]
    assert parse_subnets("podman", podman) == ["198.18.32.0/24"]
    # Each engine's reader ignores the other's layout instead of misreading it.
    assert parse_subnets("docker", podman) == [] and parse_subnets("podman", docker) == []


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(BackendError, match="engine: 'lxc' is not one of docker, podman"):
        Engine("lxc")


def test_only_a_container_backend_takes_an_engine() -> None:
    assert build_spec("default", overrides={"backend": "compose", "engine": "docker"}).engine == "docker"
    assert build_spec("default", overrides={"backend": "compose"}).engine is None  # `up` picks and stores it
    with pytest.raises(SpecError, match="engine: podman runs containers; it needs backend compose, not local"):
        build_spec("default", overrides={"engine": "podman"})
    with pytest.raises(SpecError, match="engine"):
        build_spec("default", overrides={"backend": "compose", "engine": "lxc"})
