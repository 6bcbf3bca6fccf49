"""Bad input: one line on stderr, a non-zero exit, no traceback, nothing started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import PGHA, processes_under, run_pgha


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["up", "--nodes", "0"], "nodes: must be between 1 and 9"),
        (["up", "--nodes", "12"], "nodes: must be between 1 and 9"),
        (["up", "--dcs", "consul"], "dcs.kind:"),
        (["up", "--dcs-members", "2"], "dcs.members: must be 1, 3 or 5"),
        (["up", "--profile", "prod"], "profile: unknown profile"),
        (["up", "--base-port", "80"], "base_port: must be between 1024 and 65000"),
        (["up", "--name", "Bad_Name"], "name: must be lowercase"),
        (["status", "--name", "nosuch"], "no cluster named 'nosuch'"),
        (["check", "--name", "nosuch"], "no cluster named 'nosuch'"),
        (["down", "--name", "nosuch"], "no cluster named 'nosuch'"),
        (["connect", "--name", "nosuch"], "no cluster named 'nosuch'"),
    ],
)
def test_bad_input_is_one_clear_line(pgha_home: Path, args: list[str], expected: str) -> None:
    result = run_pgha(*args, "--name", "errs") if "--name" not in args else run_pgha(*args)
    assert result.returncode != 0
    assert expected in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr + result.stdout
    assert processes_under(pgha_home / "errs") == []
    assert not (pgha_home / "errs").exists()


def test_a_bad_spec_file_is_one_clear_line(pgha_home: Path, tmp_path: Path) -> None:
    spec = tmp_path / "pgha.yaml"
    spec.write_text("patroni:\n  ttl: 10\n")
    result = run_pgha("up", "--name", "errs2", "--config", str(spec))
    assert result.returncode == 2
    assert "patroni.ttl: must be >= 20" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_pgha("up", "--name", "errs2", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_unknown_flag_is_a_usage_error(pgha_home: Path) -> None:
    result = run_pgha("up", "--nodez", "3")
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--profile", "prod"], "profile: unknown profile"),
        (["--base-port", "80"], "base_port: must be between 1024 and 65000"),
        (["--out", "/etc/hostname"], "exists and is not a directory"),
        (["--out", "/etc"], "is not empty and holds no earlier deployment"),
    ],
)
def test_render_compose_bad_input(tmp_path: Path, extra: list[str], expected: str) -> None:
    args = ["render", "compose", *extra] if "--out" in extra else ["render", "compose", "--out",
                                                                  str(tmp_path / "d"), *extra]
    result = run_pgha(*args)
    assert result.returncode == 2
    assert expected in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "d").exists()


def test_a_callers_strict_umask_does_not_leak_into_what_pgha_creates(tmp_path: Path) -> None:
    """As root with umask 077 the service user could not read the configs pgha wrote (seen on
    the netns backend); pgha sets its own umask, and private files are 0600 by themselves."""
    import stat
    import subprocess

    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "bundle"
    result = subprocess.run(["sh", "-c", f'umask 077 && exec "$0" render compose --out {out}', PGHA],
                            capture_output=True, text=True, env={**os.environ, "PGHA_HOME": str(home)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((out / "config").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "compose.yaml").stat().st_mode) & 0o044 == 0o044
    assert stat.S_IMODE((out / ".env").stat().st_mode) == 0o600
