"""Stand-ins for the decision service on a loopback port: one that hangs, for tests and benchmarks."""
from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Hanging(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        self.server.calls += 1
        self.server.release.wait(self.server.hang_seconds)
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def hanging_service(hang_seconds: float = 30.0) -> Iterator[http.server.ThreadingHTTPServer]:
    """Run a decision service that takes every POST and answers only after `hang_seconds` (or at exit).

    The server's ``calls`` counts the requests that reached it; its URL is
    ``http://127.0.0.1:<server.server_port>``.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    server.daemon_threads = True
    server.calls, server.release, server.hang_seconds = 0, threading.Event(), hang_seconds
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
