"""Authentication in etcd: only Patroni, with its own password, may touch the cluster's keys.

Without it any local user (or any host that reaches the client port) can write
/service/<scope>/failover, /leader or /config and so switch over, demote every node, or have
PostgreSQL run a command of their choosing. pgha turns etcd's role-based access control on:
a `root` user, and a user for Patroni whose role may read and write the cluster's prefix and
nothing else. Everything goes through etcd's HTTP/JSON gateway (the endpoint pgha already uses
for health), so it works the same for every backend, and no password ever appears in a process's
command line.

The steps are idempotent: run again (`pgha up` on a cluster that exists), they authenticate as
root first and converge users, role and passwords. The requests are pure data
(`auth_requests`); `secure_etcd` sends them.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgha.errors import BackendError
from pgha.model.spec import Spec
from pgha.net.dial import Endpoint, http_request
from pgha.security import zk_acl
from pgha.state.secrets import Secrets

log = logging.getLogger(__name__)

NAMESPACE = "/service/"  # Patroni's namespace (pgha/render/patroni.py)
ROOT_USER = "root"
TIMEOUT_S = 10.0
# Answers that mean the state is already what the request asks for.
ALREADY = ("already exists",)
NOT_ENABLED = "authentication is not enabled"


GUARD_NAMESPACE = "/pgha-guard/"  # where the fencing guards keep their own key (pgha.ops.fencing_guard)


def patroni_user(scope: str) -> str:
    return f"patroni-{scope}"


def guard_user(scope: str) -> str:
    return f"guard-{scope}"


def prefix_of(scope: str) -> str:
    return f"{NAMESPACE}{scope}/"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def range_end(prefix: str) -> str:
    """The end of etcd's key range that holds exactly the keys starting with `prefix` (the last
    byte plus one, as `etcdctl --prefix` computes it)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class Request:
    path: str
    body: dict[str, Any]
    # Said only for the log; never holds a password.
    what: str


def auth_requests(scope: str, root_password: str, patroni_password: str) -> list[Request]:
    """What etcd is asked, in order, to end with auth on and Patroni confined to its prefix (pure)."""
    user, prefix = patroni_user(scope), prefix_of(scope)
    return [
        Request("v3/auth/user/add", {"name": ROOT_USER, "password": root_password}, "add user root"),
        Request("v3/auth/user/changepw", {"name": ROOT_USER, "password": root_password}, "set root's password"),
        # The built-in root role: etcd refuses to enable auth without a root user holding it.
        Request("v3/auth/user/grant", {"user": ROOT_USER, "role": ROOT_USER}, "grant root the root role"),
        Request("v3/auth/role/add", {"name": user}, f"add role {user}"),
        Request("v3/auth/role/grant", {"name": user, "perm": {
            "permType": "READWRITE", "key": _b64(prefix), "range_end": _b64(range_end(prefix))}},
            f"let {user} read and write {prefix}"),
        Request("v3/auth/user/add", {"name": user, "password": patroni_password}, f"add user {user}"),
        Request("v3/auth/user/changepw", {"name": user, "password": patroni_password}, f"set {user}'s password"),
        Request("v3/auth/user/grant", {"user": user, "role": user}, f"grant {user} its role"),
        Request("v3/auth/enable", {}, "enable authentication"),
    ]


def guard_requests(scope: str, guard_password: str) -> list[Request]:
    """The fencing guards' user: it reads the cluster's keys, may delete only the leader key (its
    one write there, once the leader is fenced), and keeps its own key under its own prefix (pure)."""
    user, prefix, own = guard_user(scope), prefix_of(scope), f"{GUARD_NAMESPACE}{scope}/"
    leader = f"{prefix}leader"
    return [
        Request("v3/auth/role/add", {"name": user}, f"add role {user}"),
        Request("v3/auth/role/grant", {"name": user, "perm": {
            "permType": "READ", "key": _b64(prefix), "range_end": _b64(range_end(prefix))}},
            f"let {user} read {prefix}"),
        Request("v3/auth/role/grant", {"name": user, "perm": {"permType": "READWRITE", "key": _b64(leader)}},
                f"let {user} delete {leader}"),
        Request("v3/auth/role/grant", {"name": user, "perm": {
            "permType": "READWRITE", "key": _b64(own), "range_end": _b64(range_end(own))}},
            f"let {user} read and write {own}"),
        Request("v3/auth/user/add", {"name": user, "password": guard_password}, f"add user {user}"),
        Request("v3/auth/user/changepw", {"name": user, "password": guard_password}, f"set {user}'s password"),
        Request("v3/auth/user/grant", {"user": user, "role": user}, f"grant {user} its role"),
    ]


Send = Callable[[Endpoint, str, float, str, dict[str, Any] | None, dict[str, str] | None], tuple[int, Any]]


