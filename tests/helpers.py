"""Helpers for tests that drive the real CLI and look for leaked processes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import psutil

PGHA = str(Path(sys.executable).parent / "pgha")


def run_pgha(*args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PGHA, *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "COLUMNS": "200"})
    if check and result.returncode != 0:
        raise AssertionError(f"pgha {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention path (the cluster's directory)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if str(path) in cmd:
            found.append(f"{p.pid}: {cmd}")
    return found


def parse_unit(text: str) -> tuple[list[str], str, dict[str, str]]:
    """(ExecStart argv, User, Environment) of a systemd unit pgha wrote."""
    argv: list[str] = []
    user = ""
    env: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = shlex.split(value)
        elif key == "User":
            user = value
        elif key == "Environment":
            k, _, v = shlex.split(value)[0].partition("=")
            env[k] = v
    return argv, user, env
