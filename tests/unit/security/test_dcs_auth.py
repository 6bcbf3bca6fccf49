"""etcd authentication: the requests pgha sends, and how it treats etcd's answers (no servers;
tests/integration/test_dcs_attacks.py runs the attacks against a real cluster)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pgha.errors import BackendError
from pgha.net.dial import Endpoint
from pgha.security.dcs_auth import (
    auth_requests,
    guard_requests,
    guard_user,
    patroni_user,
    prefix_of,
    range_end,
    secure_etcd,
)

EP = Endpoint("127.0.1.1", 2379)


def test_patroni_is_confined_to_its_clusters_prefix() -> None:
    requests = auth_requests("demo", "root-pw", "patroni-pw")
    grant = next(r for r in requests if r.path == "v3/auth/role/grant")
    perm = grant.body["perm"]
    assert grant.body["name"] == patroni_user("demo") == "patroni-demo"
    assert perm["permType"] == "READWRITE"
    assert base64.b64decode(perm["key"]) == b"/service/demo/"
    # Exactly the keys under the prefix: "/service/demo0" is past the end, "/service/demo/x" inside.
    assert base64.b64decode(perm["range_end"]) == b"/service/demo0"
    assert "/service/demo/" <= "/service/demo/x" < range_end(prefix_of("demo")) <= "/service/demo0"


def test_the_guards_read_the_cluster_and_may_delete_only_its_leader_key() -> None:
    requests = guard_requests("demo", "guard-pw")
    perms = [(base64.b64decode(r.body["perm"]["key"]).decode(), r.body["perm"]["permType"],
              base64.b64decode(r.body["perm"]["range_end"]).decode() if "range_end" in r.body["perm"] else None)
             for r in requests if r.path == "v3/auth/role/grant"]
    assert perms == [("/service/demo/", "READ", "/service/demo0"),
                     ("/service/demo/leader", "READWRITE", None),  # one key, no range
                     ("/pgha-guard/demo/", "READWRITE", "/pgha-guard/demo0")]
    assert guard_user("demo") == "guard-demo" and all("guard-pw" not in r.what for r in requests)


def test_authentication_is_enabled_last_and_passwords_stay_out_of_the_log_words() -> None:
    requests = auth_requests("demo", "root-pw", "patroni-pw")
    assert requests[-1].path == "v3/auth/enable"
    assert all("pw" not in r.what for r in requests)
    added = [r.body["name"] for r in requests if r.path == "v3/auth/user/add"]
    assert added == ["root", "patroni-demo"]


class FakeEtcd:
    """Answers like etcd's gateway; records what it was sent and with which token."""

    def __init__(self, enabled: bool, root_password: str = "root-pw", refuse: str = "") -> None:
        self.enabled = enabled
        self.root_password = root_password
        self.refuse = refuse
        self.sent: list[tuple[str, str | None]] = []
        self.tokens = 0

    def __call__(self, ep: Endpoint, path: str, timeout: float, method: str, body: dict[str, Any] | None,
                 headers: dict[str, str] | None) -> tuple[int, Any]:
        assert method == "POST" and body is not None
        if path == "v3/auth/authenticate":
            if not self.enabled:
                return 400, {"error": "etcdserver: authentication is not enabled", "code": 9}
            if body["password"] != self.root_password:
                return 400, {"error": "etcdserver: authentication failed, invalid user ID or password"}
            self.tokens += 1
            return 200, {"token": f"t{self.tokens}"}
        token = (headers or {}).get("Authorization")
        self.sent.append((path, token))
        if path == self.refuse:
            return 500, {"error": "etcdserver: something broke"}
        if path == "v3/auth/enable":
            self.enabled = True
        if path.endswith("/add") and self.enabled:  # a second run: users and role exist
            return 400, {"error": "etcdserver: user name already exists"}
        return 200, {}


