"""The application role: the login clients and drills use instead of the superuser.

It may log in, owns its own database and nothing else: no superuser, no CREATEDB, CREATEROLE,
REPLICATION or BYPASSRLS, and no CONNECT to the administrative `postgres` database.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from pgha.state.secrets import APP_DATABASE, APP_USER


def ensure_app_role(conn: psycopg.Connection[Any], password: str) -> bool:
    """Create the role and its database unless they exist (a superuser's autocommit connection);
    True if anything was created."""
    created = False
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone() is None:
        # Hashed here (SCRAM, as libpq's PQencryptPasswordConn does): the cleartext password never
        # reaches the server, so it cannot end up in a log or in pg_stat_activity.
        verifier = conn.pgconn.encrypt_password(password.encode(), APP_USER.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                             "PASSWORD {}").format(sql.Identifier(APP_USER), sql.Literal(verifier)))
        created = True
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(APP_DATABASE),
                                                                   sql.Identifier(APP_USER)))
        created = True
    # Every role may connect to `postgres` by default; the superuser and Patroni's roles keep it.
    conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
    return created
