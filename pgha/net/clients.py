"""How clients connect to one cluster: who logs in (the superuser, the application role), the
connection strings through each entrypoint and to each node, the libpq multi-host URI, and the
lines of the client pgpass file. Reads the cluster's passwords; opens nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgha.errors import PghaError
from pgha.model.spec import Spec
from pgha.model.topology import multihost_hosts
from pgha.net.dial import PgTarget
from pgha.net.reach import Reach
from pgha.state.secrets import APP_DATABASE, APP_USER, SUPERUSER, Secrets


class NoSuchEntrypoint(PghaError):
    """A client path this cluster does not have (a read-only port, a pooler)."""


@dataclass(frozen=True)
class Login:
    """Who connects, to which database: the superuser for administration, the application role
    for clients and drills."""

    user: str
    dbname: str
    password: str


@dataclass(frozen=True)
class Clients:
    spec: Spec
    secrets: Secrets
    reach: Reach
    # The cluster's CA certificate, which clients check the servers against (TLS only).
    ca_file: Path

    @property
    def admin(self) -> Login:
        return Login(SUPERUSER, "postgres", self.secrets.superuser_password)

    @property
    def app(self) -> Login:
        return Login(APP_USER, APP_DATABASE, self.secrets.app_password)

    @property
    def tls_parameters(self) -> dict[str, str]:
        """What a client adds to check the server is the cluster's (nothing without TLS)."""
        if not self.spec.tls:
            return {}
        return {"sslmode": "verify-full", "sslrootcert": str(self.ca_file)}

    def dsn(self, port: int, dbname: str | None = None, host: str | None = None, login: Login | None = None,
            **extra: str) -> str:
        """A connection string; the superuser's unless `login` says otherwise."""
        who = login or self.admin
        return make_conninfo(host=host or self.spec.host, port=port, dbname=dbname or who.dbname, user=who.user,
                             password=who.password, **{**self.tls_parameters, **extra})

    def entrypoint_dsn(self, readonly: bool = False, login: Login | None = None, **extra: str) -> str:
        port = self.spec.ports.entrypoint_ro if readonly else self.spec.ports.entrypoint_rw
        if port is None:
            raise NoSuchEntrypoint(f"cluster {self.spec.name!r} has no read-only entrypoint (profile "
                                   f"{self.spec.profile})")
        return self.dsn(port, login=login, **extra)

    def pooler_dsn(self, login: Login | None = None, k: int = 0, **extra: str) -> str:
        """Through the pooler beside HAProxy host k (the application's role unless `login` says
        otherwise: the pooler admits no other)."""
        if not self.spec.ports.pooler:
            raise NoSuchEntrypoint(f"cluster {self.spec.name!r} runs without a pooler (pooler.enabled is off)")
        return self.dsn(self.spec.ports.pooler[k], login=login or self.app, **extra)

    def entrypoint(self, readonly: bool = False, login: Login | None = None, **extra: str) -> PgTarget:
        return PgTarget(self.entrypoint_dsn(readonly, login, **extra))

    def node_target(self, node: str, dbname: str | None = None, login: Login | None = None,
                    **extra: str) -> PgTarget:
        ep = self.reach.postgres(node)
        return PgTarget(self.dsn(ep.port, dbname=dbname, host=ep.host, login=login, **extra), ep.netns)

    @property
    def rw_entrypoint_ports(self) -> list[int]:
        """Every HAProxy host's read-write entrypoint on spec.host."""
        return [self.spec.ports.entrypoint_rw, *self.spec.ports.entrypoint_rw_more]

    def multihost_hosts(self, readonly: bool = False) -> list[tuple[str, int]]:
        """What a multi-host URI lists (the backend's registry entry knows: the nodes where
        clients reach them directly, otherwise every HAProxy host's entrypoint)."""
        return multihost_hosts(self.spec, readonly)

    def multihost_uri(self, with_password: bool = False, readonly: bool = False, login: Login | None = None) -> str:
        """A libpq multi-host URI: to the primary, or for reads to a standby while there is one
        (prefer-standby: reads go on on the primary when no replica is left)."""
        who = login or self.admin
        hosts = ",".join(f"{h}:{p}" for h, p in self.multihost_hosts(readonly))
        cred = who.user + (f":{who.password}" if with_password else "")
        attrs = "prefer-standby" if readonly else "read-write"
        tls = "".join(f"&{k}={v}" for k, v in self.tls_parameters.items())
        return f"postgresql://{cred}@{hosts}/{who.dbname}?target_session_attrs={attrs}&connect_timeout=2{tls}"

    def pgpass_lines(self) -> list[str]:
        """host:port:*:user:password for every way in: both logins everywhere, the application's
        role alone on the poolers (they admit no other)."""
        spec = self.spec
        addresses = [(spec.host, spec.ports.entrypoint_rw), *self.multihost_hosts()]
        addresses += [(self.reach.postgres(n).host, self.reach.postgres(n).port) for n in spec.node_names]
        if spec.ports.entrypoint_ro is not None:
            addresses.append((spec.host, spec.ports.entrypoint_ro))
        lines = [f"{h}:{p}:*:{login.user}:{login.password}" for login in (self.app, self.admin)
                 for h, p in dict.fromkeys(addresses)]
        return lines + [f"{spec.host}:{p}:*:{self.app.user}:{self.app.password}" for p in spec.ports.pooler]
