"""The text of the fault rules a netns host gets: nftables tables and tc commands (pure).

Each rule acts on the host's link only (eth0 inside its namespace), both ways: in the `in` chain
as `iifname`, in the `out` chain as `oifname`. Loopback inside a namespace is never touched,
which is how pgha keeps observing a component it cut off.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

LINK = "eth0"
TABLE = "pgha_fault"


def table(rules: Iterable[str]) -> str:
    """An nftables script: pgha's table with an input and an output chain, each holding the rules
    with DIR read as that direction's interface match."""
    rules = list(rules)

    def chain(name: str, hook: str, direction: str) -> str:
        body = "\n".join(f"    {r.replace('DIR', direction)}" for r in rules)
        return f"  chain {name} {{\n    type filter hook {hook} priority 0; policy accept;\n{body}\n  }}\n"

    return f"table inet {TABLE} {{\n{chain('in', 'input', 'iifname')}{chain('out', 'output', 'oifname')}}}\n"


def cut_all() -> str:
    """The link carries nothing: the host is cut off from every other host."""
    return table([f'DIR "{LINK}" drop'])


def cut_from(addresses: Sequence[str]) -> str:
    """Nothing passes between this host and `addresses`, either way."""
    peers = ", ".join(addresses)
    return table([f'DIR "{LINK}" ip saddr {{ {peers} }} drop', f'DIR "{LINK}" ip daddr {{ {peers} }} drop'])


def lose(percent: int, among: Sequence[str] = ()) -> str:
    """Drop this share of the packets on the link, at random, both ways; only those exchanged
    with `among` when given (a container's link also carries pgha's own observation)."""
    if not among:
        return table([f'DIR "{LINK}" numgen random mod 100 < {percent} drop'])
    peers = ", ".join(among)
    return table([f'DIR "{LINK}" ip saddr {{ {peers} }} numgen random mod 100 < {percent} drop',
                  f'DIR "{LINK}" ip daddr {{ {peers} }} numgen random mod 100 < {percent} drop'])


def partition(minority: Sequence[str], hosts: Sequence[str]) -> dict[str, list[str]]:
    """Each host -> the hosts it is cut from: the minority from everyone else, and back."""
    majority = [h for h in hosts if h not in minority]
    return {**{h: majority for h in minority}, **{h: list(minority) for h in majority}}


def lag(ms: int) -> list[str]:
    """The tc command (run inside the namespace) that delays every packet leaving the link."""
    return ["tc", "qdisc", "replace", "dev", LINK, "root", "netem", "delay", f"{ms}ms"]


def delete_table() -> list[str]:
    return ["nft", "delete", "table", "inet", TABLE]


def delete_qdisc() -> list[str]:
    return ["tc", "qdisc", "del", "dev", LINK, "root"]
