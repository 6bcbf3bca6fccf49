"""`pgha top`'s view from Prometheus's answers (no servers): roles, lag behind the primary, a
silent node still listed, and the sparklines."""

from __future__ import annotations

from pgha.ops.monitoring import Alert
from pgha.ops.top import human_bytes, sparkline, top_view


def _p(metric: str, name: str, value: float) -> tuple[dict[str, str], float]:
    return {"__name__": f"patroni_{metric}", "name": name, "scope": "demo"}, value


def test_roles_lag_and_a_silent_node() -> None:
    up = [({"job": "patroni", "name": "node0"}, 1.0), ({"job": "patroni", "name": "node1"}, 1.0),
          ({"job": "patroni", "name": "node2"}, 0.0), ({"job": "haproxy", "haproxy": "haproxy"}, 1.0),
          ({"job": "dcs", "member": "dcs0"}, 1.0), ({"job": "dcs", "member": "dcs1"}, 0.0)]
    patroni = [_p("primary", "node0", 1), _p("postgres_running", "node0", 1), _p("xlog_location", "node0", 5000),
               _p("postgres_timeline", "node0", 3), _p("primary", "node1", 0), _p("sync_standby", "node1", 1),
               _p("postgres_running", "node1", 1), _p("xlog_replayed_location", "node1", 4000)]
    lag = [({"name": "node1"}, [(1.0, 0.0), (2.0, 1000.0)])]
    alerts = (Alert("PghaNodeUnreachable", "firing", "critical", "Patroni on node2 does not answer its metrics"),)
    view = top_view("demo", 10.0, ("node0", "node1", "node2", "node3"), up, patroni, lag,
                    wal=[({}, [(1.0, 10.0), (2.0, 20.0)])], sessions=[({"haproxy": "haproxy"}, 4.0)],
                    session_history=[], alerts=alerts)
    rows = {m.name: m for m in view.members}
    assert [(m.name, m.role) for m in view.members] == [("node0", "primary"), ("node1", "sync standby"),
                                                        ("node2", "silent"), ("node3", "silent")]
    assert rows["node1"].lag_bytes == 1000.0 and rows["node1"].lag_history == (0.0, 1000.0)
    assert rows["node0"].lag_bytes is None and rows["node0"].timeline == 3
    assert view.primary == "node0" and view.wal_rate == (10.0, 20.0) and view.sessions == {"haproxy": 4.0}
    assert view.dcs == {"dcs0": True, "dcs1": False} and view.haproxies_up == {"haproxy": True}
    assert view.session_history == () and view.alerts == alerts


def test_a_node_whose_postgres_is_down_is_stopped() -> None:
    view = top_view("demo", 0.0, ("node0",), [({"job": "patroni", "name": "node0"}, 1.0)],
                    [_p("postgres_running", "node0", 0)], [], [], [], [], ())
    assert view.members[0].role == "stopped" and view.primary is None


def test_sparklines_scale_to_their_maximum_and_skip_gaps() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0.0, float("nan"), 0.0]) == "▁▁"
    assert sparkline([]) == "" and len(sparkline(list(range(100)), width=30)) == 30
    assert human_bytes(None) == "" and human_bytes(512) == "512 B" and human_bytes(3 * 2**20) == "3.0 MiB"
