"""Processes at the edge: start detached, remember by pidfile, signal only what we started.

A pidfile holds the pid and the process's start time, so a recycled pid is never mistaken for
ours and never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from pgha.waiting import wait_until


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account processes run as (None fields: the current user)."""

    user: str | None = None

    @property
    def uid_gid(self) -> tuple[int, int] | None:
        if self.user is None:
            return None
        pw = pwd.getpwnam(self.user)
        return pw.pw_uid, pw.pw_gid


def spawn(argv: Sequence[str], *, log: Path, pidfile: Path, env: dict[str, str], cwd: Path,
          run_as: RunAs, netns: str | None = None, pass_fds: Sequence[int] = (),
          open_files: int | None = None) -> int:
    """Start argv in its own session, output appended to log; returns its pid.

    With netns, the process runs inside that named network namespace. `ip netns exec` and
    `setpriv` both exec in place, so the pid recorded is the program's own.

    Callers that must survive Ctrl-C (pgha up) turn SIGINT into a flag they check between
    steps, so no interrupt can land between the fork and the pidfile.
    """
    ids = run_as.uid_gid
    command = list(argv)
    popen_ids = ids
    if netns is not None:
        # Entering a namespace needs root, so the privileges are dropped after it, by setpriv.
        drop = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", "--"] if ids else []
        command = ["ip", "netns", "exec", netns, *drop, *command]
        popen_ids = None
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            user=popen_ids[0] if popen_ids else None,
            group=popen_ids[1] if popen_ids else None,
            extra_groups=[] if popen_ids else None,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    if open_files:
        _raise_open_files(proc.pid, open_files)
    if ids:
        with contextlib.suppress(FileNotFoundError):
            os.chown(log, *ids)
    write_pidfile(pidfile, proc.pid)
    return proc.pid


def _raise_open_files(pid: int, wanted: int) -> None:
    # As systemd's LimitNOFILE= would: a limit is checked when a descriptor is opened, so
    # raising it right after the start is in time (`ip netns exec` and setpriv exec in place).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = wanted if os.geteuid() == 0 else min(wanted, hard)
    with contextlib.suppress(OSError):
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))


# A process is told from a later one with the same pid by when it started. psutil's create_time
# is the boot time plus the start in ticks, and the boot time it reads (/proc/stat's btime) moves
# by a whole second when the wall clock is slewed across a second boundary: every process would
# then look gone at once (seen here: pgha lost track of a whole running cluster). The kernel's
# start in ticks since boot never moves.
PID_REUSE_TOLERANCE_S = 1.5  # pid files written before start_ticks was recorded


def start_ticks(pid: int) -> int:
    """When the process started, in clock ticks since boot (/proc/<pid>/stat, field 22)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def write_pidfile(pidfile: Path, pid: int) -> None:
    created = psutil.Process(pid).create_time()
    pidfile.write_text(json.dumps({"pid": pid, "create_time": created, "start_ticks": start_ticks(pid)}))


def is_recorded(proc: psutil.Process, data: dict[str, object]) -> bool:
    """Whether `proc` is the very process a pid file recorded, not a later one with its pid."""
    if "start_ticks" in data:
        return start_ticks(proc.pid) == int(str(data["start_ticks"]))
    return bool(abs(proc.create_time() - float(str(data["create_time"]))) <= PID_REUSE_TOLERANCE_S)


def read_pidfile(pidfile: Path) -> psutil.Process | None:
    """The live process recorded in pidfile, or None if it is gone (or the pid was reused)."""
    try:
        data = json.loads(pidfile.read_text())
        proc = psutil.Process(int(data["pid"]))
        if not is_recorded(proc, data):
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (OSError, ValueError, KeyError, IndexError, json.JSONDecodeError, psutil.Error):
        return None


def postmaster(pgdata: Path) -> psutil.Process | None:
    """The postmaster of a data directory, read from postmaster.pid (Patroni detaches it)."""
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[0]
        proc = psutil.Process(int(first))
        cmd = proc.cmdline()
        if not cmd or "postgres" not in Path(cmd[0]).name:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (FileNotFoundError, IndexError, ValueError, psutil.Error):
        return None


def with_children(procs: Iterable[psutil.Process | None]) -> list[psutil.Process]:
    out: dict[int, psutil.Process] = {}
    for p in procs:
        if p is None:
            continue
        out[p.pid] = p
        with contextlib.suppress(psutil.Error):
            for c in p.children(recursive=True):
                out[c.pid] = c
    return list(out.values())


def send(procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for procs to exit; returns those still alive after timeout.

    A zombie counts as gone: processes started by an earlier pgha command are reaped by PID 1,
    which may take its time, and psutil.wait_procs would wait for that.
    """
    left = [p for p in procs if _alive(p)]

    def all_gone() -> bool:
        nonlocal left
        left = [p for p in left if _alive(p)]
        return not left

    wait_until(all_gone, timeout, every=0.05)
    return left


def _alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def terminate(mains: Sequence[psutil.Process | None], timeout: float,
              sig: signal.Signals = signal.SIGTERM,
              also: Sequence[tuple[psutil.Process | None, signal.Signals]] = ()) -> None:
    """Signal the main processes only (they shut their children down in order), plus any
    (process, signal) pairs in `also`; wait for all of them and their children, then SIGKILL
    whatever is left (thawed first, in case it was frozen)."""
    everything = [p for p in with_children([*mains, *(p for p, _ in also)]) if _alive(p)]
    if not everything:
        return
    send(everything, signal.SIGCONT)
    send([p for p in mains if p is not None and _alive(p)], sig)
    for p, extra in also:
        if p is not None and _alive(p):
            send([p], extra)
    left = wait_gone(everything, timeout)
    if left:
        send(left, signal.SIGKILL)
        wait_gone(left, 5)


def port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def walsenders(postmaster: psutil.Process | None) -> list[psutil.Process]:
    """The WAL sender processes among a postmaster's children."""
    out = []
    for p in with_children([postmaster])[1:]:
        with contextlib.suppress(psutil.Error):
            if "walsender" in " ".join(p.cmdline()):
                out.append(p)
    return out


def kill_now(procs: Iterable[psutil.Process]) -> None:
    send(procs, signal.SIGKILL)


def freeze(procs: Iterable[psutil.Process]) -> None:
    send(procs, signal.SIGSTOP)


def thaw(procs: Iterable[psutil.Process]) -> None:
    send(procs, signal.SIGCONT)



def run_as_account(argv: Sequence[str], *, run_as: RunAs, env: dict[str, str], timeout: float,
                   cwd: str = "/", netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv to its end as the account (a short command, not a unit), output captured; raises
    OSError when it cannot start and subprocess.TimeoutExpired when it outlives timeout. With
    netns, inside that named network namespace (entered as root, privileges dropped after)."""
    ids = run_as.uid_gid
    if netns is not None:
        drop = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", "--"] if ids else []
        command = [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", netns, *drop, *argv]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    if ids is None:
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL, user=ids[0], group=ids[1], extra_groups=[])


def ensure_owner(path: Path, run_as: RunAs) -> None:
    ids = run_as.uid_gid
    if ids is None:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, *ids)
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(dirpath, name), *ids)
        # Keep dirnames as-is: os.walk descends into them.
        _ = dirnames
