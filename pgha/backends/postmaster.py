"""Faults aimed at a node's PostgreSQL processes, shared by the backends that can signal them."""

from __future__ import annotations

import psutil

from pgha.state import procs


class PostmasterFaults:
    """Signals to a node's postmaster and WAL senders; a backend says how to find the postmaster."""

    def _postmaster(self, node: str) -> psutil.Process | None:
        raise NotImplementedError

    def kill_postgres(self, node: str) -> None:
        pm = self._postmaster(node)
        if pm is not None:
            procs.kill_now([pm])
            procs.wait_gone([pm], 10)

    def _walsenders(self, node: str) -> list[psutil.Process]:
        return procs.walsenders(self._postmaster(node))

    def freeze_walsenders(self, node: str) -> bool:
        found = self._walsenders(node)
        procs.freeze(found)
        return bool(found)

    def thaw_walsenders(self, node: str) -> None:
        procs.thaw(self._walsenders(node))
