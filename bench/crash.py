"""Crash test: kill -9 the portal (workers, or all of gunicorn) and restart the database mid-storm.

A storm (``bench.storm``) runs in the background; at set points of its progress
the faults strike:

* ``workers``: SIGKILL every gunicorn worker (the master starts new ones);
* ``gunicorn``: SIGKILL the master and its workers, then start a new gunicorn
  on the same port;
* ``db-fast`` / ``db-immediate`` (PostgreSQL): restart the database server,
  cleanly (``-m fast``, what ``pg_ctlcluster ... restart`` does) or as after a
  crash (``-m immediate``: no shutdown checkpoint, WAL recovery on start).

Clients retry every failed request with the same Idempotency-Key. Afterwards
the storm's audit must hold (sums to the cent, no month beyond its due, every
replay = the first answer), and also: no payment is half-written (each row's
allocations + bank credit == its amount) and every accepted payment exists
exactly once.

The database server restarted is, by default, a **private PostgreSQL cluster**
made for the run (``initdb`` in a temporary folder, its own port), so that
restarting it disturbs nobody else's tests or work on the shared server. With
``--pg-restart shared`` the shared cluster is restarted instead, with
``pg_ctlcluster --skip-systemctl-redirect <version> main restart``. Both need
root (the server runs as the ``postgres`` user) and PostgreSQL's server tools.
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results import machine, write_json  # noqa: E402
from bench.storm import finish, prepare, print_storm  # noqa: E402
from bench.storm_client import StormConfig  # noqa: E402
from testing.databases import PG_ADMIN_URL, throwaway_database  # noqa: E402
from testing.servers import Started, free_port, portal  # noqa: E402

DB_FAULTS = ("db-fast", "db-immediate")


@dataclass
class Fault:
    """One fault, struck when the storm has done `at` (0..1) of its payments."""

    kind: str  # workers | gunicorn | db-fast | db-immediate
    at: float


# --------------------------------------------------------------------------- PostgreSQL servers to restart

def pg_bindir() -> Path | None:
    """Return the newest installed PostgreSQL server's bin folder, if any."""
    base = Path("/usr/lib/postgresql")
    versions = sorted((p for p in base.glob("*/bin") if (p / "pg_ctl").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


def can_restart_postgres() -> bool:
    """Tell whether this process may restart a PostgreSQL server: root, pg_ctlcluster and pg_ctl present."""
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None or pg_bindir() is None:
        return False
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


def _as_postgres(*cmd: str, timeout: float = 120) -> str:
    done = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")
    return done.stdout


class PrivateCluster(Started):
    """A throwaway PostgreSQL server of our own (initdb in a temporary folder), to restart at will."""

    def __init__(self):
        self.bindir = pg_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="crash-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PrivateCluster:
        """Create the cluster and start it on 127.0.0.1 and its own port."""
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        _as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--no-sync", "--no-instructions")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   "-c max_connections=60 -c shared_buffers=64MB")
        _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                     "-o", options, "start")
        self.started = True
        return self

    def restart(self, mode: str = "fast") -> None:
        """Restart the server (`fast`: clean shutdown; `immediate`: as after a crash)."""
        _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                     "-m", mode, "restart")

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self.started:
            try:
                _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                             "-m", "immediate", "stop")
            finally:
                self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    cleanup = stop


