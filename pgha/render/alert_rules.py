"""Spec -> Prometheus alert rules for one cluster, each with a runbook line (pure).

The rules read what the cluster's own components export, with the names they export them under:
Patroni's `GET /metrics` (labels scope, name), HAProxy's built-in exporter and etcd's `/metrics`.
The scrape jobs that collect them are named here (JOB_*), so the scrape configuration and the
rules cannot disagree; the scrape configuration labels every target with the cluster's `scope`
(Patroni's own series carry it already). Each rule is scoped to this cluster, and a rule about
something that can vanish (a Patroni that stops answering takes its series with it) also looks at
`up`, so silence is an alert too, not the absence of one.

`promtool check rules` and `promtool test rules` (tests/unit/render/test_alert_rules.py) run every
expression against synthetic series of a healthy and a broken cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgha.model.spec import Spec
from pgha.model.topology import RW_PROXY
from pgha.render import to_yaml

JOB_PATRONI = "patroni"
JOB_HAPROXY = "haproxy"
JOB_DCS = "dcs"
# A replica this far behind the primary's WAL is lagging (Patroni's own default for
# maximum_lag_on_failover is 1 MiB: a replica beyond it may not be promoted).
LAG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    for_s: int
    severity: str  # critical: writes are or will be refused; warning: redundancy is lost
    summary: str  # what is wrong, with {{ $labels }}
    runbook: str  # what to do about it, one line
    about: str = ""  # the label naming what the alert is about (a node's name, ...); "": the cluster


def replica_lag_expr(scope: str) -> str:
    """Bytes each replica replays behind the primary's WAL (one series per replica)."""
    s = f'scope="{scope}"'
    return (f"((scalar(sum(patroni_xlog_location{{{s}}} * on(scope, name) patroni_primary{{{s}}})) "
            f"- patroni_xlog_replayed_location{{{s}}}) and on(scope, name) patroni_replica{{{s}}} == 1)")


