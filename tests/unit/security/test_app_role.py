"""The application role (pgha.security.app_role.ensure_app_role) against a fake connection
that records the SQL it is sent and keeps the roles and databases it creates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
from psycopg import pq, sql

from pgha.security.app_role import ensure_app_role
from pgha.state.secrets import APP_DATABASE, APP_USER

PASSWORD = "s3cr'et\\ pw; DROP ROLE postgres --"


class _Cursor:
    def __init__(self, row: tuple[object, ...] | None) -> None:
        self.row = row

    def fetchone(self) -> tuple[object, ...] | None:
        return self.row


class _Conn:
    """A superuser's autocommit connection, as far as ensure_app_role uses one."""

    def __init__(self, pgconn: pq.abc.PGconn, roles: set[str] | None = None,
                 databases: set[str] | None = None) -> None:
        self.pgconn = pgconn
        self.roles = set(roles or ())
        self.databases = set(databases or ())
        self.sent: list[tuple[str, tuple[object, ...] | None]] = []

    def execute(self, query: str | sql.Composable, params: tuple[object, ...] | None = None) -> _Cursor:
        text = query if isinstance(query, str) else query.as_string(None)
        self.sent.append((text, params))
        if text == "SELECT 1 FROM pg_roles WHERE rolname = %s":
            assert params is not None
            return _Cursor((1,) if params[0] in self.roles else None)
        if text == "SELECT 1 FROM pg_database WHERE datname = %s":
            assert params is not None
            return _Cursor((1,) if params[0] in self.databases else None)
        if m := re.match(r'CREATE ROLE "([^"]+)" ', text):
            assert m[1] not in self.roles, "the role exists already"
            self.roles.add(m[1])
        elif m := re.fullmatch(r'CREATE DATABASE "([^"]+)" OWNER "([^"]+)"', text):
            assert m[1] not in self.databases and m[2] in self.roles
            self.databases.add(m[1])
        return _Cursor(None)

    @property
    def statements(self) -> list[str]:
        return [text for text, _ in self.sent]


@pytest.fixture
def pgconn() -> Iterator[pq.abc.PGconn]:
    """libpq's own connection object (never connected): its encrypt_password is the real one."""
    conn = pq.PGconn.connect_start(b"host=/nonexistent-pgha-test port=1")
    yield conn
    conn.finish()


def _ensure(conn: _Conn, password: str = PASSWORD) -> bool:
    return ensure_app_role(cast("psycopg.Connection[Any]", conn), password)


def _scram_verifies(verifier: str, password: str) -> bool:
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier)
    assert m is not None, verifier
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(m[2]), int(m[1]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == m[3]


def test_a_fresh_server_gets_the_role_its_database_and_the_revoke(pgconn: pq.abc.PGconn) -> None:
    conn = _Conn(pgconn, roles={"postgres"}, databases={"postgres", "template1"})
    assert _ensure(conn) is True
    assert conn.sent[0] == ("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,))
    assert conn.sent[2] == ("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,))
    assert conn.statements[3] == f'CREATE DATABASE "{APP_DATABASE}" OWNER "{APP_USER}"'
    assert conn.sent[4] == ("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC", None)
    assert len(conn.sent) == 5
    assert conn.roles == {"postgres", APP_USER} and conn.databases == {"postgres", "template1", APP_DATABASE}


def test_the_role_may_log_in_and_nothing_more(pgconn: pq.abc.PGconn) -> None:
    conn = _Conn(pgconn)
    _ensure(conn)
    create = conn.statements[1]
    assert create.startswith(f'CREATE ROLE "{APP_USER}" LOGIN ')
    words = set(create.split())
    assert {"LOGIN", "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS"} <= words
    assert not words & {"SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS", "ADMIN"}
    assert " IN ROLE " not in create and " IN GROUP " not in create  # a member of no other role


def test_the_password_reaches_the_server_only_as_a_scram_verifier(pgconn: pq.abc.PGconn) -> None:
    conn = _Conn(pgconn)
    _ensure(conn)
    create = conn.statements[1]
    m = re.fullmatch(r'CREATE ROLE "app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
                     r"PASSWORD +'(SCRAM-SHA-256\$[^']+)'", create)
    assert m is not None, create
    assert _scram_verifies(m[1], PASSWORD)
    assert not _scram_verifies(m[1], PASSWORD + "x")
    # Neither the password nor any telling piece of it is in what is sent.
    for text, params in conn.sent:
        assert "s3cr" not in text and "DROP ROLE" not in text
        assert PASSWORD not in (params or ())


def test_a_verifier_is_quoted_as_a_literal_whatever_it_holds() -> None:
    class _OddPgconn:
        def encrypt_password(self, passwd: bytes, user: bytes, algorithm: bytes | None = None) -> bytes:
            assert (passwd, user, algorithm) == (PASSWORD.encode(), APP_USER.encode(), b"scram-sha-256")
            return b"it's\\odd"

    conn = _Conn(cast(pq.abc.PGconn, _OddPgconn()))
    _ensure(conn)
    assert conn.statements[1].endswith(r"PASSWORD  E'it''s\\odd'")


def test_a_second_run_creates_nothing(pgconn: pq.abc.PGconn) -> None:
    conn = _Conn(pgconn)
    assert _ensure(conn) is True
    first = list(conn.sent)
    assert _ensure(conn) is False
    again = conn.sent[len(first):]
    assert again == [("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)),
                     ("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)),
                     ("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC", None)]
    assert not any(s.startswith("CREATE") for s, _ in again)


def test_an_existing_role_is_left_alone_and_gets_its_database() -> None:
    class _RefusingPgconn:
        def encrypt_password(self, passwd: bytes, user: bytes, algorithm: bytes | None = None) -> bytes:
            raise AssertionError("no password is hashed for a role that exists")

    conn = _Conn(cast(pq.abc.PGconn, _RefusingPgconn()), roles={APP_USER})
    assert _ensure(conn) is True
    assert [s for s in conn.statements if s.startswith(("CREATE", "ALTER"))] == [
        f'CREATE DATABASE "{APP_DATABASE}" OWNER "{APP_USER}"']


def test_an_existing_database_is_left_alone(pgconn: pq.abc.PGconn) -> None:
    conn = _Conn(pgconn, databases={APP_DATABASE})
    assert _ensure(conn) is True
    assert [s.split(" PASSWORD ")[0] for s in conn.statements if s.startswith(("CREATE", "ALTER"))] == [
        'CREATE ROLE "app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS']
