"""Patroni as pgha starts it: Patroni's own code, with three small patches to its graceful stop and
one to its leader race.

Shipped to every node host as one file (standard library and Patroni only: it runs with the Python
of the node's Patroni venv, where pgha is not installed); the node's unit runs

    python pgha-patroni.py CONFIG

which applies the patches and then runs Patroni's own entry point, as the `patroni` command would.
Each patch is a few lines against the Patroni version pgha pins (PATRONI_VERSION); with any other
version Patroni runs unpatched and says so in its log. tests/unit/ops/test_patroni_patches.py
fails when the upstream code a patch relies on moves. The report for Patroni's maintainers is
docs/upstream/patroni-graceful-stop.md.

What a graceful stop of the primary costs without them (measured: 3.4-3.5 s without writes):

1. the stopping node's REST API stops serving but keeps its listening socket open, so every
   candidate of the leader race that asks it for its state (they all do) waits out Patroni's
   2 s request timeout instead of being refused at once. Patched: the REST server's shutdown
   also closes its socket, as Patroni's own reload of the REST API already does.
2. Patroni polls for the stop once a second (STOP_POLLING_INTERVAL): for its own connection to
   close, then for pg_controldata to say "shut down", before it releases the leader key.
   Patched: ten times a second.
3. Once pg_controldata says "shut down", Patroni sleeps a fixed second ("give replicas some more
   time to catch up") before it asks whether a replica has the shutdown checkpoint and releases
   the key. Patched: that one sleep waits a poll interval. It was never what made the release safe:
   if no replica has the checkpoint yet, Patroni keeps the key and releases it once PostgreSQL has
   stopped, and PostgreSQL stops only after its WAL senders have sent everything.

And what a lost primary costs once it is fenced (measured on netns: isolate 5.1 s):

4. every candidate of the leader race asks every member for its state with a hard-coded 2 s
   timeout (Ha.fetch_node_status), the lost primary too, whose member key outlives it until the
   ttl: a primary cut off from the network drops the request, and the race waits out the 2 s.
   Patched: 1 s (a Patroni answers its GET in milliseconds). A member slow beyond that is left out
   of the comparison, as one slow beyond 2 s already is; with synchronous_mode (pgha's default)
   only the synchronous standby may win the race whatever the others answer.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PATRONI_VERSION = "4.1.5"
STOP_POLLING_INTERVAL_S = 0.1
UPSTREAM_RACE_TIMEOUT_S = 2
RACE_REQUEST_TIMEOUT_S = 1.0


def close_rest_socket_on_shutdown() -> None:
    from patroni.api import RestApiServer

    original: Callable[[Any], None] = RestApiServer.shutdown

    def shutdown(self: Any) -> None:
        original(self)
        # What RestApiServer's own reload does after HTTPServer.shutdown: a connection is refused
        # at once rather than accepted and never answered.
        self.server_close()

    RestApiServer.shutdown = shutdown


def poll_the_stop_faster() -> None:
    import patroni.postgresql

    patroni.postgresql.STOP_POLLING_INTERVAL = STOP_POLLING_INTERVAL_S


class _HaClock:
    """patroni.ha's `time`: the module itself, except for the one fixed sleep of a second inside
    the on_shutdown callback of a primary's stop (Ha.shutdown's and Ha.demote's)."""

    def __init__(self) -> None:
        self.in_on_shutdown = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        fixed_wait = seconds == 1 and getattr(self.in_on_shutdown, "value", False)
        time.sleep(STOP_POLLING_INTERVAL_S if fixed_wait else seconds)


def wait_less_for_replicas_at_shutdown() -> None:
    import patroni.ha
    from patroni.postgresql import Postgresql

    clock = _HaClock()
    patroni.ha.time = clock
    original = Postgresql.stop

    def stop(self: Any, *args: Any, on_shutdown: Callable[[int, int], Any] | None = None, **kwargs: Any) -> Any:
        if on_shutdown is None:
            return original(self, *args, **kwargs)
        inner = on_shutdown

        def marked(checkpoint_location: int, prev_location: int) -> None:
            clock.in_on_shutdown.value = True
            try:
                inner(checkpoint_location, prev_location)
            finally:
                clock.in_on_shutdown.value = False

        return original(self, *args, on_shutdown=marked, **kwargs)

    Postgresql.stop = stop


def ask_the_members_faster_in_the_race() -> None:
    import patroni.postgresql  # noqa: F401  (patroni.ha imports cleanly only after it, as Patroni's own start does)
    from patroni.ha import Ha
    from patroni.request import PatroniRequest

    in_race = threading.local()
    fetch, call = Ha.fetch_node_status, PatroniRequest.__call__

    def fetch_node_status(self: Any, member: Any) -> Any:
        in_race.value = True
        try:
            return fetch(self, member)
        finally:
            in_race.value = False

    def request(self: Any, member: Any, method: str = "GET", endpoint: str | None = None, data: Any = None,
                **kwargs: Any) -> Any:
        # Only the race's own request (its threads ask one member each), only its fixed timeout.
        if getattr(in_race, "value", False) and kwargs.get("timeout") == UPSTREAM_RACE_TIMEOUT_S:
            kwargs["timeout"] = RACE_REQUEST_TIMEOUT_S
        return call(self, member, method, endpoint, data, **kwargs)

    Ha.fetch_node_status = fetch_node_status
    PatroniRequest.__call__ = request


PATCHES: tuple[Callable[[], None], ...] = (close_rest_socket_on_shutdown, poll_the_stop_faster,
                                           wait_less_for_replicas_at_shutdown, ask_the_members_faster_in_the_race)


def apply(version: str) -> bool:
    """Apply every patch if Patroni is the version they were made for; whether they were."""
    if version != PATRONI_VERSION:
        print(f"pgha-patroni: Patroni {version} is not {PATRONI_VERSION}, which pgha's patches were made for: "
              "running it unpatched", file=sys.stderr, flush=True)
        return False
    for patch in PATCHES:
        patch()
    return True


def main(argv: list[str]) -> None:
    from patroni.__main__ import main as patroni_main
    from patroni.version import __version__

    apply(__version__)
    sys.argv = ["patroni", *argv[1:]]
    patroni_main()


if __name__ == "__main__":
    main(sys.argv)