def _send(ep: Endpoint, path: str, timeout: float, method: str, body: dict[str, Any] | None,
          headers: dict[str, str] | None) -> tuple[int, Any]:
    return http_request(ep, path, timeout, method=method, body=body, headers=headers)


def _error(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("error") or answer.get("message") or "")
    return ""


def _root_headers(ep: Endpoint, root_password: str, send: Send) -> dict[str, str]:
    """A fresh root token, or none while authentication is still off. Fresh for every request:
    changing a password or a role makes etcd refuse the tokens issued before."""
    status, answer = send(ep, "v3/auth/authenticate", TIMEOUT_S, "POST",
                          {"name": ROOT_USER, "password": root_password}, None)
    if status == 200 and isinstance(answer, dict) and answer.get("token"):
        return {"Authorization": str(answer["token"])}
    if NOT_ENABLED in _error(answer):
        return {}
    raise BackendError(f"etcd at {ep} refused pgha's root password: {_error(answer) or status}")


def secure_etcd(ep: Endpoint, scope: str, root_password: str, patroni_password: str,
                send: Send = _send, guard_password: str | None = None) -> None:
    """Turn etcd's authentication on for this cluster's scope, or converge it (with a guard
    password: the fencing guards' user too, before authentication goes on); raises BackendError
    with one line when etcd refuses."""
    requests = auth_requests(scope, root_password, patroni_password)
    if guard_password is not None:
        requests[-1:-1] = guard_requests(scope, guard_password)
    _send_all(ep, requests, root_password, send)


def _logs_in(ep: Endpoint, user: str, password: str, send: Send) -> bool:
    status, answer = send(ep, "v3/auth/authenticate", TIMEOUT_S, "POST", {"name": user, "password": password}, None)
    return status == 200 and isinstance(answer, dict) and bool(answer.get("token"))


def _send_all(ep: Endpoint, requests: list[Request], root_password: str, send: Send) -> None:
    try:
        for request in requests:
            headers = _root_headers(ep, root_password, send)
            status, answer = send(ep, request.path, TIMEOUT_S, "POST", request.body, headers)
            if status != 200 and not any(a in _error(answer) for a in ALREADY):
                raise BackendError(f"etcd at {ep} refused to {request.what}: {_error(answer) or status}")
    except OSError as e:
        raise BackendError(f"etcd at {ep} did not answer while securing it: {e}") from None


def etcd_anonymous_write_refused(ep: Endpoint, scope: str, send: Send = _send) -> tuple[bool, str]:
    """(refused, evidence): does etcd refuse a write from a client without credentials?

    The probe is a transaction whose put can never run (a key's version is never below 0), so
    on an open etcd it still writes nothing; with authentication on, etcd refuses it before
    looking at the comparison."""
    key = _b64(prefix_of(scope) + "pgha-security-probe")
    body = {"compare": [{"target": "VERSION", "key": key, "result": "LESS", "version": "0"}],
            "success": [{"request_put": {"key": key, "value": _b64("never written")}}]}
    status, answer = send(ep, "v3/kv/txn", TIMEOUT_S, "POST", body, None)
    error = _error(answer)
    if status != 200 and ("user name is empty" in error or "permission denied" in error):
        return True, f"{ep} refused a write without credentials ({error})"
    return False, f"{ep} accepted a transaction from a client without credentials (HTTP {status})"


def secured_by_pgha(kind: str) -> bool:
    """Whether pgha turns the DCS's authentication on itself, after the members form a quorum
    (etcd); otherwise Patroni protects what it creates (ZooKeeper's ACLs)."""
    return kind == "etcd"


def authenticates(spec: Spec) -> bool:
    """Whether a cluster of this spec can have only Patroni write its keys (what
    spec.dcs.authentication asks for)."""
    # Patroni's only way to protect its znodes is an ACL of x509 identities (its `set_acls`
    # always uses that scheme; digest credentials alone protect nothing, since anyone may add
    # some): so on ZooKeeper authentication needs TLS with client certificates.
    return spec.dcs.kind == "etcd" or spec.tls


def anonymous_write_refused(spec: Spec, ep: Endpoint) -> tuple[bool, str]:
    """(refused, evidence): does the DCS member at ep refuse a write from a client without
    credentials? Never writes, whatever the answer."""
    scope = spec.patroni_scope
    if spec.dcs.kind == "etcd":
        return etcd_anonymous_write_refused(ep, scope)
    if spec.dcs.kind == "zookeeper" and ep.tls is not None:
        return zk_acl.write_refused(ep, f"{NAMESPACE}{scope}")
    return False, f"pgha does not set up authentication for {spec.dcs.kind} yet: anyone who reaches {ep} " \
                  "can write the cluster's keys"


