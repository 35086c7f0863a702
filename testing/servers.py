"""Run gunicorn, or stock `mlflow models serve`, on a free loopback port for tests and benchmarks.

Each starts in a process group of its own, waits until ready, and is stopped or killed by pid.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from deploy.portal_gunicorn import worker_class_for

ROOT = Path(__file__).resolve().parent.parent
# The portal's gunicorn settings, as make run and make cluster use them (this checkout's, whatever `root` serves).
PORTAL_GUNICORN = ROOT / "deploy" / "portal_gunicorn.py"
PORTAL_SECRET_KEY = "test-secret-key-not-for-production"


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class Started:
    """A context manager over ``start()`` and ``cleanup()``: a start that fails cleans up before raising."""

    def start(self):
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc) -> None:
        self.cleanup()


class Gunicorn(Started):
    """`gunicorn <app>` on a loopback port, in a process group of its own; started, killed and restarted by pid.

    The app sees the inherited environment updated with `env` (a value of None
    removes that variable) and, unless `env` names one, a VAR_DIR of its own
    under `workdir`: nothing lands in the repository's var/. gunicorn's log
    goes to `workdir` too; `workdir` defaults to a temporary folder that
    `cleanup` deletes. Ready means `ready_path` answers 200 and every worker runs.
    """

    def __init__(self, app: str, env: dict[str, str | None] | None = None, *, workers: int = 2,
                 threads: int | None = None, ready_path: str = "/health", port: int | None = None,
                 workdir: Path | None = None, timeout: int = 60, root: Path = ROOT, config: Path | None = None):
        self.app = app
        self.root = root  # the checkout whose code gunicorn serves (another revision's worktree, to compare two)
        self.workers = workers
        # Threads per worker (gunicorn's gthread workers, as `make run` serves the portal); None: sync workers.
        # With a `config` file, that file chooses the worker class and `threads` applies if it chose gthread.
        self.threads = threads
        self.config = config
        self.ready_path = ready_path
        self.port = port or free_port()
        self.timeout = timeout
        self.owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="gunicorn-"))
        self.log_path = self.workdir / f"gunicorn-{self.port}.log"
        self.env = {"VAR_DIR": str(self.workdir / "var"), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The master's pid (None before the first start)."""
        return self.proc.pid if self.proc is not None else None

    def start(self, ready_timeout: float = 60.0) -> Gunicorn:
        """Start gunicorn (again, on the same port, after a stop or kill) and wait until it is ready."""
        env = {**os.environ, **self.env}
        env = {name: value for name, value in env.items() if value is not None}
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--workers", str(self.workers),
                 *(["-c", str(self.config)] if self.config else
                   ["--worker-class", "gthread"] if self.threads else []),
                 *(["--threads", str(self.threads)] if self.threads else []),
                 "--bind", f"127.0.0.1:{self.port}", "--timeout", str(self.timeout),
                 "--graceful-timeout", "5", "--backlog", "256", "--no-control-socket", self.app],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        self.starts += 1
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.kill_all()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until `ready_path` answers 200 and the master has all its workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited with {self.proc.returncode}; log: {self.log_tail()}")
            try:
                ok = requests.get(self.url + self.ready_path, timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            if ok and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.app} not ready on {self.url} in {timeout} s; log: {self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """Return the pids of the master's current workers."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in children.split()]

    def kill_workers(self) -> list[int]:
        """SIGKILL every worker (the master starts new ones); return the pids killed."""
        pids = self.worker_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def kill_all(self) -> None:
        """SIGKILL the master and its workers (this gunicorn's own process group)."""
        if self.proc is None:
            return
        workers = self.worker_pids()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        for pid in workers:  # orphaned workers are reaped by init: wait until each is dead
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop gunicorn: SIGTERM, then SIGKILL to the process group after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill_all()

    def cleanup(self) -> None:
        """Stop, and delete the log and VAR_DIR if this object made their folder."""
        self.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of gunicorn's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class MlflowServe(Started):
    """Stock `mlflow models serve -m <model_uri> --env-manager local` on a loopback port (MLflow's scoring server).

    The process sees the inherited environment updated with `env` (MLFLOW_TRACKING_URI
    names the store) and the venv's bin on PATH (MLflow starts `uvicorn` by name); its
    log goes to a temporary file. Ready means `GET /ping` answers 200.
    """

    def __init__(self, model_uri: str, env: dict[str, str] | None = None, *, workers: int = 1,
                 port: int | None = None):
        self.model_uri = model_uri
        self.env = env or {}
        self.workers = workers
        self.port = port or free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="mlflow-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 120.0) -> MlflowServe:
        """Start the server and wait until `/ping` answers 200."""
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, **self.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.proc = subprocess.Popen(
            [str(bin_dir / "mlflow"), "models", "serve", "-m", self.model_uri, "--env-manager", "local",
             "-w", str(self.workers), "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited with {self.proc.returncode}; log: {self.log_tail()}")
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"mlflow models serve not ready on {self.url} in {ready_timeout} s; log: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of the server's log."""
        try:
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        """Stop, and delete the log."""
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def portal_workers(database_url: str, workers: int, threads: int | None) -> str:
    """Say how `portal` serves a ledger at `database_url` ("2 gunicorn gevent workers" on PostgreSQL)."""
    plural = "s" if workers != 1 else ""
    if worker_class_for(database_url) == "gevent":
        return f"{workers} gunicorn gevent worker{plural}"
    return f"{workers} gunicorn worker{plural} x {threads or 1} threads"


def portal(database_url: str, env: dict[str, str | None] | None = None, **options) -> Gunicorn:
    """Return a portal on the ledger at `database_url` under gunicorn, not started yet.

    It has a fixed secret key and no REDIS_URL (login throttling counts in each
    worker's memory); `env` adds to or overrides that, `options` go to Gunicorn.
    Its worker model is `make run`'s (``deploy/portal_gunicorn.py``: gevent on PostgreSQL).
    """
    options.setdefault("ready_path", "/api/openapi.json")
    options.setdefault("config", PORTAL_GUNICORN)
    return Gunicorn("portal:create_app()", {"DATABASE_URL": database_url, "SECRET_KEY": PORTAL_SECRET_KEY,
                                            "REDIS_URL": None, **(env or {})}, **options)
