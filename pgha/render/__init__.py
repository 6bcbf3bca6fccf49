"""Spec -> the files a cluster needs, as data (path, text, mode); writing them is the caller's job.

One module per artefact (patroni, haproxy, dcs, compose, hosts); which files a component needs
is its component kind's decision (pgha.components), made in one place for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    text: str
    mode: int  # 0o600 for anything holding a password


def to_yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
