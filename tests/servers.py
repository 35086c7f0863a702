"""Live servers for end-to-end tests: gunicorn on a free loopback port, started and stopped by a fixture."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(app: str, env: dict, workers: int = 2, ready_path: str = "/health",
                   timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start `gunicorn app` on a free port and wait until `ready_path` answers 200; return (process, url)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [GUNICORN, "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--no-control-socket",
         "--graceful-timeout", "5", app],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(url + ready_path, timeout=1).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{app} did not become ready on {url}")


def stop(process: subprocess.Popen) -> None:
    """Stop a server started by start_gunicorn."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
