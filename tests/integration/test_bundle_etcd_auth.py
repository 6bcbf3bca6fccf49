"""A host bundle's etcd, for real: the member starts from the files `pgha render hosts` wrote
(TLS on, the cluster's certificates), and the bundle's `secure-etcd.sh` turns authentication on,
twice without harm. Afterwards a client with a certificate of the cluster's CA but no password
is refused, and Patroni's user may write its prefix and nothing else."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import run_pgha

from pgha.security.dcs_auth import SECURE_SCRIPT, patroni_user

pytestmark = pytest.mark.integration
ADDRESS = "127.0.2.1"  # a loopback address no other test uses; the bundle gets etcd's standard ports
SCOPE = "bundled"


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        pytest.fail("etcd and etcdctl are needed (make setup installs etcd-server and etcd-client)")
    tmp = tmp_path_factory.mktemp("bundle")
    inventory = tmp / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"cluster": {"name": SCOPE},
                                         "hosts": [{"name": "h1", "address": ADDRESS,
                                                    "runs": ["node", "dcs", "haproxy"]}]}))
    root = tmp / "root"
    run_pgha("render", "hosts", "--inventory", str(inventory), "--out", str(tmp / "out"), "--root", str(root),
             check=True)
    shutil.copytree(tmp / "out" / "h1", root)  # what install.sh does on the host
    (root / "data").mkdir(exist_ok=True)
    log = (tmp / "etcd.log").open("w")
    proc = subprocess.Popen(["etcd", "--config-file", str(root / "conf" / "dcs-0.conf")], stdout=log, stderr=log)
    try:
        yield root
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def etcdctl(root: Path, *args: str, login: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tls = root / "conf" / "tls"
    env = {"ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": f"https://{ADDRESS}:2379", "ETCDCTL_CACERT": str(tls / "ca.crt"),
           "ETCDCTL_CERT": str(tls / "dcs0.crt"), "ETCDCTL_KEY": str(tls / "dcs0.key"), "PATH": "/usr/bin:/bin"}
    if login is not None:
        env |= {"ETCDCTL_USER": login[0], "ETCDCTL_PASSWORD": login[1]}
    return subprocess.run(["etcdctl", "--dial-timeout=3s", "--command-timeout=5s", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_bundles_script_turns_authentication_on(member: Path) -> None:
    script = member / "conf" / SECURE_SCRIPT
    assert script.stat().st_mode & 0o077 == 0
    for _ in range(2):  # a second run converges and changes nothing
        result = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=700, check=False)
        assert result.returncode == 0 and "authentication is on" in result.stdout, result.stdout + result.stderr
    # The host's certificate names dcs0, which is no etcd user: etcd takes it for one and refuses.
    refused = etcdctl(member, "put", f"/service/{SCOPE}/leader", "evil")
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr
    password = yaml.safe_load((member.parent / "out" / "secrets.yml").read_text())["dcs_password"]
    login = (patroni_user(SCOPE), password)
    assert etcdctl(member, "put", f"/service/{SCOPE}/probe", "ok", login=login).returncode == 0
    outside = etcdctl(member, "put", "/service/other/leader", "evil", login=login)
    assert outside.returncode != 0 and "permission denied" in outside.stderr, outside.stderr
