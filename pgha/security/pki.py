"""The cluster's own certificate authority and the certificates of its hosts.

Every cluster with TLS gets a CA of its own (pgha never trusts a public one for traffic between
its hosts) and, from it, one certificate per host (node, DCS member, HAProxy), good as server and
as client, named by the host's name (DNS SAN: HAProxy's `verifyhost`) and address (IP SAN:
libpq's verify-full, Python's and Go's hostname checks). Two more kinds of client certificate
have an empty subject, because etcd's HTTP gateway refuses any client certificate with a
CommonName once authentication is on: one per node, for Patroni's etcd login, and one for pgha
itself (`pgha`), which it shows to etcd and to Patroni's REST API.

The store (`pki/` in the cluster directory) stays on the machine that runs pgha: the CA's key
never goes into a host's files. Issuing is pure (`plan`, `issue`); `ensure` and `renew` read and
write the store.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgha.errors import PghaError
from pgha.model.topology import Place, Topology
from pgha.net.dial import ClientTls
from pgha.state.files import write_file

CA_DAYS = 3650
# A year: `pgha rotate-certs` renews them without downtime; `pgha status` shows when.
LEAF_DAYS = 365
CONTROLLER = "pgha"  # pgha's own client certificate
# Clock skew between hosts must not make a fresh certificate "not yet valid".
BACKDATE = datetime.timedelta(minutes=5)


class PkiError(PghaError):
    """The certificate store is unusable (unreadable, or not a CA pgha made)."""


def dcs_client_name(node: str) -> str:
    return f"{node}-dcs"


@dataclass(frozen=True)
class Identity:
    """What one certificate says: its subject (None: empty), names and addresses, and whether it
    serves (a host) or only connects (a client)."""

    common_name: str | None
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server: bool = True


@dataclass(frozen=True)
class Issued:
    cert: str  # PEM
    key: str  # PEM, PKCS#8, unencrypted (the services read it unattended)

    @property
    def pem(self) -> str:
        """Certificate and key in one file (HAProxy's `crt`, ZooKeeper's PEM key store)."""
        return self.cert + self.key

    @property
    def x509(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert.encode())

    @property
    def not_after(self) -> datetime.datetime:
        return self.x509.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.x509.serial_number


@dataclass(frozen=True)
class Pki:
    ca: Issued
    leaves: Mapping[str, Issued] = field(default_factory=dict)

    def leaf(self, name: str) -> Issued:
        try:
            return self.leaves[name]
        except KeyError:
            raise PkiError(f"no certificate for {name!r} in the cluster's store; run `pgha rotate-certs`") from None

    @property
    def earliest_expiry(self) -> tuple[str, datetime.datetime]:
        """(name, when) of the leaf certificate that expires first."""
        return min(((n, c.not_after) for n, c in self.leaves.items()), key=lambda item: item[1])


def plan(topo: Topology) -> dict[str, Identity]:
    """Every certificate a cluster needs, by name (pure)."""
    spec = topo.spec
    out: dict[str, Identity] = {}
    for place in topo.places:
        if place.kind != "guard":  # a guard serves nothing: it needs only a client certificate for the DCS
            out[place.name] = host_identity(topo, place)
    # An empty subject needs a name elsewhere: Java (ZooKeeper) refuses a certificate with
    # neither, so each client certificate names itself in its (critical) SAN.
    for name in (*spec.node_names, *(g.name for g in topo.guards), *(m.name for m in topo.monitors)):
        out[dcs_client_name(name)] = Identity(None, dns=(dcs_client_name(name),), server=False)
    out[CONTROLLER] = Identity(None, dns=(CONTROLLER,), server=False)
    return out


def host_identity(topo: Topology, place: Place) -> Identity:
    ips, dns = [place.address], [place.name]
    if place.kind in ("node", "haproxy", "pooler"):
        # Clients on this machine reach the nodes through HAProxy's entrypoint on spec.host (TCP
        # passthrough): verify-full there checks that address against the node's certificate
        # (and the pooler's, whose host-facing port is forwarded the same way).
        ips.append(topo.spec.host)
    if ipaddress.ip_address(place.address).is_loopback:
        # On one machine's loopback a connection to any 127/8 address comes from 127.0.0.1, which
        # ZooKeeper's quorum checks against the connecting member's certificate.
        ips.append("127.0.0.1")
        dns.append("localhost")
    return Identity(place.name, dns=tuple(dns), ips=tuple(dict.fromkeys(ips)))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not ca,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def create_ca(cluster: str, now: datetime.datetime) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgha"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"pgha {cluster} CA")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(_cert_pem(cert), _key_pem(key))


def issue(ca: Issued, who: Identity, now: datetime.datetime, days: int = LEAF_DAYS) -> Issued:
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise PkiError("the cluster's CA key is not an EC key pgha made")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, who.common_name)] if who.common_name else [])
    purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if who.server \
        else [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca.x509.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE)
               .not_valid_after(min(now + datetime.timedelta(days=days), ca.not_after))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(ca=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in who.dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in who.ips]
    if names:
        # RFC 5280: with an empty subject the names are the identity, so the extension is critical.
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=not who.common_name)
    return Issued(_cert_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))


def matches(issued: Issued, who: Identity) -> bool:
    """Does a certificate still say what the plan asks (a changed topology needs new ones)?"""
    cert = issued.x509
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cn != ([who.common_name] if who.common_name else []):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return sorted(dns) == sorted(who.dns) and sorted(ips) == sorted(who.ips)


# --- the store ----------------------------------------------------------------------------------

def _paths(store: Path, name: str) -> tuple[Path, Path]:
    return store / f"{name}.crt", store / f"{name}.key"


def _read(store: Path, name: str) -> Issued | None:
    crt, key = _paths(store, name)
    if not (crt.is_file() and key.is_file()):
        return None
    try:
        issued = Issued(crt.read_text(), key.read_text())
        issued.x509  # noqa: B018 - parse now, so a damaged file is named here
    except (OSError, ValueError, UnicodeDecodeError):
        raise PkiError(f"{crt} is not a certificate pgha can read; move the store {store} away "
                       "to start a new CA (every host then needs its new files)") from None
    return issued


def _write(store: Path, name: str, issued: Issued) -> None:
    crt, key = _paths(store, name)
    write_file(key, issued.key, 0o600)
    write_file(crt, issued.cert, 0o644)


def load(store: Path) -> Pki:
    ca = _read(store, "ca")
    if ca is None:
        raise PkiError(f"no CA in {store}: the cluster was made without TLS")
    leaves = {p.stem: issued for p in sorted(store.glob("*.crt"))
              if p.stem != "ca" and (issued := _read(store, p.stem)) is not None}
    return Pki(ca, leaves)


def ensure(store: Path, topo: Topology, now: datetime.datetime | None = None) -> Pki:
    """The store with a CA and a certificate for everything the plan names, issuing what is
    missing or no longer matches the topology; certificates already right are kept."""
    now = now or datetime.datetime.now(datetime.UTC)
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    store.chmod(0o700)
    ca = _read(store, "ca")
    if ca is None:
        ca = create_ca(topo.spec.name, now)
        _write(store, "ca", ca)
    leaves: dict[str, Issued] = {}
    for name, who in plan(topo).items():
        issued = _read(store, name)
        if issued is None or not matches(issued, who) or not _signed_by(issued, ca):
            issued = issue(ca, who, now)
            _write(store, name, issued)
        leaves[name] = issued
    return Pki(ca, leaves)


def renew(store: Path, topo: Topology, now: datetime.datetime | None = None) -> Pki:
    """Every leaf certificate issued anew by the same CA (which every host already trusts)."""
    now = now or datetime.datetime.now(datetime.UTC)
    pki = load(store)
    leaves = {name: issue(pki.ca, who, now) for name, who in plan(topo).items()}
    for name, issued in leaves.items():
        _write(store, name, issued)
    return Pki(pki.ca, leaves)


def _signed_by(issued: Issued, ca: Issued) -> bool:
    try:
        issued.x509.verify_directly_issued_by(ca.x509)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def controller_tls(store: Path) -> ClientTls:
    """How pgha itself, on the machine holding the store, speaks TLS to the cluster."""
    crt, key = _paths(store, CONTROLLER)
    return ClientTls(str(store / "ca.crt"), str(crt), str(key))
