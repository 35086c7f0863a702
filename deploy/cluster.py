"""Start the deployed topology on this machine: ``make cluster`` (``python -m deploy.cluster``).

    PostgreSQL (the machine's server; databases credit_cluster and credit_cluster_mlflow)
    Redis (the machine's, at REDIS_URL; started here when nothing answers there)
    MLflow tracking server (PostgreSQL backend store, artifacts served from var/cluster/mlartifacts)
    the model workbench service (one; the portals' /manager/workbench pages call it)
    portal1, portal2 (gunicorn)  <- nginx :8000
    serving1, serving2 (gunicorn) <- nginx :8001

Steps: create the two databases if missing; migrate and seed the ledger (as
``make seed`` does, on PostgreSQL); write the replicas' settings to
``var/cluster/cluster.env`` and nginx's configuration from
``deploy/nginx.conf.template``; start every process of ``deploy/Procfile``
with honcho; train a first model through the tracking server if there is no
champion (as ``make model`` does); wait until every part answers, write
``var/cluster/cluster.json`` (addresses and pid files) and print the
addresses. Ctrl-C (or SIGTERM) stops everything.

Every setting comes from the environment, with the defaults in ``Settings``;
the README's Cluster section lists them.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = Path(__file__).resolve().parent
PORTS = {"PORTAL_LB_PORT": 8000, "SERVING_LB_PORT": 8001, "PORTAL1_PORT": 8010, "PORTAL2_PORT": 8011,
         "SERVING1_PORT": 8012, "SERVING2_PORT": 8013, "MLFLOW_PORT": 8020, "WORKBENCH_PORT": 8030}
REPLICAS = ("portal1", "portal2", "serving1", "serving2")
# One of each, like the tracking server: the workbench runs one retrain job at a time, its jobs on its own disk.
SINGLES = ("mlflow", "workbench")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass
class Settings:
    """Where everything runs; each field is read from the environment variable of the same name."""

    var_dir: Path = field(default_factory=lambda: Path(_env("VAR_DIR", str(ROOT / "var"))).resolve())
    pg_admin_url: str = field(default_factory=lambda: _env(
        "CLUSTER_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    ledger_db: str = field(default_factory=lambda: _env("CLUSTER_LEDGER_DB", "credit_cluster"))
    mlflow_db: str = field(default_factory=lambda: _env("CLUSTER_MLFLOW_DB", "credit_cluster_mlflow"))
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ports: dict = field(default_factory=lambda: {k: int(_env(k, str(v))) for k, v in PORTS.items()})
    workers: int = field(default_factory=lambda: int(_env("CLUSTER_WORKERS", "2")))
    # One per portal replica: the two replicas share this machine's cores, one process each, and each
    # process then sees half the payment requests in flight, so its group commit's batches fill (see
    # README, "make cluster"). On machines of their own, a replica takes as many as its machine's cores.
    portal_workers: int = field(default_factory=lambda: int(_env("CLUSTER_PORTAL_WORKERS", "1")))
    customers: int = field(default_factory=lambda: int(_env("CUSTOMERS", "1000")))
    model_poll_seconds: str = field(default_factory=lambda: _env("MODEL_POLL_SECONDS", "10"))
    # How long a portal waits for a decision (the portal's own setting, passed on to the portals).
    serving_timeout: float = field(default_factory=lambda: float(_env("SERVING_TIMEOUT", "2")))
    start_timeout: float = field(default_factory=lambda: float(_env("CLUSTER_START_TIMEOUT", "300")))

    @property
    def cluster_dir(self) -> Path:
        return self.var_dir / "cluster"

    def database_url(self, name: str) -> str:
        return self.pg_admin_url.rsplit("/", 1)[0] + "/" + name

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['MLFLOW_PORT']}"

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}"

    @property
    def decision_try_ms(self) -> int:
        """How long nginx gives one serving replica a decision before asking the other: half the portal's wait.

        A restarted replica's port is bound before its worker has loaded the model; a request sent
        there waits in the backlog. Half the wait leaves the other replica the other half to answer.
        """
        return max(100, int(self.serving_timeout * 1000 / 2))


def log(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


# --------------------------------------------------------------------------- the engines

def nginx_binary() -> str | None:
    """Return the path of Debian's nginx, if installed."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def redis_answers(url: str) -> bool:
    """Tell whether a Redis server answers PING at url."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_databases(settings: Settings) -> None:
    """Create the ledger's and MLflow's databases on the PostgreSQL server if they are missing."""
    admin = create_engine(settings.pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in (settings.ledger_db, settings.mlflow_db):
                if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                    log(f"created database {name}")
    finally:
        admin.dispose()


def drop_databases(settings: Settings) -> None:
    """Drop the cluster's two databases (the tests' teardown; never done by `make cluster`)."""
    admin = create_engine(settings.pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in (settings.ledger_db, settings.mlflow_db):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --------------------------------------------------------------------------- configuration files

def shared_secret(settings: Settings, name: str) -> str:
    """Return a secret every replica shares: the variable `name` if set, else one generated once under var/cluster/.

    SECRET_KEY (the portals' sessions and tokens) and SERVING_TOKEN (portals to serving) are made this way.
    """
    if os.environ.get(name):
        return os.environ[name]
    path = settings.cluster_dir / name.lower()
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def replica_env(settings: Settings) -> dict[str, str]:
    """Return every setting the processes of deploy/Procfile read (written to var/cluster/cluster.env)."""
    d = settings.cluster_dir
    ledger = settings.database_url(settings.ledger_db)
    return {
        # NGINX_BIN, not NGINX: nginx reads $NGINX for sockets inherited in a binary upgrade.
        "PY": sys.executable, "VENV_BIN": str(Path(sys.executable).parent), "NGINX_BIN": nginx_binary() or "nginx",
        "CLUSTER_DIR": str(d), "CLUSTER_WORKERS": str(settings.workers),
        "CLUSTER_PORTAL_WORKERS": str(settings.portal_workers),
        **{k: str(v) for k, v in settings.ports.items()},
        # portals
        "DATABASE_URL": ledger,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": shared_secret(settings, "SECRET_KEY"),
        "SERVING_URL": settings.url("SERVING_LB_PORT"),
        "SERVING_TIMEOUT": str(settings.serving_timeout),
        "WORKBENCH_URL": settings.url("WORKBENCH_PORT"),
        # portals and serving: serving demands it on scoring calls and signs its answers with it
        "SERVING_TOKEN": shared_secret(settings, "SERVING_TOKEN"),
        "TRUSTED_PROXIES": "1",  # nginx: the portals read the client's address from X-Forwarded-For
        # serving (and the portals' model page)
        "MLFLOW_TRACKING_URI": settings.mlflow_uri,
        "MODEL_POLL_SECONDS": settings.model_poll_seconds,
        # the tracking server
        "MLFLOW_BACKEND_STORE_URI": settings.database_url(settings.mlflow_db),
        "MLFLOW_ARTIFACTS_DESTINATION": str(d / "mlartifacts"),
        "MLFLOW_WORKERS": _env("MLFLOW_WORKERS", "1"),
        # MLflow 3's job runner (GenAI scorers, trace archival) is not used here: seven processes fewer.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "REDIS_PORT": str(urlsplit(settings.redis_url).port or 6379),
        "PYTHONUNBUFFERED": "1",
    }


def write_files(settings: Settings, env: dict[str, str]) -> Path:
    """Write cluster.env and nginx.conf under var/cluster/; return the env file."""
    d = settings.cluster_dir
    for sub in ("run", "logs", "nginx/tmp", "mlartifacts", "workbench", *REPLICAS):
        (d / sub).mkdir(parents=True, exist_ok=True)
    env_file = d / "cluster.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)  # holds SECRET_KEY and SERVING_TOKEN
    conf = (DEPLOY / "nginx.conf.template").read_text().replace("@CLUSTER_DIR@", str(d))
    conf = conf.replace("@DECISION_TRY_TIMEOUT@", f"{settings.decision_try_ms}ms")
    for name, port in settings.ports.items():
        conf = conf.replace(f"@{name}@", str(port))
    (d / "nginx" / "nginx.conf").write_text(conf)
    return env_file


# --------------------------------------------------------------------------- steps

def run_step(what: str, command: list[str], env: dict[str, str]) -> None:
    """Run one setup command with the cluster's settings; stop with its output if it fails."""
    log(what)
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout[-4000:]}")
    tail = [line for line in done.stdout.strip().splitlines() if line.strip()][-3:]
    for line in tail:
        print(f"    {line}", flush=True)


