"""Engine, sessions and the write transaction that serialises one customer's money.

SQLite and PostgreSQL run the same code. Two engine-specific details live here
and nowhere else:

* SQLite: pysqlite's own transaction handling is switched off so that SQLAlchemy
  emits BEGIN itself; write transactions emit ``BEGIN IMMEDIATE`` so that two
  payments never interleave (the second waits on ``busy_timeout``).
* PostgreSQL: write transactions take a row lock on the customer
  (``SELECT ... FOR UPDATE``, see ``ledger.locks``), and the pool checks a
  connection's liveness only when it has been idle a while (``ALIVE_WITHOUT_PING_SECONDS``).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from flask import current_app, g
from sqlalchemy import ColumnElement, Connection, CursorResult, Engine, Executable, bindparam, create_engine, event
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled connection used this recently is taken to be alive without a round trip to check it
# (HikariCP's aliveBypassWindowMs, whose default this is); one idle for longer is pinged first.
ALIVE_WITHOUT_PING_SECONDS = 0.5
_LAST_USED = "portal.db.last_used"  # a pooled connection's record.info key: when it was last checked in


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the engine is SQLite."""
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine with the SQLite pragmas and transaction fixes applied."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {})
        kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(url, **kwargs)
        _fix_sqlite_transactions(engine)
        return engine
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Check a connection with a round trip when it leaves the pool only if it has been idle a while.

    pool_pre_ping checks every checkout: one round trip more for every request under load, when
    the connection was in use a few milliseconds ago. A dead connection found here is replaced and
    the pool's older ones with it, as pool_pre_ping does; one that died within the window fails its
    request (a 503, see ``portal.errors``) and the pool is renewed the same way.
    """
    dialect = engine.dialect

    @event.listens_for(engine.pool, "connect")
    @event.listens_for(engine.pool, "checkin")
    def used(_dbapi_conn, record):
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def ping_if_idle(dbapi_conn, record, _proxy):
        if time.monotonic() - record.info.get(_LAST_USED, 0.0) < ALIVE_WITHOUT_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_conn, None):
                raise InvalidatePoolError(str(error)) from error  # the pool retries with a new connection
            raise


def _fix_sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """Run a block in one write transaction; commit on success, roll back on error.

    SQLite: a transaction the session already has open is rolled back first (it
    started as a read, a plain ``BEGIN``, and cannot safely become the
    serialised writer: that needs ``BEGIN IMMEDIATE``). PostgreSQL: a read-only
    transaction the session has open (the request's authentication, say) is
    carried on instead, saving a ``ROLLBACK``, a pool checkout with its ping and
    a ``BEGIN``. That is the same as starting anew at READ COMMITTED, where every
    statement sees what was committed before it and the writes take their row
    locks from here on; the loaded objects are expired, as a rollback would.
    """
    if session.in_transaction():
        if _can_carry_on(session):
            session.expire_all()
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            session.commit()
            return
        session.rollback()
    with session.begin():
        session.connection(execution_options={"sqlite_immediate": True})
        yield session


def _can_carry_on(session: Session) -> bool:
    """Tell whether the session's open transaction is a clean PostgreSQL read that a write may continue."""
    if session.new or session.dirty or session.deleted:
        return False  # unflushed changes would be committed with the write: roll them back, as before
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return False
    # psycopg's view of the server: IDLE (nothing sent yet) or INTRANS (reads done, no error).
    return connection.connection.dbapi_connection.info.transaction_status.name in ("IDLE", "INTRANS")


_CORE_CONNECTION = "portal.db.core"  # session.info key: (the transaction, its connection)


def core(session: Session) -> Connection:
    """Return the session's connection for Core statements, its pending ORM changes flushed first.

    The hot paths (a payment, a request's login) run prebuilt Core statements here: the
    ORM's per-statement work costs more than the statement itself. The flush keeps what
    the ORM's autoflush would: a Core read sees every change made before it.
    """
    session.flush()  # nothing to do when nothing is pending
    # The connection is the transaction's for its whole life: asked once per transaction, not
    # once per statement (the session's lookup cost more than some of the statements it served).
    transaction = session.get_transaction()
    held = session.info.get(_CORE_CONNECTION)
    if transaction is None or held is None or held[0] is not transaction:
        connection = session.connection()
        session.info[_CORE_CONNECTION] = held = (session.get_transaction(), connection)
    return held[1]


class OneOrMany:
    """A query prebuilt twice over a key column: an equality for one key (a request's), an IN list for many (a batch's).

    The equality costs 35-45 us of CPU less per execution than a one-item IN list, which
    SQLAlchemy expands at every execution; a request's login or summary reads one key.
    """

    def __init__(self, build: Callable[[ColumnElement[bool]], Executable], column: ColumnElement):
        self.one = build(column == bindparam("key"))
        self.many = build(column.in_(bindparam("keys", expanding=True)))

    def execute(self, session: Session, keys: Sequence) -> CursorResult:
        """Run the query for `keys` (one or more) on the session's connection (``core``)."""
        if len(keys) == 1:
            return core(session).execute(self.one, {"key": keys[0]})
        return core(session).execute(self.many, {"keys": list(keys)})


def get_db() -> Database:
    """Return the app's Database."""
    return current_app.extensions["ledger_db"]


def get_session() -> Session:
    """Return this request's session, opening it on first use."""
    if "db_session" not in g:
        g.db_session = get_db().sessions()
    return g.db_session


def close_session(_exc=None) -> None:
    """Close this request's session (teardown).

    Closing rolls back what is left open (a read); if the database has just
    dropped the connection (a restart) that rollback fails. The request's
    answer is already made by then, so the dead connection is discarded
    instead of turning that answer into a 500.
    """
    session = g.pop("db_session", None)
    if session is not None:
        try:
            session.close()
        except DBAPIError:
            session.invalidate()
