"""Where a run's CPU goes: this process (the load generator), gunicorn's workers, the database's backends.

Read from /proc (Linux): user + system time of each process, in seconds. A
PostgreSQL backend is found by its command line, ``postgres: <user> <database> ...``
(``postgres: 15/main: <user> <database> ...`` with a cluster name),
so only the connections to the run's own database count (not the server's
background writers, nor other databases on the same server).
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

from sqlalchemy.engine import make_url

TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """Return a process's user + system CPU seconds (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of stat(5)


def own_seconds() -> float:
    """Return this process's user + system CPU seconds, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backends_seconds(database: str) -> float:
    """Return the CPU seconds of the PostgreSQL backends connected to `database` now."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        # "postgres: [cluster name:] user database host(port) state"
        if words[:1] == ["postgres:"] and database in words[1:4]:
            total += process_seconds(int(entry.name))
    return total


class CpuMeter:
    """CPU seconds spent between `start` and `stop` by this process, some other processes and a database's backends."""

    def __init__(self, pids: list[int], database: str | None = None):
        self.pids, self.database = pids, database

    @classmethod
    def of_ledger(cls, pids: list[int], database_url: str) -> CpuMeter:
        """Meter these processes and, on PostgreSQL, the backends of the ledger at `database_url`."""
        url = make_url(database_url)
        return cls(pids, url.database if url.get_backend_name() == "postgresql" else None)

    def _read(self) -> dict[str, float]:
        return {"load generator": own_seconds(), "portal": sum(process_seconds(p) for p in self.pids),
                "database": backends_seconds(self.database) if self.database else 0.0}

    def start(self) -> CpuMeter:
        """Take the first reading."""
        self.first = self._read()
        return self

    def stop(self) -> dict[str, float]:
        """Return the CPU seconds of each part since `start`."""
        last = self._read()
        return {part: round(last[part] - self.first[part], 3) for part in last}