def seed_ledger(settings: Settings, env: dict[str, str]) -> None:
    """Migrate the ledger on PostgreSQL and, if it is empty, load the demo export, as `make data` does."""
    flask = [str(Path(sys.executable).with_name("flask")), "--app", "portal"]
    run_step("ledger: migrate", [*flask, "migrate"], env)
    if subprocess.run([*flask, "wants-demo"], env=env, capture_output=True).returncode == 0:
        export = settings.cluster_dir / "data"
        run_step(f"demo data: simulate {settings.customers} customers",
                 [sys.executable, "-m", "pipeline.simulate", "--customers", str(settings.customers),
                  "--out", str(export)], env)
        run_step("ledger: import the demo export and its logins",
                 [*flask, "import-data", str(export), "--demo", "--if-empty"], env)


def train_first_model(env: dict[str, str]) -> None:
    """Train and promote a first model through the tracking server when there is no champion."""
    run_step("model: train through the tracking server if there is no champion",
             [sys.executable, "-m", "pipeline.run", "--if-no-champion"], env)


def wait_for(name: str, url: str, deadline: float, honcho: subprocess.Popen, expect=lambda r: True) -> None:
    """Wait until url answers 200 (and `expect` holds); fail when honcho exited or the deadline passed."""
    while True:
        if honcho.poll() is not None:
            raise RuntimeError(f"the cluster stopped (honcho exited with {honcho.returncode}) before {name} answered")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200 and expect(response):
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not answer at {url}")
        time.sleep(0.25)


