from __future__ import annotations

from pathlib import Path

import pytest

from pgha.model.spec import SpecError, build_spec, load_spec_file


def test_default_profile_is_three_nodes_on_a_three_member_etcd() -> None:
    spec = build_spec()
    assert spec.nodes == 3 and spec.node_names == ("node0", "node1", "node2")
    assert (spec.dcs.kind, spec.dcs.members) == ("etcd", 3)
    p = spec.patroni
    assert p.ttl == 20 and p.loop_wait + 2 * p.retry_timeout <= p.ttl
    assert p.synchronous_mode and p.failsafe_mode and p.use_pg_rewind
    assert spec.haproxy.check == "role" and spec.haproxy.readonly_port
    assert spec.ports.entrypoint_rw == 5432 and spec.ports.entrypoint_ro is not None


def test_seed_profile_is_the_lab_as_published() -> None:
    spec = build_spec("seed")
    assert spec.node_names == ("postgresql0", "postgresql1")
    assert spec.patroni_scope == "my_cluster"
    assert (spec.dcs.kind, spec.dcs.members) == ("zookeeper", 1)
    p = spec.patroni
    assert (p.ttl, p.loop_wait, p.retry_timeout) == (30, 10, 10)
    assert p.maximum_lag_on_failover == 10 * 1024 * 1024
    assert p.synchronous_mode and not p.synchronous_mode_strict and not p.failsafe_mode
    assert p.use_pg_rewind and p.use_slots
    assert p.parameters["archive_mode"] == "always"
    h = spec.haproxy
    assert (h.check, h.inter_ms, h.fall, h.rise, h.shutdown_sessions) == ("lab", 3000, 3, 2, True)
    assert not h.readonly_port
    ports = spec.ports
    assert (ports.entrypoint_rw, ports.stats) == (5432, 7000)
    assert ports.postgres == (5433, 5434) and ports.rest == (8008, 8009) and ports.dcs_client == (2181,)


def test_base_port_shifts_every_port() -> None:
    a, b = build_spec("default"), build_spec("default", overrides={"base_port": 6432})
    assert {p + 1000 for _, p in a.ports.all()} == {p for _, p in b.ports.all()}
    seed = build_spec("seed", overrides={"base_port": 6432})
    assert seed.ports.rest == (9008, 9009) and seed.ports.stats == 8000


def test_file_then_flags_override_the_profile() -> None:
    spec = build_spec("default", {"nodes": 5, "patroni": {"ttl": 25}}, {"nodes": 2})
    assert spec.nodes == 2 and spec.patroni.ttl == 25 and spec.patroni.loop_wait == 1


@pytest.mark.parametrize(
    ("file_settings", "overrides", "message"),
    [
        ({"patroni": {"ttl": 10}}, {}, "patroni.ttl: must be >= 20"),
        ({}, {"nodes": 0}, "nodes: must be between 1 and 9"),
        ({}, {"nodes": 10}, "nodes: must be between 1 and 9"),
        ({"patroni": {"ttl": 20, "loop_wait": 10, "retry_timeout": 10}}, {},
         "loop_wait + 2*retry_timeout must be <= ttl"),
        ({"patroni": {"retry_timeout": 2}}, {}, "patroni.retry_timeout: must be >= 3"),
        ({"dcs": {"members": 2}}, {}, "dcs.members: must be 1, 3 or 5"),
        ({"dcs": {"kind": "consul"}}, {}, "dcs.kind:"),
        ({"ports": {"stats": 5432}}, {}, "ports.stats: 5432 is also used by entrypoint_rw"),
        ({"tll": 20}, {}, "tll: unknown setting"),
        ({}, {"name": "Bad Name"}, "name: must be lowercase"),
        ({"host": "10.0.0.1"}, {}, "host: clients and local components bind loopback only"),
        ({"haproxy": {"check": "lab", "readonly_port": True}}, {}, "readonly_port needs check: role"),
    ],
)
def test_bad_values_give_one_line_naming_field_and_rule(file_settings: dict[str, object],
                                                        overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as err:
        build_spec("default", file_settings, overrides)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(SpecError, match="profile: unknown profile 'prod'"):
        build_spec("prod")


def test_spec_files_load_and_fail_clearly(tmp_path: Path) -> None:
    good = tmp_path / "pgha.yaml"
    good.write_text("profile: seed\nnodes: 3\n")
    assert build_spec(None, load_spec_file(good)).nodes == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [1,\n")
    with pytest.raises(SpecError, match="not valid YAML at line"):
        load_spec_file(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_spec_file(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec_file(listy)


def test_spec_is_immutable() -> None:
    spec = build_spec()
    with pytest.raises(ValueError):
        spec.nodes = 5  # type: ignore[misc]


def test_a_name_with_a_trailing_newline_or_a_path_is_refused() -> None:
    for name in ("default\n", "../etc", "a/b", "", "."):
        with pytest.raises(SpecError, match="name: must be lowercase"):
            build_spec(None, {}, {"name": name})


def test_the_seed_profile_is_the_lab_as_published() -> None:
    """The lab's postgres0.yml / haproxy.cfg values, whether the profile or the settings' own
    defaults provide them (the profile states only what differs from the defaults)."""
    seed = build_spec("seed")
    p, h = seed.patroni, seed.haproxy
    assert (p.ttl, p.loop_wait, p.retry_timeout, p.maximum_lag_on_failover) == (30, 10, 10, 10 * 1024 * 1024)
    assert (p.primary_start_timeout, p.synchronous_mode, p.synchronous_mode_strict) == (300, True, False)
    assert (p.failsafe_mode, p.use_pg_rewind, p.use_slots) == (False, True, True)
    assert p.parameters["archive_mode"] == "always" and p.parameters["wal_keep_size"] == "128MB"
    assert (h.check, h.inter_ms, h.fastinter_ms, h.downinter_ms, h.fall, h.rise) == ("lab", 3000, None, None, 3, 2)
    assert (h.maxconn, h.timeout_connect_ms, h.timeout_check_ms, h.timeout_client, h.timeout_server) == \
        (100, 4000, 5000, "30m", "30m")
    assert (seed.nodes, seed.dcs.kind, seed.dcs.members, seed.dcs.authentication) == (2, "zookeeper", 1, False)
