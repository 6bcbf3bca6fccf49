"""Hostile input for every command: exit 2, one line on stderr, no traceback, and nothing outside
the scratch area (nor inside it) changed. Runs the real CLI under a scratch PGHA_HOME."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import PGHA, processes_under

from pgha.model.spec import build_spec
from pgha.state.ownership import MARKER


@dataclass(frozen=True)
class Scratch:
    root: Path
    home: Path
    outside: Path


def _snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with what would show a change (links are not followed)."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            link = os.readlink(path) if path.is_symlink() else None
            found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
    return found


@pytest.fixture
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    root = tmp_path_factory.mktemp("hostile")
    home = root / "home"
    outside = root / "outside"
    spec_json = build_spec(None, {}, {"name": "victim"}).model_dump_json()
    for d in (home, outside, outside / "data"):
        d.mkdir()
    (outside / "precious.txt").write_text("not pgha's\n")
    (outside / "data" / "table").write_text("rows\n")
    # Bait: what a cluster directory looks like, outside the clusters directory.
    (outside / "spec.json").write_text(spec_json)
    (outside / MARKER).write_text("pgha cluster link\n")
    # A directory with a spec but no marker: not pgha's.
    (home / "victim").mkdir()
    (home / "victim" / "spec.json").write_text(spec_json)
    (home / "victim" / "data.txt").write_text("someone's data\n")
    # A marker naming another cluster (a copied or renamed directory).
    (home / "foreign").mkdir()
    (home / "foreign" / "spec.json").write_text(spec_json)
    (home / "foreign" / MARKER).write_text("pgha cluster victim\n")
    # Symbolic links out of the clusters directory, one to a directory that even holds a marker.
    (home / "link").symlink_to(outside)
    (home / "escape").symlink_to(root)
    before = _snapshot(root)
    yield Scratch(root, home, outside)
    assert _snapshot(root) == before, "a hostile command changed the scratch area"
    assert processes_under(root) == []


def pgha(scratch: Scratch, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGHA_HOME": str(scratch.home), "COLUMNS": "200"}
    return subprocess.run([PGHA, *args], capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def assert_refused(result: subprocess.CompletedProcess[str], expected: str = "") -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert expected in lines[0], lines[0]


BAD_NAMES = ["", ".", "..", "../x", "/", "/etc", "a/b", "Bad", "x" * 40, "default\n", "default ", "-x",
             "victim/..", "link/..", "escape/home", "ünïcode"]
COMMANDS = [["up"], ["down"], ["down", "--purge"], ["status"], ["check"], ["ctl", "list"], ["connect"],
            ["drill"], ["report"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_name(scratch: Scratch, command: list[str]) -> None:
    names = [*BAD_NAMES, str(scratch.outside), str(scratch.home / "victim")]
    # Side by side: each is a CLI start-up (most of the time here), and none touches another's state.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: pgha(scratch, *command, "--name", name), names))
    for result in results:
        assert_refused(result, "name: must be lowercase")


def test_render_compose_refuses_a_bad_name(scratch: Scratch) -> None:
    for name in ("..", "/", "a/b"):
        assert_refused(pgha(scratch, "render", "compose", "--name", name, "--out", str(scratch.root / "out")),
                       "name: must be lowercase")


@pytest.mark.parametrize("name", ["victim", "foreign", "link", "escape"])
def test_purge_deletes_nothing_that_is_not_pgha_s(scratch: Scratch, name: str) -> None:
    assert_refused(pgha(scratch, "down", "--purge", "--name", name), "nothing was deleted")


@pytest.mark.parametrize("name", ["victim", "foreign", "link", "escape"])
def test_a_directory_without_the_marker_is_no_cluster(scratch: Scratch, name: str) -> None:
    for command in (["status"], ["down"], ["connect"], ["check"]):
        assert_refused(pgha(scratch, *command, "--name", name), f"no cluster named {name!r}")
    assert pgha(scratch, "list").stdout == ""


def test_up_refuses_a_directory_it_did_not_create(scratch: Scratch) -> None:
    assert_refused(pgha(scratch, "up", "--name", "victim", "--base-port", "40432"), "did not create it")


@pytest.mark.parametrize(("args", "expected"), [
    (["drill", "--rate", "-1"], "rate: must be between"),
    (["drill", "--rate", "0"], "rate: must be between"),
    (["drill", "--rate", "abc"], "'--rate'"),
    (["drill", "--soak", "0s"], "soak: must be between"),
    (["drill", "--soak", "forever"], "is not a duration"),
    (["drill", "--fault", "bogus"], "unknown fault 'bogus'"),
    (["drill", "--via", "bogus"], "via: must be"),
    (["drill", "--repeat", "0"], "'--repeat'"),
    (["drill", "--hold", "-1"], "'--hold'"),
    (["drill", "--soak", "1m", "--faults", "stop,bogus"], "unknown fault 'bogus'"),
    (["up", "--timeout", "0"], "'--timeout'"),
    (["up", "--nodes", "1000000000"], "nodes: must be between"),
    (["up", "--base-port", "-5"], "base_port"),
    (["up", "--backend", "bogus"], "backend"),
    (["up", "--nodez", "3"], "No such option"),
    (["report", "/etc"], "not a drill run directory"),
    (["render", "compose", "--out", "/etc/hostname"], "exists and is not a directory"),
])
def test_bad_flags_are_one_line(scratch: Scratch, args: list[str], expected: str) -> None:
    assert_refused(pgha(scratch, *args), expected)


def _config(scratch: Scratch, text: str | bytes, name: str = "pgha.yaml") -> str:
    path = scratch.root.parent / f"{scratch.root.name}-{name}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("content", "expected"), [
    (b"\x00\x01\xff\xfe binary", "is not a text file"),
    ("- just\n- a list\n", "must be a mapping"),
    ("nodes: [\n", "is not valid YAML"),
    ("haproxy: [1, 2]\n", "haproxy: must be a mapping"),
    ("dcs: etcd\n", "dcs: must be a mapping"),
    ("1: 2\n", "setting names must be strings"),
    ("!!python/object/apply:os.system ['true']\n", "is not valid YAML"),
    ("haproxy: {timeout_client: \"30m\\nlisten evil\\n bind :1\"}\n", "haproxy.timeout_client"),
    ("haproxy: {timeout_server: \"30m; evil\"}\n", "haproxy.timeout_server"),
    ("node_prefix: ../x\n", "node_prefix"),
    ("node_prefix: dcs\n", "node_prefix"),
    ("scope: a/b\n", "scope"),
    ("scope: \"a\\nb\"\n", "scope"),
    ("host: \"127.0.0.1\\nx\"\n", "host"),
    ("node_host: 10.0.0.1\n", "node_host"),
    ("network: \"198.18.0.0/24\\n\"\n", "network"),
    ("patroni: {parameters: {\"work_mem\\nfsync\": \"off\"}}\n", "patroni.parameters"),
    ("patroni: {parameters: {work_mem: \"4MB\\nfsync = off\"}}\n", "patroni.parameters"),
])
def test_bad_config_files_are_one_line(scratch: Scratch, content: str | bytes, expected: str) -> None:
    assert_refused(pgha(scratch, "up", "--name", "cfg", "--config", _config(scratch, content)), expected)
    assert not (scratch.home / "cfg").exists()


def test_config_that_is_a_directory_or_missing(scratch: Scratch) -> None:
    assert_refused(pgha(scratch, "up", "--name", "cfg", "--config", str(scratch.outside)), "is a directory")
    assert_refused(pgha(scratch, "up", "--name", "cfg", "--config", str(scratch.root / "nope.yaml")),
                   "does not exist")


def test_render_hosts_refuses_a_root_that_would_inject(scratch: Scratch) -> None:
    inventory = _config(scratch, json.dumps({
        "cluster": {"name": "prod"},
        "hosts": [{"name": "db1", "address": "10.0.0.11", "runs": ["node", "dcs", "haproxy"]}],
    }), "hosts.yaml")
    out = scratch.root.parent / f"{scratch.root.name}-bundles"
    for root in ("/var/lib/pgha; rm -rf /", "/var/lib/$(id)", "relative/path", "/var/lib/../../etc", "/x\ny"):
        assert_refused(pgha(scratch, "render", "hosts", "--inventory", inventory, "--out", str(out), "--root", root),
                       "root:")
    assert not out.exists()
    evil = _config(scratch, json.dumps({"hosts": [{"name": "db1\nx", "address": "10.0.0.11",
                                                   "runs": ["node"]}]}), "evil.yaml")
    assert_refused(pgha(scratch, "render", "hosts", "--inventory", evil, "--out", str(out)), "inventory:")
    assert not out.exists()


def test_render_compose_refuses_an_image_that_would_inject(scratch: Scratch) -> None:
    out = scratch.root.parent / f"{scratch.root.name}-compose"
    assert_refused(pgha(scratch, "render", "compose", "--out", str(out), "--base-image", "debian\nEVIL=1"),
                   "--base-image")
    assert not out.exists()


def test_every_command_that_takes_a_name_checks_it_before_anything_else() -> None:
    """The commands above run for real; every other one must share their check (the --name
    option's callback), so that a command added later cannot skip it."""
    import typer

    from pgha.cli.app import _checked_name, app

    def commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group of its own (pgha render ...)
                yield from commands(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    named = {}
    for path, command in commands(typer.main.get_command(app)):
        option = next((p for p in command.params if p.name == "name"), None)
        if option is not None:
            named[path] = getattr(option.callback, "__wrapped__", None)  # Typer wraps the callback it is given
    assert {"up", "status", "top", "switchover", "restore", "render grafana", "render compose"} <= set(named)
    assert [path for path, callback in named.items() if callback is not _checked_name] == []