def test_first_run_sends_everything_without_a_token_and_ends_enabled() -> None:
    etcd = FakeEtcd(enabled=False)
    secure_etcd(EP, "demo", "root-pw", "patroni-pw", send=etcd)
    assert [p for p, _ in etcd.sent] == [r.path for r in auth_requests("demo", "root-pw", "patroni-pw")]
    assert all(token is None for _, token in etcd.sent) and etcd.enabled


def test_a_second_run_authenticates_as_root_afresh_for_every_request_and_tolerates_existing_users() -> None:
    etcd = FakeEtcd(enabled=True)
    secure_etcd(EP, "demo", "root-pw", "patroni-pw", send=etcd)
    tokens = [token for _, token in etcd.sent]
    assert None not in tokens and len(set(tokens)) == len(tokens)


def test_a_wrong_root_password_is_one_line_and_changes_nothing() -> None:
    etcd = FakeEtcd(enabled=True, root_password="other")
    with pytest.raises(BackendError, match=r"refused pgha's root password: .*invalid user ID or password"):
        secure_etcd(EP, "demo", "root-pw", "patroni-pw", send=etcd)
    assert etcd.sent == []


def test_a_refused_step_names_it() -> None:
    etcd = FakeEtcd(enabled=False, refuse="v3/auth/role/grant")
    with pytest.raises(BackendError, match=r"refused to let patroni-demo read and write /service/demo/: .*broke"):
        secure_etcd(EP, "demo", "root-pw", "patroni-pw", send=etcd)
    assert not etcd.enabled  # stopped before enabling


def test_no_answer_is_one_line() -> None:
    def silent(*args: Any) -> tuple[int, Any]:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(BackendError, match="did not answer while securing it"):
        secure_etcd(EP, "demo", "root-pw", "patroni-pw", send=silent)


def test_the_security_probe_can_never_write_and_reads_etcds_refusal() -> None:
    from pgha.security.dcs_auth import etcd_anonymous_write_refused

    sent: list[dict[str, Any]] = []

    def etcd(answer: tuple[int, Any]) -> Any:
        def send(ep: Endpoint, path: str, timeout: float, method: str, body: dict[str, Any] | None,
                 headers: dict[str, str] | None) -> tuple[int, Any]:
            assert path == "v3/kv/txn" and headers is None and body is not None
            sent.append(body)
            return answer
        return send

    refused, evidence = etcd_anonymous_write_refused(EP, "demo", send=etcd(
        (400, {"error": "etcdserver: user name is empty", "code": 3})))
    assert refused and "refused a write without credentials" in evidence
    refused, evidence = etcd_anonymous_write_refused(EP, "demo", send=etcd((200, {"header": {"revision": "1"}})))
    assert not refused and "accepted" in evidence
    # The put is guarded by a comparison that never holds: version < 0.
    (compare,) = sent[0]["compare"]
    assert (compare["target"], compare["result"], compare["version"]) == ("VERSION", "LESS", "0")
    assert base64.b64decode(compare["key"]).startswith(b"/service/demo/")


def test_patroni_logs_in_to_etcd_as_its_own_user_and_the_lab_stays_open(tmp_path: Any) -> None:
    from pgha.components.patroni import patroni_config
    from pgha.model.spec import build_spec
    from pgha.model.topology import topology
    from pgha.state.layout import Layout
    from pgha.state.secrets import Secrets

    secrets = Secrets.generate()
    default = build_spec("default", overrides={"name": "shop"})
    cfg = patroni_config(topology(default), Layout(tmp_path), secrets, default.node_names[0])
    assert cfg["etcd3"]["username"] == "patroni-shop" and cfg["etcd3"]["password"] == secrets.dcs_password
    assert secrets.dcs_root_password not in str(cfg)  # root's password is pgha's alone
    opened = build_spec("default", file_settings={"dcs": {"authentication": False}})
    assert set(patroni_config(topology(opened), Layout(tmp_path), secrets, "node0")["etcd3"]) == {"hosts"}
    seed = build_spec("seed")
    assert set(patroni_config(topology(seed), Layout(tmp_path), secrets, seed.node_names[0])["zookeeper"]) == {"hosts"}
