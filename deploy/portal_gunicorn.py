"""gunicorn's settings for the portal (``-c deploy/portal_gunicorn.py``): the worker model follows the ledger's engine.

On PostgreSQL each worker is a gevent worker: one thread, a greenlet per
connection. psycopg waits on the server cooperatively under gevent (automatic
since psycopg 3.1.14), so a worker's requests overlap their database waits as
threads would, without contending for the GIL: payments/s over HTTP were 1.08-1.22x
the threaded workers' in four same-hour pairs (docs/benchmarks_ledger.md, tenth round).

On SQLite each worker keeps gthread threads (the command line's ``--threads``):
SQLite's calls block in C, and its busy handler sleeps while another
transaction writes, which under gevent would stop every request of the worker.

Everything else (workers, threads, bind, keep-alive) stays on the command line.
"""
import os


def worker_class_for(database_url: str) -> str:
    """Return the portal's gunicorn worker class for a ledger at `database_url` ("" for the SQLite default)."""
    # Every spelling of a PostgreSQL URL starts so (contracts.settings.sqlalchemy_url).
    return "gevent" if database_url.startswith("postgres") else "gthread"


# gunicorn reads this file before it puts the checkout on sys.path: it imports nothing of the project.
worker_class = worker_class_for(os.environ.get("DATABASE_URL", ""))
