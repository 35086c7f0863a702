"""A throwaway cluster on free ports: what the cluster tests and the cluster benchmark start.

``python -m deploy.cluster`` in a VAR_DIR of its own, with databases of its own on
the PostgreSQL server, a Redis of its own (nothing answers on a fresh port, so the
cluster starts one), free loopback ports and fast polling; ``stop`` ends it as
Ctrl-C would and reports any process that outlived it; ``drop_databases`` drops its
two databases.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from deploy.cluster import PORTS
from testing.databases import PG_ADMIN_URL
from testing.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def group_pids(pgid: int) -> list[int]:
    """Return the live processes of a process group (read from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(stat.parent.name))
    return pids


class Cluster:
    """A running `python -m deploy.cluster` and what it reported in cluster.json."""

    def __init__(self, var_dir: Path, customers: int = 1000, poll_seconds: float = 1.0, restart_delay: float = 3.0,
                 workers: int = 2, start_timeout: float = 420):
        self.var_dir = var_dir
        self.start_timeout = start_timeout
        self.prefix = f"cluster_{uuid.uuid4().hex[:8]}"
        self.ports = {name: free_port() for name in PORTS}
        self.env = {
            **os.environ, **{k: str(v) for k, v in self.ports.items()},
            "VAR_DIR": str(var_dir), "CLUSTER_PG_ADMIN_URL": PG_ADMIN_URL,
            "CLUSTER_LEDGER_DB": f"{self.prefix}_ledger", "CLUSTER_MLFLOW_DB": f"{self.prefix}_mlflow",
            # A Redis of its own (nothing answers on this port: the cluster starts one), so that
            # failed-login counters of other runs and other tests never meet these.
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "CUSTOMERS": str(customers), "MODEL_POLL_SECONDS": str(poll_seconds), "CLUSTER_WORKERS": str(workers),
            "KEEP_RESTART_DELAY": str(restart_delay), "CLUSTER_START_TIMEOUT": str(start_timeout),
            "PYTHONUNBUFFERED": "1",
            # Known to the caller: scoring calls to serving must carry it.
            "SERVING_TOKEN": secrets.token_hex(16),
        }
        self.serving_token = self.env["SERVING_TOKEN"]
        self.serving_headers = {"Authorization": f"Bearer {self.serving_token}"}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.env.pop("DATABASE_URL", None)
        self.log_path = var_dir / "cluster.log"
        self.process: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> Cluster:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "deploy.cluster"], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        state = self.var_dir / "cluster" / "cluster.json"
        deadline = time.monotonic() + self.start_timeout + 30
        while not state.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not start (exit {self.process.poll()}):\n{self.log_tail()}")
            time.sleep(0.5)
        self.info = json.loads(state.read_text())
        return self

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def pid(self, name: str) -> int:
        return int(Path(self.info["pidfiles"][name]).read_text())

    def kill(self, name: str) -> int:
        """kill -9 a replica (its gunicorn or MLflow server and all of its processes); return the pid."""
        pid = self.pid(name)
        os.killpg(pid, signal.SIGKILL)
        return pid

    def run(self, *args: str, timeout: float = 300) -> str:
        """Run a project command against the cluster (tracking server, ledger) and return its output."""
        env = {**self.env, "MLFLOW_TRACKING_URI": self.info["mlflow_url"], "DATABASE_URL": self.info["database_url"]}
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def stop(self) -> list[str]:
        """Stop the cluster (SIGTERM, as Ctrl-C); return the processes that outlived it (killed then)."""
        leftovers = []
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                leftovers.append("the launcher")
        run_dir = self.var_dir / "cluster" / "run"
        for pidfile in run_dir.glob("*.pid") if run_dir.exists() else []:
            pgid = int(pidfile.read_text())
            if group_pids(pgid):
                leftovers.append(f"{pidfile.stem} ({group_pids(pgid)})")
                os.killpg(pgid, signal.SIGKILL)
        if self.process is not None and group_pids(self.process.pid):
            leftovers.append(f"launcher group {group_pids(self.process.pid)}")
            os.killpg(self.process.pid, signal.SIGKILL)
        return leftovers

    def drop_databases(self) -> None:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in (self.env["CLUSTER_LEDGER_DB"], self.env["CLUSTER_MLFLOW_DB"]):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
