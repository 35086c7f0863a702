"""Load a URL with wrk (Debian's package) from a second process, and read its figures; check a benchmark can run."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from model_registry import registry, store


def wrk(url: str, body: str, seconds: int, connections: int = 8, headers: dict[str, str] | None = None) -> dict:
    """POST `body` (JSON) to url with wrk for `seconds`; return requests/s, p50/p99 latency (ms) and non-2xx."""
    lines = [f"wrk.method = {json.dumps('POST')}", f"wrk.body = {json.dumps(body)}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()]
    return run_script(url, "\n".join(lines) + "\n", seconds, connections)


def alternate(urls: dict[str, str], body: str, seconds: int, rounds: int, headers: dict[str, str] | None = None,
              connections: int = 8) -> dict[str, list[dict]]:
    """POST `body` to each URL with wrk in alternating rounds; return every round's figures by name.

    Each URL is warmed up for 2 s first; the order flips every round. On a machine shared with
    other work one run of each swings their ratio a lot; alternating gives every target the same
    share of that work, and the caller compares medians.
    """
    for url in urls.values():
        wrk(url, body, 2, connections, headers)
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    order = list(urls.items())
    for i in range(rounds):
        for name, url in order if i % 2 == 0 else order[::-1]:
            runs[name].append(wrk(url, body, seconds, connections, headers))
            print(f"  round {i + 1} {name}: {runs[name][-1]['rps']:.0f}/s", flush=True)
    return runs


def run_script(url: str, script: str, seconds: int, connections: int = 8) -> dict:
    """Run wrk (2 threads) with a Lua `script` for `seconds`; return requests, requests/s, p50/p99 (ms), non-2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s",
                              file.name, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(file.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        latency[pct] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)), "rps": rps,
            "p50_ms": latency["50"], "p99_ms": latency["99"], "non_2xx": int(errors.group(1)) if errors else 0}


def champion_store(tracking_uri: str | None) -> str | None:
    """Return the configured store when it has a champion and wrk is installed; else say what is missing."""
    uri = store.configure(tracking_uri)
    if registry.champion_version(tracking_uri=uri) is None:
        print("no champion in the store: run `make model` first", file=sys.stderr)
        return None
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return None
    return uri