def describe(settings: Settings, env_file: Path, processes: list[str]) -> dict:
    """Return what a client of the cluster (a test, a benchmark, a person) needs to know."""
    d = settings.cluster_dir
    return {
        "portal_url": settings.url("PORTAL_LB_PORT"), "serving_url": settings.url("SERVING_LB_PORT"),
        "portals": [settings.url("PORTAL1_PORT"), settings.url("PORTAL2_PORT")],
        "servings": [settings.url("SERVING1_PORT"), settings.url("SERVING2_PORT")],
        "mlflow_url": settings.mlflow_uri,
        "database_url": settings.database_url(settings.ledger_db),
        "mlflow_backend_store_uri": settings.database_url(settings.mlflow_db),
        "redis_url": settings.redis_url, "env_file": str(env_file), "processes": processes,
        "workbench_url": settings.url("WORKBENCH_PORT"),
        "pidfiles": {name: str(d / "run" / f"{name}.pid") for name in (*SINGLES, *REPLICAS)},
        "launcher_pid": os.getpid(), "settings": {k: str(v) for k, v in asdict(settings).items()},
    }


def banner(info: dict) -> str:
    return "\n".join([
        "",
        f"  Portal (nginx -> 2 replicas):   {info['portal_url']}/   (API: /api/..., logins: manager 1 / "
        "manager123, customer 101 / customer123)",
        f"  Serving (nginx -> 2 replicas):  {info['serving_url']}/version",
        f"  Replicas: portals {', '.join(info['portals'])}; serving {', '.join(info['servings'])}",
        f"  MLflow tracking server:         {info['mlflow_url']}/",
        f"  Model workbench:                {info['portal_url']}/manager/workbench   (its service: "
        f"{info['workbench_url']})",
        f"  Ledger: {info['database_url']}   Redis: {info['redis_url']}",
        "  Ctrl-C stops everything.",
        "",
    ])


