"""Keep one process running, as a machine's service manager would: restart it when it dies.

    python -m deploy.keep --name portal1 --pidfile var/cluster/run/portal1.pid -- gunicorn ...

The child runs in a process group of its own, so that killing it (``kill -9``
of a replica, as the cluster tests do) leaves this keeper to start it again
after ``--delay`` seconds, like systemd's ``Restart=always``. SIGTERM or SIGINT
stop the child (SIGTERM to its group, SIGKILL after ``--grace`` seconds) and
then the keeper. A child that dies more than ``--max-restarts`` times in a
minute is given up on: the keeper exits 1, and honcho then stops the cluster.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Keeper:
    """Start a command, restart it when it exits, stop it on request."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.kill_at = float("inf")

    def log(self, message: str) -> None:
        print(f"[keep {self.args.name}] {message}", file=sys.stderr, flush=True)

    def start(self) -> None:
        for folder in self.args.fresh_dir:  # e.g. PROMETHEUS_MULTIPROC_DIR: emptied before every start
            shutil.rmtree(folder, ignore_errors=True)
            Path(folder).mkdir(parents=True, exist_ok=True)
        self.child = subprocess.Popen(self.args.command, start_new_session=True)
        if self.stopping:  # asked to stop while starting
            _signal_group(self.child.pid, signal.SIGTERM)
        if self.args.pidfile:
            Path(self.args.pidfile).parent.mkdir(parents=True, exist_ok=True)
            Path(self.args.pidfile).write_text(f"{self.child.pid}\n")

    def stop(self, *_signal) -> None:
        """Ask the child's process group to stop (SIGTERM); `wait` sends SIGKILL after the grace period."""
        if not self.stopping:
            self.stopping = True
            self.kill_at = time.monotonic() + self.args.grace
            if self.child is not None:
                _signal_group(self.child.pid, signal.SIGTERM)

    def wait(self) -> int:
        """Wait until the child exits (polling, so that a signal handler never waits inside a wait)."""
        while (code := self.child.poll()) is None:
            if self.stopping and time.monotonic() > self.kill_at:
                self.log(f"still running {self.args.grace} s after SIGTERM: SIGKILL")
                _signal_group(self.child.pid, signal.SIGKILL)
                self.kill_at = float("inf")
            time.sleep(0.05)
        return code

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        restarts: list[float] = []
        self.start()
        while True:
            code = self.wait()
            _signal_group(self.child.pid, signal.SIGKILL)  # workers left behind by a killed master
            if self.stopping:
                return 0
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > self.args.max_restarts:
                self.log(f"exited with {code}, {len(restarts)} times in a minute: giving up")
                return 1
            self.log(f"exited with {code}; starting it again in {self.args.delay} s")
            deadline = time.monotonic() + self.args.delay
            while time.monotonic() < deadline and not self.stopping:
                time.sleep(0.05)
            if self.stopping:
                return 0
            self.start()


def main(argv: list[str] | None = None) -> int:
    """Keep a command running until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m deploy.keep", description=main.__doc__)
    parser.add_argument("--name", default="process")
    parser.add_argument("--pidfile", help="write the child's pid (its process group) here at every start")
    parser.add_argument("--delay", type=float, default=float(os.environ.get("KEEP_RESTART_DELAY", "1")),
                        help="seconds before a restart (default KEEP_RESTART_DELAY or 1)")
    parser.add_argument("--grace", type=float, default=4.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--max-restarts", type=int, default=5, help="restarts allowed in a minute")
    parser.add_argument("--fresh-dir", action="append", default=[], help="empty this folder before every start")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given")
    return Keeper(args).run()


if __name__ == "__main__":
    sys.exit(main())
