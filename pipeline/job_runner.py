"""Run one workbench retrain job and record how it ended: ``python -m pipeline.job_runner JOB_DIR``.

The workbench starts this in a process group of its own; it runs the command
of ``JOB_DIR/job.json`` with its output going to ``JOB_DIR/log.txt`` and, when
the command ends, writes ``JOB_DIR/exit.json`` (its return code). So a job's
end is recorded even when the workbench service that started it has been
restarted since. Cancelling sends SIGTERM to the whole group: the command
ends, and the runner, which ignores SIGTERM, still records the code.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

JOB_FILE, LOG_FILE, EXIT_FILE = "job.json", "log.txt", "exit.json"


def write_json(path: Path, value: dict) -> None:
    """Write a JSON file atomically (a reader never sees half of it)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    """Run the job's command; record its return code in exit.json."""
    folder = Path((argv or sys.argv[1:])[0])
    job = json.loads((folder / JOB_FILE).read_text())
    # The group's SIGTERM is for the command; the runner stays to write down how it ended.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(folder / LOG_FILE, "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(job["command"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=job.get("cwd"), env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
        except OSError as exc:
            log.write(f"could not start the job: {exc}\n".encode())
            code = 127
        else:
            code = child.wait()
    write_json(folder / EXIT_FILE, {"returncode": code, "finished": datetime.now(UTC).isoformat(timespec="seconds")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
