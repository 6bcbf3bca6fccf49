"""The fencing guard beside each HAProxy: a lost primary fenced, then replaced at once
(pgha/ops/fencing_guard.py, shipped to the host as one file)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pgha.components.base import CertificateReload, Component, Needed, Programs, Site
from pgha.components.dcs import dcs_component, patroni_dcs_section
from pgha.model.topology import Kind, Place, Topology
from pgha.render import RenderedFile
from pgha.render.guard import GUARD_SCRIPT, guard_config_path, guard_script_path, render_guard_config
from pgha.security import dcs_auth
from pgha.security.pki import dcs_client_name
from pgha.state.layout import Layout

GUARD_SOURCE = (Path(__file__).resolve().parent.parent / "ops" / "fencing_guard.py").read_text(encoding="utf-8")


class FencingGuard(Component):
    kind: ClassVar[Kind] = "guard"
    # It runs with the Python of a Patroni venv (Patroni's DCS classes, psutil).
    packages: ClassVar[tuple[str, ...]] = ("python3-venv",)
    keeps_data: ClassVar[bool] = False
    after: ClassVar[Kind | None] = "node"
    # Its etcd client loads its certificate once; restarted, it takes its key back at once (the
    # same name), and the CA it checks the nodes against does not change.
    certificate_reload: ClassVar[CertificateReload] = CertificateReload.RESTART

    def files(self, site: Site) -> list[RenderedFile]:
        spec, lay = site.topo.spec, site.layout
        dcs = patroni_dcs_section(site.topo, site.secrets, lay if site.tls else None, site.name)
        section = dict(next(iter(dcs.values())))
        if spec.dcs.authentication and dcs_component(spec).secured_by_pgha:
            section.update(username=dcs_auth.guard_user(spec.patroni_scope), password=site.secrets.guard_dcs_password)
        fences = {f.node: f.as_config() for f in site.fences}
        missing = [n for n in spec.node_names if n not in fences]
        if missing:
            raise ValueError(f"no fence for {', '.join(missing)}: the backend must say how to fence every node")
        config = render_guard_config(site.topo, lay, site.name, {next(iter(dcs)): section}, fences, site.tls)
        return [RenderedFile(guard_script_path(lay), GUARD_SOURCE, 0o644),
                RenderedFile(self.config_path(lay, site.place), config, 0o600),
                *self._tls_files(site)]

    @staticmethod
    def _tls_files(site: Site) -> list[RenderedFile]:
        """The CA it checks the nodes and the DCS against, and its client certificate for the DCS
        (it serves nothing, so it has no certificate of its own)."""
        if site.pki is None:
            return []
        lay, client = site.layout, dcs_client_name(site.name)
        leaf = site.pki.leaf(client)
        return [RenderedFile(lay.tls_ca, site.pki.ca.cert, 0o644), RenderedFile(lay.tls_cert(client), leaf.cert, 0o644),
                RenderedFile(lay.tls_key(client), leaf.key, 0o600)]

    def config_path(self, layout: Layout, place: Place) -> Path:
        return guard_config_path(layout, place.name)

    def command(self, programs: Programs, config: str, conf_dir: str) -> list[str]:
        python = str(Path(programs.patroni).parent / "python")
        return [python, str(Path(conf_dir) / GUARD_SCRIPT), config]

    def unit_name(self, scope: str, place: Place) -> str:
        return f"pgha-{scope}-{place.name}.service"

    def description(self, scope: str, place: Place) -> str:
        return f"pgha {scope}: fencing guard {place.name}"

    def ports(self, topo: Topology, place: Place) -> list[tuple[str, int]]:
        return []

    def needs(self, programs: Programs) -> Needed:
        python = Path(programs.patroni).parent / "python"
        return {"python of Patroni's venv": (python, "the project's venv (make setup)")}


FENCING_GUARD = FencingGuard()