def ensure_authentication(spec: Spec, ep: Endpoint, secrets: Secrets) -> None:
    """Turn the DCS's authentication on when the spec asks for it, pgha is the one to do it for
    this kind and the member at ep still takes anonymous writes (one probe that never writes);
    idempotent."""
    if not (spec.dcs.authentication and secured_by_pgha(spec.dcs.kind) and authenticates(spec)):
        return
    refused, _ = anonymous_write_refused(spec, ep)
    guard = secrets.guard_dcs_password if spec.fencing.enabled else None
    if refused:
        log.info("%s's authentication is already on: only Patroni may write the cluster's keys", spec.dcs.kind)
        if guard is not None:
            # A cluster made before its guards existed gets their user now, and every cluster their
            # role's current permissions. Their password is set again only when it does not work:
            # that voids the tokens of the guards that run.
            requests = guard_requests(spec.patroni_scope, guard)
            if _logs_in(ep, guard_user(spec.patroni_scope), guard, _send):
                requests = [r for r in requests if r.path not in ("v3/auth/user/add", "v3/auth/user/changepw")]
            _send_all(ep, requests, secrets.dcs_root_password, _send)
        return
    log.info("turning on %s's authentication: only Patroni may write the cluster's keys", spec.dcs.kind)
    secure_etcd(ep, spec.patroni_scope, secrets.dcs_root_password, secrets.dcs_password, guard_password=guard)


SECURE_SCRIPT = "secure-etcd.sh"
# How long the script waits for the members to form a quorum.
SCRIPT_WAIT_S = 600


@dataclass(frozen=True)
class FromEnvironment:
    """Passwords the script reads from its environment (a compose job), not written into it."""

    root: str
    patroni: str


def secure_script(endpoints: list[str], scope: str, root_password: str | FromEnvironment, patroni_password: str,
                  tls: tuple[str, str, str] | None) -> str:
    """The same steps as `secure_etcd`, as an etcdctl script for a real machine (the bundles):
    run once as root on one DCS host when every member runs; idempotent. `tls` is (CA, cert,
    key) of the host it runs on. Passwords go through the environment and stdin, never argv;
    with FromEnvironment they are not in the script at all (the compose deployment's job)."""
    user, prefix = patroni_user(scope), prefix_of(scope)
    tls_lines = [f"export ETCDCTL_CACERT={tls[0]} ETCDCTL_CERT={tls[1]} ETCDCTL_KEY={tls[2]}"] if tls else []
    if isinstance(root_password, FromEnvironment):
        env = root_password
        passwords = [f'ROOT_PASSWORD="${{{env.root}:?}}"', f'PATRONI_PASSWORD="${{{env.patroni}:?}}"']
        where = "in the compose deployment: its etcd-auth job runs it once all members run"
    else:
        passwords = [f"ROOT_PASSWORD='{root_password}'", f"PATRONI_PASSWORD='{patroni_password}'"]
        where = "once, as root, on this host, after every DCS member runs"
    return "\n".join([
        "#!/bin/sh",
        f"# Turns etcd's authentication on for cluster scope {scope}: a root user only operators use, and",
        f"# {user}, whose role may read and write {prefix} and nothing else (pgha/security/dcs_auth.py).",
        f"# Run {where}. Running it again is harmless.",
        "set -eu",
        f"export ETCDCTL_API=3 ETCDCTL_ENDPOINTS={','.join(endpoints)}",
        *tls_lines,
        *passwords,
        "waited=0; until etcdctl endpoint health >/dev/null 2>&1; do",
        f"  waited=$((waited + 2)); [ $waited -le {SCRIPT_WAIT_S} ] || {{ echo 'etcd has no quorum' >&2; exit 1; }}",
        "  sleep 2",
        "done",
        # Before the first `auth enable` etcd ignores the login; afterwards only root may do this.
        'export ETCDCTL_USER=root ETCDCTL_PASSWORD="$ROOT_PASSWORD"',
        # An `add` fails on a second run (already exists); the `passwd` or `grant` after it fails
        # loudly if the user or role is really missing.
        'printf \'%s\\n\' "$ROOT_PASSWORD" | etcdctl user add root --interactive=false >/dev/null 2>&1 || true',
        'printf \'%s\\n\' "$ROOT_PASSWORD" | etcdctl user passwd root --interactive=false >/dev/null',
        "etcdctl user grant-role root root >/dev/null",
        f"etcdctl role add {user} >/dev/null 2>&1 || true",
        f"etcdctl role grant-permission {user} --prefix=true readwrite {prefix} >/dev/null",
        f'printf \'%s\\n\' "$PATRONI_PASSWORD" | etcdctl user add {user} --interactive=false >/dev/null 2>&1 || true',
        f'printf \'%s\\n\' "$PATRONI_PASSWORD" | etcdctl user passwd {user} --interactive=false >/dev/null',
        f"etcdctl user grant-role {user} {user} >/dev/null",
        "etcdctl auth enable >/dev/null",
        "echo \"etcd's authentication is on: only Patroni may write " + prefix + "\"",
        "",
    ])
