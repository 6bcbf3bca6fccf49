"""Network faults on one host's link, applied inside its network namespace given by path.

The rule text is pgha.render.netns_rules' (pure, tested); here it is applied with nsenter, so the
same faults reach a netns host (/run/netns/NAME) and a container (the engine's namespace path).
Everything lives in pgha's own nftables table and the link's root qdisc: healing deletes both.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from pgha.errors import BackendError
from pgha.render import netns_rules as rules


def _in(netns: str, argv: Sequence[str], check: bool = True, stdin: str | None = None) -> None:
    result = subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, input=stdin,
                            check=False)
    if check and result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise BackendError(f"{' '.join(argv[:4])} in {netns}: {reason[-1] if reason else f'exit {result.returncode}'}")


def _replace(netns: str, script: str) -> None:
    heal(netns)
    _in(netns, ["nft", "-f", "-"], stdin=script)


def cut_all(netns: str) -> None:
    """The link carries nothing: the host is cut off from every other host."""
    _replace(netns, rules.cut_all())


def cut_from(netns: str, addresses: Sequence[str]) -> None:
    """Nothing passes between this host and `addresses`, either way."""
    _replace(netns, rules.cut_from(addresses))


def lose(netns: str, percent: int, among: Sequence[str] = ()) -> None:
    """Drop this share of the packets on the link, at random, both ways (only those exchanged
    with `among`, when given)."""
    _replace(netns, rules.lose(percent, among))


def delay(netns: str, ms: int) -> None:
    """Delay every packet leaving the link (tc netem)."""
    try:
        _in(netns, rules.lag(ms))
    except BackendError:
        raise BackendError("lag needs tc netem, which this kernel does not offer "
                           "(sch_netem missing: 'Specified qdisc kind is unknown')") from None


def heal(netns: str) -> None:
    """Lift this host's fault rules, if it still exists."""
    if Path(netns).exists():
        _in(netns, rules.delete_table(), check=False)
        _in(netns, rules.delete_qdisc(), check=False)
