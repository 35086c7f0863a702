"""Retrain jobs: ``python -m pipeline.run`` in the background, one at a time, kept on disk under ``VAR_DIR/jobs/``.

Each job is a folder ``VAR_DIR/jobs/<id>/``: ``job.json`` (who asked, when, the
command, the runner's pid), ``log.txt`` (everything the pipeline printed),
``exit.json`` (its return code, written by ``pipeline.job_runner`` when
the command ends), ``result.json`` (the pipeline's outcome: the new version and
the gate's verdict) and ``cancel.json`` (who cancelled, when). A job's state is
read from those files and from whether its runner still lives, never kept in
memory, so it survives a page reload and a restart of the workbench service:

* ``running``: no ``exit.json`` yet and the runner is alive;
* ``succeeded``: the pipeline exited 0 (a new version, or nothing new to register);
* ``failed``: it exited otherwise (the end of its log says why), or its runner
  died without writing down how the command ended;
* ``cancelled``: someone cancelled it (SIGTERM to its process group, SIGKILL
  after ``KILL_AFTER`` seconds).

Stage progress comes from the pipeline's own progress lines (``[2/5] train...``).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.job_runner import EXIT_FILE, JOB_FILE, LOG_FILE, write_json
from pipeline.run import STAGES

RESULT_FILE, CANCEL_FILE = "result.json", "cancel.json"
KILL_AFTER = 10.0
LOG_TAIL_CHARS = 20_000
ERROR_LINES = 12
ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"^\[(\d+)/\d+\] (\w+)")
DONE = re.compile(r"^ {6}(\w+)\s+(.*) \((\d+(?:\.\d+)?) s\)$")
JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


class JobError(RuntimeError):
    """A job cannot be started or cancelled now; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int, field: str | None = None):
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None, folder: Path) -> bool:
    """Tell whether the job's runner still runs (a reused pid running something else does not count)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return stat not in ("Z", "X") and str(folder).encode() in cmdline


def _group_alive(pgid: int | None) -> bool:
    """Tell whether any process of the job's process group is left (the pipeline may outlive its runner)."""
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stages(log: str) -> list[dict]:
    """Return each pipeline stage as done, running or waiting, with the detail its progress line gave."""
    started, done = set(), {}
    for line in log.splitlines():
        if m := STARTED.match(line):
            started.add(m.group(2))
        elif (m := DONE.match(line)) and m.group(1) in STAGES:
            done[m.group(1)] = f"{m.group(2)} ({m.group(3)} s)"
    return [{"name": s, "state": "done" if s in done else "running" if s in started else "waiting",
             "detail": done.get(s, "")} for s in STAGES]


def _error(log: str, code: int | None) -> str:
    """Return why a job failed: the end of its log and how its process ended."""
    tail = [line for line in log.splitlines() if line.strip()][-ERROR_LINES:]
    ended = ("its process ended without recording how (killed, or the machine restarted)" if code is None
             else f"killed by signal {-code}" if code < 0 else f"exit code {code}")
    return "\n".join([*tail, f"({ended})"])


