"""``agentkit sandbox exec`` and ``agentkit sandbox check`` through the real console entry point."""

from __future__ import annotations

import json

import pytest
from sandbox_cli import agentkit

pytestmark = pytest.mark.bwrap


def test_exec_reads_stdin_and_prints_one_json_result():
    done = agentkit("sandbox", "exec", stdin="import sys\nprint(6 * 7)\nsys.exit(3)\n")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["stdout"] == "42\n" and result["exit_code"] == 3 and result["status"] == "error"


def test_exec_limits_are_overridable():
    done = agentkit("sandbox", "exec", "limits.timeout=1", "limits.memory_mb=256", stdin="while True: pass\n")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "timeout" and result["duration"] < 6


def test_exec_session_mode_echoes_like_a_repl():
    done = agentkit("sandbox", "exec", "session=true", "+options.preload=[]", "code='x = 5; x * 2'")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["stdout"] == "10\n"


def test_misspelled_key_fails_at_compose_time():
    done = agentkit("sandbox", "exec", "limits.timout=1", stdin="print(1)\n")
    assert done.returncode != 0 and "timout" in (done.stderr + done.stdout)


def test_check_prints_a_table_and_passes():
    done = agentkit("sandbox", "check", "checks=[network_outside,host_env,session_crash]")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("network_outside", "host_env", "session_crash", "3/3 passed"):
        assert name in done.stdout


def test_check_rejects_an_unknown_check_name():
    from agentkit.envs.sandbox.cli import SandboxCheckConfig, check
    from agentkit.errors import ConfigError

    with pytest.raises(ConfigError, match="no_such_check"):
        check(SandboxCheckConfig(checks=["no_such_check"]))
