"""A pid file names one process for good: not a later one with its pid, and not lost when the
wall clock is slewed (psutil's create_time moves with /proc/stat's btime; the kernel's start in
ticks does not). No servers: the test's own process is the one recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil

from pgha.state.procs import read_pidfile, start_ticks, write_pidfile


def test_the_recorded_process_is_found(tmp_path: Path) -> None:
    pidfile = tmp_path / "me.pid"
    write_pidfile(pidfile, os.getpid())
    proc = read_pidfile(pidfile)
    assert proc is not None and proc.pid == os.getpid()
    assert json.loads(pidfile.read_text())["start_ticks"] == start_ticks(os.getpid())


def test_a_slewed_clock_does_not_lose_it_but_another_start_is_not_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "me.pid"
    ticks, created = start_ticks(os.getpid()), psutil.Process().create_time()
    # What create_time says after btime moved by a second: the start in ticks still matches.
    pidfile.write_text(json.dumps({"pid": os.getpid(), "create_time": created - 1.0, "start_ticks": ticks}))
    assert read_pidfile(pidfile) is not None
    # A process that started at another tick is another process, whatever its pid.
    pidfile.write_text(json.dumps({"pid": os.getpid(), "create_time": created, "start_ticks": ticks - 1}))
    assert read_pidfile(pidfile) is None


def test_a_pid_file_from_before_start_ticks_allows_a_slewed_second_only(tmp_path: Path) -> None:
    pidfile = tmp_path / "me.pid"
    created = psutil.Process().create_time()
    pidfile.write_text(json.dumps({"pid": os.getpid(), "create_time": created - 1.0}))
    assert read_pidfile(pidfile) is not None
    pidfile.write_text(json.dumps({"pid": os.getpid(), "create_time": created - 30.0}))
    assert read_pidfile(pidfile) is None
