"""The nftables and tc text of the network faults (what `nsenter --net=... nft -f -` is fed, in a
netns host or a container)."""

from __future__ import annotations

from pgha.render import netns_rules as rules


def _chains(script: str) -> tuple[list[str], list[str]]:
    """The rule lines of the in and out chains."""
    lines = [ln.strip() for ln in script.splitlines()]
    start_in, start_out = lines.index("chain in {"), lines.index("chain out {")
    return lines[start_in + 2:start_out - 1], lines[start_out + 2:-2]


def test_cut_all_drops_everything_on_the_link_both_ways_and_nothing_else() -> None:
    script = rules.cut_all()
    assert script == (
        "table inet pgha_fault {\n"
        "  chain in {\n    type filter hook input priority 0; policy accept;\n    iifname \"eth0\" drop\n  }\n"
        "  chain out {\n    type filter hook output priority 0; policy accept;\n    oifname \"eth0\" drop\n  }\n"
        "}\n")


def test_cut_from_drops_only_the_given_peers_by_source_and_destination() -> None:
    into, out = _chains(rules.cut_from(["198.18.0.20", "198.18.0.21"]))
    assert into == ['iifname "eth0" ip saddr { 198.18.0.20, 198.18.0.21 } drop',
                    'iifname "eth0" ip daddr { 198.18.0.20, 198.18.0.21 } drop']
    assert out == ['oifname "eth0" ip saddr { 198.18.0.20, 198.18.0.21 } drop',
                   'oifname "eth0" ip daddr { 198.18.0.20, 198.18.0.21 } drop']


def test_lose_drops_a_random_share_both_ways() -> None:
    into, out = _chains(rules.lose(30))
    assert into == ['iifname "eth0" numgen random mod 100 < 30 drop']
    assert out == ['oifname "eth0" numgen random mod 100 < 30 drop']


def test_lose_among_peers_spares_everyone_else() -> None:
    # A container's link also carries pgha's own observation from this machine: only packets
    # exchanged with the cluster's other containers are dropped.
    into, out = _chains(rules.lose(30, ["198.18.0.20", "198.18.0.30"]))
    assert into == ['iifname "eth0" ip saddr { 198.18.0.20, 198.18.0.30 } numgen random mod 100 < 30 drop',
                    'iifname "eth0" ip daddr { 198.18.0.20, 198.18.0.30 } numgen random mod 100 < 30 drop']
    assert [r.replace("oifname", "iifname") for r in out] == into


def test_partition_cuts_each_side_from_the_other_only() -> None:
    hosts = ["dcs0", "dcs1", "dcs2", "node0", "node1", "haproxy"]
    cuts = rules.partition(["node0", "dcs0"], hosts)
    assert cuts["node0"] == cuts["dcs0"] == ["dcs1", "dcs2", "node1", "haproxy"]
    for majority in ("dcs1", "dcs2", "node1", "haproxy"):
        assert cuts[majority] == ["node0", "dcs0"]
    assert set(cuts) == set(hosts)


def test_lag_is_a_netem_delay_on_the_link() -> None:
    assert rules.lag(200) == ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "200ms"]


def test_heal_deletes_pgha_table_and_the_qdisc_only() -> None:
    assert rules.delete_table() == ["nft", "delete", "table", "inet", "pgha_fault"]
    assert rules.delete_qdisc() == ["tc", "qdisc", "del", "dev", "eth0", "root"]
