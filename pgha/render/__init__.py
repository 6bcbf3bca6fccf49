"""Spec -> every file a cluster needs, as data (path, text, mode); writing them is the caller's job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pgha.layout import Layout
from pgha.render.dcs import render_etcd, render_zookeeper, zookeeper_myid
from pgha.render.haproxy import render_haproxy
from pgha.render.patroni import render_patroni
from pgha.secrets import Secrets
from pgha.spec import Spec
from pgha.topology import Topology, topology

ZOOKEEPER_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
"""


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    text: str
    mode: int  # 0o600 for anything holding a password


def to_yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def patroni_file(topo: Topology, layout: Layout, secrets: Secrets, node: str) -> RenderedFile:
    return RenderedFile(layout.patroni_config(node), to_yaml(render_patroni(topo, layout, secrets, node)), 0o600)


def haproxy_file(topo: Topology, layout: Layout, secrets: Secrets, k: int = 0) -> RenderedFile:
    return RenderedFile(layout.haproxy_config, render_haproxy(topo, layout, secrets, k), 0o600)


def dcs_files(topo: Topology, layout: Layout, i: int) -> list[RenderedFile]:
    if topo.spec.dcs.kind == "etcd":
        return [RenderedFile(layout.dcs_config(i), to_yaml(render_etcd(topo, layout, i)), 0o644)]
    return [
        RenderedFile(layout.dcs_config(i), render_zookeeper(topo, layout, i), 0o644),
        RenderedFile(layout.dcs_data(i) / "myid", zookeeper_myid(i), 0o644),
        RenderedFile(layout.conf / "zookeeper-log4j.properties", ZOOKEEPER_LOG4J, 0o644),
    ]


def render_all(spec: Spec, layout: Layout, secrets: Secrets) -> list[RenderedFile]:
    """Every file of a cluster whose components share one host and one directory (local)."""
    topo = topology(spec)
    files = [patroni_file(topo, layout, secrets, node) for node in spec.node_names]
    files.append(haproxy_file(topo, layout, secrets))
    for i in range(spec.dcs.members):
        files += [f for f in dcs_files(topo, layout, i) if f not in files]
    return files