@dataclass
class JobStore:
    """The jobs under one folder; at most one runs at a time."""

    root: Path
    train_args: tuple[str, ...] = ()

    def __post_init__(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen] = {}  # runners this process started, reaped when they end

    def folder(self, job_id: str) -> Path:
        """Return a job's folder; an id that is not one of ours is a 404."""
        if not JOB_ID.match(job_id or "") or not (self.root / job_id / JOB_FILE).exists():
            raise JobError(f"no job {job_id}", 404, "job")
        return self.root / job_id

    def _reap(self) -> None:
        for job_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[job_id]

    def get(self, job_id: str, log_chars: int = LOG_TAIL_CHARS) -> dict:
        """Return a job: its state, stages, the end of its log, its outcome or its error."""
        self._reap()
        folder = self.folder(job_id)
        job = _read(folder / JOB_FILE) or {}
        try:
            log = (folder / LOG_FILE).read_text(errors="replace")
        except OSError:
            log = ""
        ended, result, cancel = _read(folder / EXIT_FILE), _read(folder / RESULT_FILE), _read(folder / CANCEL_FILE)
        # A runner this process started answers for itself: just after its start the kernel may not show its
        # command line in /proc yet (it is set up after the exec that let Popen return), and _alive would say no.
        child = self._children.get(job_id)
        running = ended is None and (child.poll() is None if child is not None else _alive(job.get("pid"), folder))
        # A cancelled job is still stopping while the pipeline its runner started has not exited.
        stopping = bool(cancel) and not running and _group_alive(job.get("pid"))
        code = ended["returncode"] if ended else None
        if running or stopping:
            state = "running"
        elif cancel:
            state = "cancelled"
        elif code == 0:
            state = "succeeded"
        else:
            state = "failed"
        return {"id": job_id, "state": state, "who": job.get("who"), "created": job.get("created"),
                "finished": ended["finished"] if ended else None, "options": job.get("options", {}),
                "returncode": code, "cancelled": cancel, "stages": stages(log),
                "result": result if state == "succeeded" else None,
                "error": _error(log, code) if state == "failed" else None,
                "log": log[-log_chars:], "log_truncated": len(log) > log_chars}

    def list(self, limit: int = 20) -> list[dict]:
        """Return the newest jobs first (their state and outcome, without the log)."""
        ids = sorted((p.name for p in self.root.iterdir() if JOB_ID.match(p.name) and (p / JOB_FILE).exists()),
                     reverse=True)[:limit]
        return [{k: v for k, v in self.get(i, log_chars=0).items() if k not in ("log", "log_truncated")} for i in ids]

    def running(self) -> str | None:
        """Return the id of the job that runs now, or None."""
        for job in self.list(limit=50):
            if job["state"] == "running":
                return job["id"]
        return None

    def command(self, folder: Path, options: dict, who: str) -> list[str]:
        """Return the pipeline's command line for a job: the service's arguments, then the job's options."""
        command = [sys.executable, "-m", "pipeline.run", *self.train_args,
                   "--run-name", f"workbench job {folder.name}", "--who", who,
                   "--result-file", str(folder / RESULT_FILE)]
        if options.get("seed") is not None:
            command += ["--seed", str(int(options["seed"]))]
        if not options.get("promote", True):
            command.append("--no-promote")
        return command

    def start(self, *, who: str, seed: int | None = None, promote: bool = True) -> dict:
        """Start a retrain job unless one runs (409); return it."""
        with self._lock, open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one at a time across threads and processes
            busy = self.running()
            if busy is not None:
                raise JobError(f"job {busy} is still running: wait for it or cancel it", 409, "job")
            job_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
            folder = self.root / job_id
            folder.mkdir()
            options = {"seed": seed, "promote": promote}
            job = {"id": job_id, "who": who, "created": _now(), "options": options,
                   "command": self.command(folder, options, who), "cwd": str(ROOT)}
            write_json(folder / JOB_FILE, job)
            (folder / LOG_FILE).write_text(f"$ python {shlex.join(job['command'][1:])}\n")
            with open(folder / "runner.log", "ab") as runner_log:
                child = subprocess.Popen([sys.executable, "-m", "pipeline.job_runner", str(folder)],
                                         cwd=ROOT, stdin=subprocess.DEVNULL, stdout=runner_log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self._children[job_id] = child
            write_json(folder / JOB_FILE, {**job, "pid": child.pid})
        return self.get(job_id)

    def cancel(self, job_id: str, *, who: str) -> dict:
        """Cancel a running job: SIGTERM to its process group, SIGKILL if it is still there after KILL_AFTER s."""
        folder = self.folder(job_id)
        job = self.get(job_id, log_chars=0)
        if job["state"] != "running":
            raise JobError(f"job {job_id} is not running (it {job['state']})", 409, "job")
        write_json(folder / CANCEL_FILE, {"who": who, "when": _now()})
        pid = (_read(folder / JOB_FILE) or {}).get("pid")
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        threading.Thread(target=self._kill_later, args=(pid, folder), daemon=True).start()
        return self.get(job_id)

    def _kill_later(self, pid: int, folder: Path) -> None:
        deadline = time.monotonic() + KILL_AFTER
        while time.monotonic() < deadline:
            if not _alive(pid, folder):
                return
            time.sleep(0.2)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def train_args(value: str | None) -> tuple[str, ...]:
    """Split WORKBENCH_TRAIN_ARGS (shell words) into the arguments every job gives ``pipeline.run``."""
    return tuple(shlex.split(value or ""))
