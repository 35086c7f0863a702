"""The files `make cluster` writes: every placeholder filled, and nginx's try on one serving replica tied
to the portals' wait for a decision (checked without starting anything; tests/test_cluster.py runs them)."""
from __future__ import annotations

import re

import pytest

from deploy.cluster import Settings, replica_env, write_files


@pytest.mark.parametrize("timeout,try_ms", [("2", 1000), ("3", 1500), ("0.1", 100)])
def test_nginx_asks_the_other_serving_replica_after_half_the_portals_wait(tmp_path, monkeypatch, timeout, try_ms):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SERVING_TIMEOUT", timeout)
    settings = Settings()
    settings.cluster_dir.mkdir(parents=True)  # deploy.cluster makes it before it writes the shared secrets
    env = replica_env(settings)
    write_files(settings, env)
    conf = (tmp_path / "cluster" / "nginx" / "nginx.conf").read_text()
    assert "@" not in re.sub(r"#.*", "", conf)  # every placeholder filled
    decisions = re.search(r"location = /v1/decisions \{(.*?)\}", conf, re.S).group(1)
    assert f"proxy_read_timeout {try_ms}ms;" in decisions and f"proxy_connect_timeout {try_ms}ms;" in decisions
    assert "timeout" in re.search(r"proxy_next_upstream ([^;]*);", decisions).group(1).split()
    assert float(env["SERVING_TIMEOUT"]) == float(timeout)  # the portals wait what nginx's try was cut from
