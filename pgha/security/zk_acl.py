"""ZooKeeper's ACLs seen from outside: does a client that is not one of the cluster's nodes get to
write Patroni's znodes?

Patroni creates its znodes with an ACL that lets only the nodes' certificates (x509 identities,
CN=<node>) do anything (`set_acls`, pgha.components.dcs). The probe connects over TLS as pgha
(a certificate of the cluster's CA that is no node's) and asks to overwrite the cluster's znode
at a version it can never have: where the ACL lets it through, ZooKeeper answers BadVersion and
writes nothing; where it does not, NoAuth (ZooKeeper checks the ACL before the version).

kazoo dials from a thread of its own, so its handler enters the member's network namespace for
that one call (pgha.net.dial.entered), as pgha's other probes do.
"""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NoAuthError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.retry import KazooRetry

from pgha.net.dial import Endpoint, entered

TIMEOUT_S = 5.0
NEVER_VERSION = 2**31 - 1  # a znode's version never gets there


class _NamespaceHandler(SequentialThreadingHandler):  # type: ignore[misc]
    def __init__(self, netns: str | None) -> None:
        super().__init__()
        self._netns = netns

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        with entered(self._netns):
            return super().create_connection(*args, **kwargs)


def write_refused(ep: Endpoint, path: str) -> tuple[bool, str]:
    """(refused, evidence) for a write to `path` by a client outside the ACL; never writes.
    Raises OSError when the member does not answer."""
    if ep.tls is None or ep.tls.cert is None:
        raise OSError(f"{ep}: the secure client port needs a client certificate")
    client = KazooClient(hosts=f"{ep.host}:{ep.port}", handler=_NamespaceHandler(ep.netns), timeout=TIMEOUT_S,
                         use_ssl=True, verify_certs=True, ca=ep.tls.ca, certfile=ep.tls.cert, keyfile=ep.tls.key,
                         connection_retry=KazooRetry(max_tries=1), command_retry=KazooRetry(max_tries=1))
    try:
        client.start(timeout=TIMEOUT_S)
    except (KazooException, KazooTimeoutError) as e:  # a timeout is the handler's, not a KazooException
        client.close()
        raise OSError(f"{ep}: no ZooKeeper session over TLS ({e.__class__.__name__})") from None
    try:
        client.set(path, b"", version=NEVER_VERSION)
    except NoAuthError:
        return True, f"{ep} refused a write to {path} from a certificate outside its ACL (NoAuth)"
    except BadVersionError:
        return False, f"{ep} lets anyone write {path} (the probe's impossible version kept it a no-op)"
    except NoNodeError:
        return False, f"{path} does not exist on {ep}: Patroni has not created the cluster yet"
    except KazooException as e:
        raise OSError(f"{ep}: {e.__class__.__name__}") from None
    finally:
        client.stop()
        client.close()
    return False, f"{ep} took a write to {path} at an impossible version"