def cluster_rules(spec: Spec) -> list[Rule]:
    """The alerts of one cluster, in the order an operator should read them."""
    scope = spec.patroni_scope
    s = f'scope="{scope}"'
    # A majority of the DCS members: fewer answering, and nothing can change the leader key.
    quorum = spec.dcs.members // 2 + 1
    patroni_up = f'up{{job="{JOB_PATRONI}",{s}}}'
    dcs_up = f'up{{job="{JOB_DCS}",{s}}}'
    rules = [
        Rule("PghaNoPrimary", f"(sum(patroni_primary{{{s}}}) or vector(0)) < 1", 5, "critical",
             f"cluster {scope} has no primary: writes are refused",
             "pgha status; if no node can become the primary, read each node's Patroni log "
             "(logs/<node>.log) for why the leader race does not finish"),
        Rule("PghaMoreThanOnePrimary", f"sum(patroni_primary{{{s}}}) > 1", 0, "critical",
             f"cluster {scope} has {{{{ $value }}}} nodes running as primary",
             "split brain: stop writes through anything but the entrypoint, pgha status to see which "
             "node holds the leader key; the other must be demoted (pgha restart on it)"),
        # 8 s: four failed scrapes; the first alert about a frozen primary fires within 15 s (issue 23).
        Rule("PghaNodeUnreachable", f"{patroni_up} == 0", 8, "critical",
             "Patroni on {{ $labels.name }} does not answer its metrics",
             "the node's host or its Patroni is down or hung: pgha status, then its log; a fencing guard "
             "fences a silent primary by itself", about="name"),
        Rule("PghaPostgresNotRunning", f"patroni_postgres_running{{{s}}} == 0", 15, "critical",
             "PostgreSQL on {{ $labels.name }} is not running (Patroni answers)",
             "Patroni restarts it on its own; if it stays down, read logs/postgresql-<node>.log "
             "(disk full, a bad setting, a crash loop)"),
        Rule("PghaReplicaNotStreaming",
             f"patroni_replica{{{s}}} == 1 and on(scope, name) patroni_postgres_streaming{{{s}}} == 0", 15,
             "warning", "replica {{ $labels.name }} is not streaming from the primary",
             "pgha check (line 1-2); the replica's PostgreSQL log says why (a missing WAL segment: "
             "reinitialise it with `pgha ctl reinit`)"),
        Rule("PghaReplicaLagging", f"{replica_lag_expr(scope)} > {LAG_BYTES}", 30, "warning",
             "replica {{ $labels.name }} replays {{ $value | humanize1024 }}B behind the primary",
             "a replica this far behind is not promoted by Patroni; look at its disk and CPU, and at "
             "long queries on it holding replay back"),
        Rule("PghaPendingRestart", f"patroni_pending_restart{{{s}}} == 1", 300, "warning",
             "{{ $labels.name }} has a setting that takes effect only after a restart",
             "pgha restart --rolling (replicas first, then a planned hand-over of the primary)"),
        Rule("PghaNoHaproxyRoute", f'haproxy_backend_active_servers{{proxy="{RW_PROXY}",{s}}} < 1', 5,
             "critical", "HAProxy {{ $labels.haproxy }} routes writes to no server",
             "no node passes HAProxy's primary check: see PghaNoPrimary; if a primary runs, "
             "pgha check line 3 and HAProxy's log"),
        Rule("PghaHaproxyDown", f'up{{job="{JOB_HAPROXY}",{s}}} == 0', 10, "critical",
             "HAProxy {{ $labels.haproxy }} does not answer",
             "clients of this entrypoint cannot connect: pgha up starts it again; the multi-host URI "
             "(pgha connect) reaches the primary meanwhile", about="haproxy"),
        Rule("PghaDcsMemberDown", f"{dcs_up} == 0", 10, "warning",
             "DCS member {{ $labels.member }} does not answer",
             "the cluster keeps working while a majority answers; bring the member back (pgha up)",
             about="member"),
        Rule("PghaDcsNoQuorum", f"(sum({dcs_up}) or vector(0)) < {quorum} "
             f"or max(etcd_server_has_leader{{{s}}}) == 0", 5, "critical",
             "the DCS has lost its quorum",
             "no failover can happen now, and the primary keeps writing only while every node answers it "
             "(failsafe_mode); bring a majority of the members back"),
    ]
    if spec.patroni.synchronous_mode:
        rules.insert(4, Rule(
            "PghaNoSynchronousStandby",
            f"(sum(patroni_sync_standby{{{s}}}) or vector(0)) < 1 and on() sum(patroni_primary{{{s}}}) == 1", 15,
            "warning", f"cluster {scope} has no synchronous standby",
            "commits are acknowledged by the primary alone until a replica streams again "
            "(synchronous_mode without strict): a lost primary now loses them"))
    if spec.dcs.kind != "etcd":
        # Only etcd's metrics are scraped so far (ZooKeeper's need its metrics provider on).
        rules = [r for r in rules if not r.name.startswith("PghaDcs")]
    elif spec.dcs.members > 1:
        rules.insert(-1, Rule(
            "PghaDcsQuorumAtRisk", f"sum({dcs_up}) == {quorum}", 10, "warning",
            "the DCS has no member to spare: one more loss and it has no quorum",
            "bring the missing members back before anything else"))
    return rules


def render_alert_rules(spec: Spec) -> str:
    """The rule file: one group per cluster."""
    group = {
        "name": f"pgha-{spec.patroni_scope}",
        "rules": [{"alert": r.name, "expr": r.expr, **({"for": f"{r.for_s}s"} if r.for_s else {}),
                   "labels": {"severity": r.severity, "scope": spec.patroni_scope},
                   "annotations": {"summary": r.summary, "runbook": r.runbook}}
                  for r in cluster_rules(spec)],
    }
    return to_yaml({"groups": [group]})
