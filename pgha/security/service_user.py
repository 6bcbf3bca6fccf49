"""PostgreSQL refuses to run as root: as root, pgha runs the cluster as a system user it creates."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

from pgha.errors import PghaError
from pgha.state.layout import SERVICE_USER
from pgha.state.procs import RunAs


class ServiceUserError(PghaError):
    pass


def service_account() -> RunAs:
    """RunAs for the cluster's processes: the service user as root, the caller otherwise."""
    if os.geteuid() != 0:
        return RunAs(None)
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--comment", "pgha cluster processes", SERVICE_USER],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0 and result.returncode != 9:  # 9: created meanwhile
            raise ServiceUserError(
                f"cannot create system user {SERVICE_USER!r}: {result.stderr.strip() or result.returncode}"
            ) from None
    return RunAs(SERVICE_USER)
