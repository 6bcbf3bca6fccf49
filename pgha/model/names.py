"""The rules for names and free-form strings that end up in paths, file names and config files.

One place, so that every command checks a cluster's name the same way before it touches a path
built from it, and the spec refuses any string that could break out of the line or the path it
lands in. Pure.
"""

from __future__ import annotations

import re

# fullmatch everywhere: `$` in re.match would accept a trailing newline.
CLUSTER_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
CLUSTER_NAME_RULE = "must be lowercase letters, digits and '-', starting with a letter, <= 31 chars"
# Node names are the prefix plus a digit; they name files, Patroni members and HAProxy servers.
NODE_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")
# Names other components already use ("dcs0", "haproxy1", "switch"): a node named like them
# would share their logs and files.
RESERVED_NODE_PREFIX = re.compile(r"(dcs|haproxy|pooler|switch|guard|prometheus)[0-9]*")
# Patroni's scope is a key in the DCS (/service/<scope>/) and a word in its config.
SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# HAProxy's time format: a number and an optional unit.
HAPROXY_TIME = re.compile(r"[0-9]{1,9}(us|ms|s|m|h|d)?")
POSTGRES_PARAMETER = re.compile(r"[a-z_][a-z0-9_.]{0,62}")
# An absolute path of plain characters: it lands in systemd units and shell scripts.
PLAIN_ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9._/-]{0,200}")
IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")


def is_cluster_name(name: str) -> bool:
    return CLUSTER_NAME.fullmatch(name) is not None


def cluster_name_problem(name: str) -> str | None:
    """Why `name` cannot name a cluster, or None."""
    return None if is_cluster_name(name) else f"{CLUSTER_NAME_RULE} (got {name!r})"


def has_control_characters(text: str) -> bool:
    """Newlines, NUL and the like: each would end a config line early or start a new one."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