def restart_shared_cluster(mode: str = "fast") -> None:
    """Restart the machine's shared cluster with pg_ctlcluster, then wait until it answers."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", "--mode", mode, version, "main", "restart"]
    subprocess.run(cmd, check=True, timeout=120, stdin=subprocess.DEVNULL)
    for _ in range(120):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0:
            return
        time.sleep(0.5)
    raise TimeoutError("the shared PostgreSQL cluster did not come back in 60 s")


# --------------------------------------------------------------------------- the crash run

def run_crash(database_url: str, cfg: StormConfig, faults: list[Fault], workers: int = 3,
              restart_db=None, fault_timeout: float = 300.0, workdir: Path | None = None) -> dict:
    """Run a storm, strike the faults at their points, then audit; return the figures and events.

    `restart_db(mode)` restarts the database server (needed for db-* faults).
    """
    server = portal(database_url, workers=workers, workdir=workdir).start()
    events: list[dict] = []
    try:
        storm = prepare(database_url, cfg, server)
        runner = threading.Thread(target=storm.run, name="storm", daemon=True)
        runner.start()
        for fault in sorted(faults, key=lambda f: f.at):
            deadline = time.monotonic() + fault_timeout
            while storm.progress < fault.at and runner.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not runner.is_alive() or storm.progress < fault.at:
                events.append({"fault": fault.kind, "at": fault.at, "struck": False,
                               "why": "the storm ended first" if not runner.is_alive() else "timed out waiting"})
                continue
            before = storm.out.conn_failures + storm.out.timeouts + storm.out.http_5xx
            started = time.monotonic()
            event = {"fault": fault.kind, "at": fault.at, "struck": True, "progress": round(storm.progress, 3)}
            if fault.kind == "workers":
                event["killed"] = server.kill_workers()
            elif fault.kind == "gunicorn":
                event["killed"] = [server.pid, *server.worker_pids()]
                server.kill_all()
                server.start()
            elif fault.kind in DB_FAULTS:
                if restart_db is None:
                    raise ValueError(f"{fault.kind} needs restart_db")
                restart_db(fault.kind.split("-", 1)[1])
            else:
                raise ValueError(f"unknown fault {fault.kind}")
            event["seconds"] = round(time.monotonic() - started, 3)
            events.append(event)
            # Recovered once every client could finish a payment again (bounded), then the next fault.
            done = storm.out.payments_done
            settle = time.monotonic() + 60
            while storm.out.payments_done < done + cfg.clients and runner.is_alive() and time.monotonic() < settle:
                time.sleep(0.01)
            event["recovery_seconds"] = round(time.monotonic() - started, 3)
            event["client_failures_after"] = storm.out.conn_failures + storm.out.timeouts + storm.out.http_5xx - before
        runner.join(timeout=cfg.time_limit + cfg.retry_deadline + cfg.request_timeout + 60)
        if runner.is_alive():
            storm.stop()
            runner.join(timeout=cfg.retry_deadline + cfg.request_timeout + 10)
        out = storm.out
    finally:
        server.stop()
    with_db_faults = any(e["fault"] in DB_FAULTS and e["struck"] for e in events)
    problems = []
    if out.unresolved:
        problems.append(f"{len(out.unresolved)} payment(s) never answered")
    if out.rejected:
        problems.append(f"{len(out.rejected)} payment(s) answered 4xx: {out.rejected[:3]}")
    if out.http_5xx and not with_db_faults:
        problems.append(f"{out.http_5xx} 5xx answers without a database fault")
    if out.stopped_early:
        problems.append("the storm stopped early")
    problems += out.client_errors
    if not all(e["struck"] for e in events):
        problems.append("not every fault struck: " + str([e for e in events if not e["struck"]]))
    return finish(database_url, storm, server, problems, faults=events, gunicorn_starts=server.starts)


def print_crash(result: dict) -> None:
    """Print a crash run: its faults, then the storm's figures."""
    for e in result["faults"]:
        if e["struck"]:
            print(f"    fault {e['fault']:<13} at {e['progress']:.0%} of the storm, took {e['seconds']} s, "
                  f"payments flowed again after {e['recovery_seconds']} s; "
                  f"{e['client_failures_after']} failed request(s) retried")
        else:
            print(f"    fault {e['fault']:<13} did not strike: {e['why']}")
    print_storm(result)


def main(argv: list[str] | None = None) -> int:
    """Run the crash test on SQLite and PostgreSQL and print the audit."""
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=main.__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--payments", type=int, default=150, help="payments per client")
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pg-restart", choices=["private", "shared", "none"], default="private",
                        help="restart a private throwaway cluster (default), the shared one "
                             "(pg_ctlcluster ... main restart), or no database server")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="server for --pg-restart shared|none")
    args = parser.parse_args(argv)
    cfg = StormConfig(clients=args.clients, payments=args.payments, customers=args.customers)
    app_faults = [Fault("workers", 0.15), Fault("workers", 0.3), Fault("gunicorn", 0.45)]
    results = {}
    print(f"crash test: {cfg.clients} clients x {cfg.payments} payments on {cfg.customers} customers, "
          f"{args.workers} workers")
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for kind in kinds:
        if kind == "sqlite":
            with throwaway_database("sqlite", "bench", migrated=True) as url:
                results["sqlite"] = run_crash(url, cfg, app_faults, workers=args.workers)
            print("  sqlite, kill -9 workers twice, then all of gunicorn:")
            print_crash(results["sqlite"])
            continue
        pg_faults = app_faults + [Fault("db-fast", 0.6), Fault("db-immediate", 0.75)]
        if args.pg_restart != "none" and not can_restart_postgres():
            print("  (not root or no PostgreSQL server tools: no database restarts)")
            args.pg_restart = "none"
        if args.pg_restart == "private":
            with PrivateCluster() as cluster, \
                    throwaway_database("postgres", "bench", migrated=True, admin_url=cluster.admin_url) as url:
                results["postgres"] = run_crash(url, cfg, pg_faults, workers=args.workers, restart_db=cluster.restart)
            where = "a private cluster"
        elif args.pg_restart == "shared":
            with throwaway_database("postgres", "bench", migrated=True, admin_url=args.pg_admin_url) as url:
                results["postgres"] = run_crash(url, cfg, pg_faults, workers=args.workers,
                                                restart_db=restart_shared_cluster)
            where = "the shared cluster (pg_ctlcluster)"
        else:
            with throwaway_database("postgres", "bench", migrated=True, admin_url=args.pg_admin_url) as url:
                results["postgres"] = run_crash(url, cfg, app_faults, workers=args.workers)
            where = "no server restart"
        print(f"  postgresql ({where}): kill -9 workers twice, all of gunicorn, then server restarts:")
        print_crash(results["postgres"])
    path = write_json("crash", {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                "results": results})
    print(f"wrote {path}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
