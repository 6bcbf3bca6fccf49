"""Component kinds: the files, command lines, units, ports and packages each kind renders for a
place, as the local backend, the netns backend, the host bundles and the compose image get them."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pgha.backends.local import LocalBackend, patroni_bin
from pgha.backends.netns import NetnsBackend
from pgha.components.backup import BACKUP_AGENT, REPOSITORY_HOST
from pgha.components.base import Programs, Site
from pgha.components.dcs import Etcd, ZooKeeper, dcs_component
from pgha.components.kinds import HAPROXY, PATRONI, POOLER, component_for
from pgha.components.render import render_component
from pgha.deploy.host_bundle import REAL_MACHINE, HostBundle, render_bundle
from pgha.model.spec import build_spec
from pgha.model.topology import topology
from pgha.net.dcs import zookeeper_health
from pgha.net.dial import Endpoint
from pgha.ops import node_hook
from pgha.security import pki
from pgha.state.layout import Layout
from pgha.state.procs import RunAs
from pgha.state.secrets import Secrets

SECRETS = Secrets("super-pw-1", "repl-pw-2", "rest-pw-3", "stats-pw-4")
ROOT = Path("/srv/c")


def _site(name: str, programs: Programs = REAL_MACHINE, **overrides: object) -> Site:
    spec = build_spec("default", overrides={"name": "c", **overrides})
    topo = topology(spec)
    return Site(topo, topo.place(name), Layout(ROOT), SECRETS, programs)


def test_each_place_gets_its_kind() -> None:
    spec = build_spec("default", overrides={"dcs": {"kind": "zookeeper", "members": 3}})
    topo = topology(spec)
    assert [type(component_for(spec, p)).__name__ for p in topo.places] == \
        ["ZooKeeper"] * 3 + ["PatroniNode"] * 3 + ["HAProxy", "Pooler", "Prometheus"]
    assert isinstance(dcs_component(build_spec("default")), Etcd)
    netns = build_spec("default", overrides={"backend": "netns"})
    assert [type(component_for(netns, p)).__name__ for p in topology(netns).places][-7:] == \
        ["RepositoryHost"] + ["BackupAgent"] * 3 + ["FencingGuard"] * 2 + ["Prometheus"]


def test_node_unit_runs_patroni_with_its_config_and_never_kills_the_postmaster_first() -> None:
    files, unit = render_component(_site("node1"))
    # Its config, and Patroni's hooks (the script, and their config with passwords).
    assert [(f.path, f.mode) for f in files] == [(ROOT / "conf" / "patroni-node1.yml", 0o600),
                                                 (ROOT / "conf" / "pgha-node-hook.py", 0o644),
                                                 (ROOT / "conf" / "hook-node1.json", 0o600),
                                                 (ROOT / "conf" / "pgha-patroni.py", 0o644)]
    assert yaml.safe_load(files[0].text)["etcd3"]["hosts"] == ["127.0.1.1:5462", "127.0.1.1:5463", "127.0.1.1:5464"]
    assert unit.name == "pgha-c-patroni-node1.service" and unit.user == "pgha"
    # Patroni's own entry point, after pgha's patches to its graceful stop (pgha/ops/patroni_patches.py).
    assert unit.exec_start == ["/opt/pgha/venv/bin/python", "/srv/c/conf/pgha-patroni.py",
                               "/srv/c/conf/patroni-node1.yml"]
    assert unit.environment["HOME"] == "/srv/c" and "PGPASSWORD" not in unit.environment
    text = unit.text()
    assert "ExecStart=/opt/pgha/venv/bin/python /srv/c/conf/pgha-patroni.py /srv/c/conf/patroni-node1.yml\n" in text
    assert "KillMode=process\n" in text and "Type=simple\n" in text


def test_haproxy_runs_master_worker_under_systemd_and_in_the_foreground_under_pgha() -> None:
    _, unit = render_component(_site("haproxy"))
    assert unit.exec_start == ["/usr/sbin/haproxy", "-Ws", "-f", "/srv/c/conf/haproxy.cfg"]
    assert "Type=notify\n" in unit.text() and "KillMode=mixed\n" in unit.text()
    _, here = render_component(_site("haproxy", Programs.on_this_machine("/venv/bin/patroni")))
    assert here.exec_start[1:] == ["-db", "-f", "/srv/c/conf/haproxy.cfg"]


def test_etcd_and_zookeeper_members_render_their_own_files_and_commands() -> None:
    files, unit = render_component(_site("dcs1"))
    assert [f.path for f in files] == [ROOT / "conf" / "dcs-1.conf"]
    assert yaml.safe_load(files[0].text)["name"] == "dcs1"
    assert unit.exec_start == ["/usr/bin/etcd", "--config-file", "/srv/c/conf/dcs-1.conf"]
    assert unit.name == "pgha-c-etcd-dcs1.service"
    zk = {"dcs": {"kind": "zookeeper", "members": 3}}
    files, unit = render_component(_site("dcs2", **zk))
    assert {str(f.path): f.text for f in files}["/srv/c/data/dcs-2/myid"] == "3\n"
    assert "/srv/c/conf/zookeeper-log4j.properties" in {str(f.path) for f in files}
    assert unit.exec_start[0] == "/usr/bin/java" and unit.exec_start[-1] == "/srv/c/conf/dcs-2.conf"
    assert "-Dlog4j.configuration=file:/srv/c/conf/zookeeper-log4j.properties" in unit.exec_start
    assert unit.name == "pgha-c-zookeeper-dcs2.service"


def test_ports_each_kind_listens_on() -> None:
    site = _site("node0", base_port=9432)
    topo = site.topo
    assert PATRONI.ports(topo, topo.place("node0")) == [("postgres of node0", 9442), ("REST API of node0", 9452)]
    assert HAPROXY.ports(topo, topo.place("haproxy")) == [
        ("HAProxy read-write entrypoint", 9432), ("HAProxy stats", 9434), ("HAProxy read-only entrypoint", 9433)]
    zk = _site("dcs0", base_port=9432, dcs={"kind": "zookeeper", "members": 1})
    assert ZooKeeper().ports(zk.topo, zk.place) == [("DCS dcs0 client", 9462), ("DCS dcs0 peer", 9472),
                                                    ("DCS dcs0 election", 9482)]


def test_the_local_backend_starts_what_its_units_say_with_this_machines_programs(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"name": "c"})
    backend = LocalBackend(spec, Layout(tmp_path), SECRETS, RunAs(None))
    node = backend.unit("node2")
    assert node.exec_start == [str(patroni_bin().parent / "python"), str(tmp_path / "conf" / "pgha-patroni.py"),
                               str(tmp_path / "conf" / "patroni-node2.yml")]
    assert backend.unit("haproxy").exec_start[1:3] == ["-db", "-f"]
    written = {f.path for f in backend.rendered()}
    assert tmp_path / "conf" / "patroni-node2.yml" in written and tmp_path / "conf" / "dcs-2.conf" in written


def test_the_netns_backend_starts_the_bundle_units_with_the_venvs_patroni(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"backend": "netns", "name": "c"})
    backend = NetnsBackend(spec, Layout(tmp_path), SECRETS, RunAs(None))
    host = tmp_path / "hosts" / "haproxy1"
    unit = backend.unit("haproxy1")
    assert unit.exec_start == ["/usr/sbin/haproxy", "-Ws", "-f", str(host / "conf" / "haproxy.cfg")]
    assert unit.environment["HOME"] == str(host) and unit.user == "pgha"
    files = {f.path: f.text for f in backend.rendered()}
    assert files[host / "units" / unit.name] == unit.text()


class _Srvr(socketserver.BaseRequestHandler):
    reply = b""

    def handle(self) -> None:
        self.request.recv(16)
        self.request.sendall(self.reply)


@pytest.fixture
def zk_answering() -> Iterator[tuple[Endpoint, type[_Srvr]]]:
    with socketserver.TCPServer(("127.0.0.1", 0), _Srvr) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield Endpoint("127.0.0.1", server.server_address[1]), _Srvr
        server.shutdown()


def test_zookeeper_health_reads_the_mode_of_srvr(zk_answering: tuple[Endpoint, type[_Srvr]]) -> None:
    ep, handler = zk_answering
    handler.reply = b"Zookeeper version: 3.8\nMode: follower\nNode count: 5\n"
    assert zookeeper_health(ep, 2.0) == (True, "follower")
    handler.reply = b"This ZooKeeper instance is not currently serving requests\n"
    assert zookeeper_health(ep, 2.0) == (False, "This ZooKeeper instance is not currently serving requests")


@pytest.mark.parametrize(("dcs", "packages", "extra"), [
    ("etcd", "iproute2 postgresql-15 postgresql-client-15 python3-venv etcd-server etcd-client", "etcd3"),
    ("zookeeper", "iproute2 postgresql-15 postgresql-client-15 python3-venv zookeeper default-jre-headless",
     "zookeeper"),
])
def test_install_script_installs_the_packages_of_what_the_host_runs(dcs: str, packages: str, extra: str) -> None:
    spec = build_spec("default", overrides={"name": "c", "dcs": {"kind": dcs, "members": 3}})
    topo = topology(spec)
    bundle = HostBundle("db1", (topo.place("node0"), topo.place("dcs0")), ROOT)
    files = {f.path: f.text for f in render_bundle(topo, bundle, SECRETS, REAL_MACHINE)}
    script = files[ROOT / "install.sh"]
    assert f"apt-get install -y --no-install-recommends {packages}\n" in script
    assert f"pip install 'patroni[{extra}]==" in script
    assert ("systemctl disable --now etcd " in script) == (dcs == "etcd")
    assert "systemctl disable --now haproxy" not in script
    assert script.index("systemctl enable --now pgha-c-patroni-node0.service") < \
        script.index(f"systemctl enable --now pgha-c-{dcs}-dcs0.service")


def test_the_pooler_pools_transactions_to_its_haproxy_with_scram_and_tls() -> None:
    spec = build_spec("default", overrides={"backend": "netns", "name": "c", "base_port": 9432})
    topo = topology(spec)
    place = topo.place("pooler1")
    site = Site(topo, place, Layout(Path("/x")), SECRETS, Programs("patroni"))
    files = {f.path.name: f for f in POOLER.files(site)}
    ini = files["pgbouncer.ini"].text
    # Its HAProxy's read-write entrypoint, on the same host.
    assert "* = host=198.18.0.31 port=5432" in ini
    assert "listen_addr = 198.18.0.31" in ini and "listen_port = 6432" in ini
    assert "pool_mode = transaction" in ini and "auth_type = scram-sha-256" in ini
    assert "unix_socket_dir = \n" in ini  # no socket shared through /tmp
    assert "client_tls_sslmode" not in ini  # without TLS
    users = files["pgbouncer-users.txt"]
    assert users.mode == 0o600 and users.text.splitlines() == ['"app" ""', '"pooler_admin" ""']
    unit = POOLER.unit(site, "pgha")
    assert unit.exec_start == ["/usr/sbin/pgbouncer", "/x/conf/pgbouncer.ini"]
    assert "LimitNOFILE=65536" in unit.text() and "Type=notify" in unit.text()
    assert spec.ports.pooler == (9437, 9438)
    # The lab's profile has none unless asked for.
    assert build_spec("seed").ports.pooler == ()
    assert build_spec("seed", overrides={"pooler": {"enabled": True}}).ports.pooler == (6432,)


def test_patroni_runs_the_hooks_with_the_python_of_its_venv() -> None:
    files, _ = render_component(_site("node1"))
    cfg = yaml.safe_load(files[0].text)["postgresql"]
    hook = "/opt/pgha/venv/bin/python /srv/c/conf/pgha-node-hook.py /srv/c/conf/hook-node1.json"
    assert cfg["before_stop"] == f"{hook} before_stop"
    assert cfg["callbacks"] == {"on_role_change": hook}
    # The node that initialises the cluster creates the application role itself: a fleet from
    # bundles, where pgha never runs, has it too.
    assert yaml.safe_load(files[0].text)["bootstrap"]["post_bootstrap"] == f"{hook} post_bootstrap"
    hook_cfg = json.loads(files[2].text)
    assert hook_cfg["node"] == "node1" and [p["port"] for p in hook_cfg["poolers"]] == [5437]
    # A real machine reaches no HAProxy admin socket: the health checks find the new primary.
    assert hook_cfg["haproxy_sockets"] == []
    assert hook_cfg["resume_within_s"] == 30  # ttl + a margin: never paused for ever
    # The shipped script is pgha's own, and imports nothing of pgha.
    assert files[1].text == (Path(node_hook.__file__)).read_text()
    assert "from pgha" not in files[1].text and "import pgha" not in files[1].text


def test_the_lab_profile_has_no_hooks() -> None:
    files, _ = render_component(_site("postgresql0", profile="seed"))
    assert [f.path.name for f in files] == ["patroni-postgresql0.yml", "pgha-patroni.py"]
    assert "before_stop" not in yaml.safe_load(files[0].text)["postgresql"]


def test_on_this_machine_a_new_primary_pushes_routing_to_haproxys_socket(tmp_path: Path) -> None:
    backend = LocalBackend(build_spec("default", overrides={"base_port": 9432}), Layout(tmp_path), SECRETS,
                           RunAs(None))
    files = {f.path.name: f for f in backend.launcher.render(backend.site("node0"))}
    hook = json.loads(files["hook-node0.json"].text)
    assert hook["haproxy_sockets"] == [str(tmp_path / "run" / "haproxy.sock")]
    assert hook["entrypoints"] == [{"host": "127.0.0.1", "port": 9432}]
    assert hook["poolers"] == [{"name": "pooler", "host": "127.0.0.1", "port": 9437}]


def test_the_pooler_speaks_tls_both_ways_in_a_tls_cluster(tmp_path: Path) -> None:
    spec = build_spec("default", overrides={"backend": "netns", "name": "c", "base_port": 9432})
    topo = topology(spec)
    store = pki.ensure(tmp_path / "pki", topo)
    site = Site(topo, topo.place("pooler"), Layout(ROOT), SECRETS, Programs("patroni"), store)
    files = {f.path.name: f for f in POOLER.files(site)}
    ini = files["pgbouncer.ini"].text
    assert "client_tls_sslmode = require" in ini
    assert "client_tls_cert_file = /srv/c/conf/tls/pooler.crt" in ini
    # Through HAProxy the server's name is not the address dialled: the CA is checked, not the name.
    assert "server_tls_sslmode = verify-ca" in ini and "server_tls_ca_file = /srv/c/conf/tls/ca.crt" in ini
    assert {"pooler.crt", "pooler.key", "ca.crt"} <= set(files)
    # Its certificate names the address clients on this machine dial too.
    assert spec.host in pki.plan(topo)["pooler"].ips


def test_each_kind_says_how_it_takes_up_a_renewed_certificate() -> None:
    from pgha.components.base import CertificateReload
    from pgha.components.dcs import DCS_KINDS

    assert DCS_KINDS["etcd"].certificate_reload is CertificateReload.PER_HANDSHAKE
    assert DCS_KINDS["zookeeper"].certificate_reload is CertificateReload.RESTART
    assert HAPROXY.certificate_reload is CertificateReload.RUNTIME_API
    assert PATRONI.certificate_reload is CertificateReload.SIGHUP
    assert POOLER.certificate_reload is CertificateReload.SIGHUP
    # pgBackRest's TLS server reads its certificate when it starts.
    assert REPOSITORY_HOST.certificate_reload is BACKUP_AGENT.certificate_reload is CertificateReload.RESTART


def test_pgbackrests_servers_run_as_units_of_their_own_on_8432() -> None:
    spec = build_spec("default", overrides={"name": "c", "backend": "netns"})
    topo = topology(spec)
    for place, component in ((topo.place("backup"), REPOSITORY_HOST), (topo.place("node1-pgbackrest"), BACKUP_AGENT)):
        assert component.ports(topo, place) == [("pgBackRest TLS server", 8432)]
        assert component.command(Programs("p"), "/x.conf", "/") == ["/usr/bin/pgbackrest", "--config=/x.conf", "server"]
        assert component.unit_name("c", place) == f"pgha-c-{place.name}.service"
    assert topo.place("node1-pgbackrest").address == topo.place("node1").address
