"""Wait until every URL answers 200, then exit 0 (1 after the timeout): `python -m deploy.ready URL ... [--timeout S]`.

`make run` waits with it for the decision service's /ready (a model is loaded) and the
portal before printing their addresses, so the first ML request is not sent to a
service still loading its model.
"""
from __future__ import annotations

import argparse
import sys
import time

import requests


def wait(urls: list[str], timeout: float, say=print) -> bool:
    """Return True once every URL answered 200, False when the timeout passed first."""
    deadline, told = time.monotonic() + timeout, False
    for url in urls:
        while True:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                say(f"!! {url} did not answer 200 within {timeout:g} s")
                return False
            if not told:
                say("  (waiting for the decision service to load its model and for the portal to start ...)")
                told = True
            time.sleep(0.5)
    return True


def main(argv: list[str] | None = None) -> int:
    """Wait for the URLs given on the command line."""
    parser = argparse.ArgumentParser(prog="python -m deploy.ready", description=main.__doc__)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait in all (default 300)")
    args = parser.parse_args(argv)
    return 0 if wait(args.urls, args.timeout, lambda line: print(line, flush=True)) else 1


if __name__ == "__main__":
    sys.exit(main())
