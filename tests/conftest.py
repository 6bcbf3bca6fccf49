"""Shared fixtures: a private PGHA_HOME per test session, and clusters that never leak."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pgha_home() -> Iterator[Path]:
    # Not pytest's tmp_path: it lives under a 0700 directory the service user cannot enter.
    home = Path(tempfile.mkdtemp(prefix="pgha-test-", dir="/tmp"))
    home.chmod(0o755)
    old = os.environ.get("PGHA_HOME")
    os.environ["PGHA_HOME"] = str(home)
    yield home
    shutil.rmtree(home, ignore_errors=True)
    if old is None:
        os.environ.pop("PGHA_HOME", None)
    else:
        os.environ["PGHA_HOME"] = old