def start(settings: Settings) -> int:
    """Start the cluster and wait until it is stopped; return honcho's exit code."""
    nginx = nginx_binary()
    if nginx is None:
        log("nginx is not installed: run `make cluster-deps` (Debian's nginx package)")
        return 2
    settings.cluster_dir.mkdir(parents=True, exist_ok=True)
    (settings.cluster_dir / "cluster.json").unlink(missing_ok=True)
    processes = [*SINGLES, *REPLICAS, "nginx"]
    if not redis_answers(settings.redis_url):
        host = urlsplit(settings.redis_url).hostname
        if host not in ("127.0.0.1", "localhost") or shutil.which("redis-server") is None:
            log(f"Redis does not answer at {settings.redis_url} and cannot be started here")
            return 2
        log(f"Redis does not answer at {settings.redis_url}: starting one with the cluster")
        processes.append("redis")
    try:
        ensure_databases(settings)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy's OperationalError and friends
        log(f"PostgreSQL does not answer at {settings.pg_admin_url} ({type(exc).__name__}); start it "
            "(pg_ctlcluster <version> main start) or set CLUSTER_PG_ADMIN_URL")
        return 2
    env = replica_env(settings)
    env_file = write_files(settings, env)
    seed_ledger(settings, env)

    log("starting " + ", ".join(processes) + " with honcho")
    honcho = subprocess.Popen(
        [str(Path(sys.executable).with_name("honcho")), "--env", str(env_file), "--procfile",
         str(DEPLOY / "Procfile"), "--app-root", str(ROOT), "start", "--no-colour",
         *processes],
        cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL)

    def stop(*_signal):
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        deadline = time.monotonic() + settings.start_timeout
        wait_for("the MLflow tracking server", settings.mlflow_uri + "/health", deadline, honcho)
        train_first_model(env)
        for name in ("PORTAL1_PORT", "PORTAL2_PORT", "PORTAL_LB_PORT"):
            wait_for(name, settings.url(name) + "/api/openapi.json", deadline, honcho)
        for name in ("SERVING1_PORT", "SERVING2_PORT", "SERVING_LB_PORT"):
            wait_for(name, settings.url(name) + "/ready", deadline, honcho)
        wait_for("the workbench", settings.url("WORKBENCH_PORT") + "/health", deadline, honcho)
        info = describe(settings, env_file, processes)
        path = settings.cluster_dir / "cluster.json"
        path.write_text(json.dumps(info, indent=2) + "\n")
        print(banner(info), flush=True)
        return honcho.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches honcho too in a terminal; a SIGINT to this process alone does not
        stop()
        return honcho.wait()
    except Exception as exc:  # noqa: BLE001 - any failure to start stops what was started
        log(f"could not start: {exc}")
        stop()
        honcho.wait()
        return 1
    finally:
        (settings.cluster_dir / "cluster.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Start the cluster (Ctrl-C stops it), or print its settings."""
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--print-env", action="store_true", help="print the replicas' settings and exit")
    parser.add_argument("--drop-databases", action="store_true",
                        help="drop the cluster's two PostgreSQL databases and exit (the cluster must be stopped)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.print_env:
        settings.cluster_dir.mkdir(parents=True, exist_ok=True)
        for key, value in replica_env(settings).items():
            print(f"{key}={'<secret>' if key in ('SECRET_KEY', 'SERVING_TOKEN') else value}")
        return 0
    if args.drop_databases:
        drop_databases(settings)
        log(f"dropped {settings.ledger_db} and {settings.mlflow_db}")
        return 0
    return start(settings)


if __name__ == "__main__":
    sys.exit(main())
