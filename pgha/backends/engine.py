"""The container engine a compose cluster runs on: Docker or rootful Podman, behind one interface.

Both engines take the same verbs (stop, kill, pause, start, logs) and describe a container the
same way (`inspect`: Docker's format, which Podman copies), so the compose backend never asks
which one it has. What differs lives here: how to tell the engine runs, which compose program
drives it, and how a network reports its subnets.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgha.errors import BackendError, tail
from pgha.model.spec import ENGINES

log = logging.getLogger(__name__)

ENGINE_TIMEOUT = 120.0
SETUP_HINT = "run `make containers` (scripts/container-engine.sh)"


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    state: str  # running | paused | exited | created | restarting ...
    pid: int
    labels: dict[str, str]


def parse_inspect(text: str) -> list[ContainerInfo]:
    """`<engine> inspect` output (a JSON array, Docker's format on both engines) -> containers (pure)."""
    found = []
    for c in json.loads(text or "[]") or []:
        state = c.get("State") or {}
        found.append(ContainerInfo(name=str(c.get("Name", "")).lstrip("/"),
                                   state=str(state.get("Status", "")).lower(),
                                   pid=int(state.get("Pid") or 0),
                                   labels=dict((c.get("Config") or {}).get("Labels") or {})))
    return found


def parse_subnets(engine: str, text: str) -> list[str]:
    """`<engine> network inspect` output -> the network's subnets (pure): Docker reports them
    under IPAM.Config, Podman 4 (netavark) under subnets."""
    out: list[str] = []
    for net in json.loads(text or "[]") or []:
        if engine == "docker":
            out += [str(c.get("Subnet")) for c in (net.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
        else:
            out += [str(s.get("subnet")) for s in net.get("subnets") or [] if s.get("subnet")]
    return out


class Engine:
    """One engine's command line. `name` is "docker" or "podman", the program it runs."""

    def __init__(self, name: str) -> None:
        if name not in ENGINES:
            raise BackendError(f"engine: {name!r} is not one of {', '.join(ENGINES)}")
        self.name = name

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"

    def run(self, *args: str, timeout: float = ENGINE_TIMEOUT, check: bool = True) -> str:
        try:
            result = subprocess.run([self.name, *args], capture_output=True, text=True, timeout=timeout,
                                    check=False)
        except FileNotFoundError:
            raise BackendError(f"{self.name} not found: {SETUP_HINT}") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"{self.name} {args[0]} did not finish in {timeout:.0f} s") from None
        if check and result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise BackendError(f"{self.name} {' '.join(args[:2])}: {first}")
        return result.stdout

    def ok(self, *args: str, timeout: float = ENGINE_TIMEOUT) -> bool:
        """Whether the command succeeds (its output dropped)."""
        try:
            return subprocess.run([self.name, *args], capture_output=True, timeout=timeout,
                                  check=False).returncode == 0
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return False

    def installed(self) -> bool:
        return shutil.which(self.name) is not None

    def answers(self) -> bool:
        """Docker: its daemon answers; Podman (rootful, no daemon): the program runs."""
        return self.installed() and self.ok("version", timeout=20)

    # --- containers, images, networks ------------------------------------------------------------

    def containers(self, label: str) -> list[ContainerInfo]:
        """Every container (running or not) carrying the label ("key=value")."""
        ids = self.run("ps", "-a", "-q", "--filter", f"label={label}").split()
        if not ids:
            return []
        # A container removed between the two calls is left out (inspect fails for it alone).
        return parse_inspect(self.run("inspect", "--type", "container", *ids, check=False))

    def image_exists(self, reference: str) -> bool:
        return self.ok("image", "inspect", reference, timeout=60)

    def images(self, repository: str) -> list[str]:
        """IDs of every image of that repository (any tag)."""
        out = self.run("images", "--quiet", "--filter", f"reference={repository}", check=False)
        return sorted(set(out.split()))

    def networks_on(self, subnet: str, other_than: str) -> list[str]:
        """Networks of this engine (but `other_than`) that use the subnet."""
        names = [n for n in self.run("network", "ls", "--format", "{{.Name}}").split() if n != other_than]
        if not names:
            return []
        nets = json.loads(self.run("network", "inspect", *names, check=False) or "[]") or []
        return [str(net.get("Name") or net.get("name")) for net in nets
                if subnet in parse_subnets(self.name, json.dumps([net]))]

    def logs(self, container: str) -> str:
        result = subprocess.run([self.name, "logs", container], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=ENGINE_TIMEOUT, check=False)
        return result.stdout.decode(errors="replace")

    def build(self, tag: str, context: Path, file: str, args: dict[str, str], *, log: Path,
              timeout: float) -> None:
        """Build an image from a context directory, the output appended to log."""
        argv = [self.name, "build", "-t", tag, "-f", str(context / file)]
        for key, value in args.items():
            argv += ["--build-arg", f"{key}={value}"]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            try:
                result = subprocess.run([*argv, str(context)], stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, timeout=timeout, check=False)
            except FileNotFoundError:
                raise BackendError(f"{self.name} not found: {SETUP_HINT}") from None
            except subprocess.TimeoutExpired:
                raise BackendError(f"{self.name} build did not finish in {timeout:.0f} s (see {log})",
                                   tail(log)) from None
        if result.returncode != 0:
            raise BackendError(f"{self.name} build failed (see {log})", tail(log))

    # --- compose ---------------------------------------------------------------------------------

    def compose_command(self) -> list[str]:
        """The compose program that drives this engine: podman-compose for Podman (beside pgha's
        Python first); for Docker, its `docker compose` plugin (v2) when it has one, else
        `docker-compose` (v1, as Debian packages it, or a standalone v2)."""
        if self.name == "podman":
            beside = Path(sys.executable).parent / "podman-compose"
            found = str(beside) if beside.exists() else shutil.which("podman-compose")
            if found is None:
                raise BackendError(f"podman-compose not found: {SETUP_HINT} (or pip install podman-compose)")
            return [found]
        if self.ok("compose", "version", timeout=20):
            return ["docker", "compose"]
        found = shutil.which("docker-compose")
        if found is None:
            raise BackendError(f"neither `docker compose` nor docker-compose found: {SETUP_HINT}")
        return [found]


def detect(preferred: Sequence[str] = ("docker", "podman")) -> Engine:
    """The first engine that is installed and answers, Docker first (most users have it)."""
    for name in preferred:
        engine = Engine(name)
        if engine.answers():
            log.info(f"container engine: {name} (installed and answering; Docker is tried first)")
            return engine
    raise BackendError(f"no container engine answers (tried {', '.join(preferred)}): {SETUP_HINT}, "
                       f"or start dockerd")
