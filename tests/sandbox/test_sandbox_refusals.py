"""Clear refusals: a typo is a ConfigError before anything starts; a host that cannot run the backend is
one line saying what is missing and how to enable it, exit code 2, and ``sandbox check`` says it first."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from sandbox_cli import agentkit

from agentkit.errors import ConfigError, SandboxUnavailable

pytestmark = pytest.mark.bwrap


@pytest.mark.parametrize(
    "options, key",
    [
        ({"tpyo": 1}, "options.tpyo"),
        ({"cgroups": "maybe"}, "options.cgroups"),
        ({"seccomp": "yes"}, "options.seccomp"),
        ({"ro_binds": "/opt"}, "options.ro_binds"),
    ],
)
def test_option_typo_is_a_config_error_at_construction(options, key):
    from agentkit.envs.sandbox import SandboxPool
    from agentkit.sandbox import create_sandbox

    with pytest.raises(ConfigError, match=key):
        create_sandbox("bwrap", **options)
    with pytest.raises(ConfigError, match=key):  # the pool checks before it warms anything
        SandboxPool("bwrap", size=1, **options)


def test_pool_hands_out_config_errors_unwrapped():
    """A ConfigError raised while warming stays a ConfigError (never a SandboxUnavailable to retry)."""
    import asyncio

    from agentkit.envs.sandbox import SandboxPool

    async def run():
        pool = SandboxPool("bwrap", size=1, warm_python=False)
        pool.options = {"tpyo": 1}  # as if the options changed after construction
        try:
            await pool.acquire()
        finally:
            await pool.close()

    with pytest.raises(ConfigError):
        asyncio.run(run())


def test_missing_bwrap_is_one_line_and_exit_2():
    done = agentkit("sandbox", "exec", "+options.bwrap=/nonexistent/bwrap", stdin="print(1)\n")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and "bubblewrap is not installed" in lines[0]
        and "apt-get install bubblewrap" in lines[0]
    )
    assert "Traceback" not in done.stderr


def test_check_prints_the_diagnosis_first_then_refuses():
    done = agentkit("sandbox", "check", "+options.bwrap=/nonexistent/bwrap", "checks=[exec_basics]")
    assert done.returncode == 2
    assert "mode:" in done.stdout and "bubblewrap is not installed" in done.stderr
    assert "exec_basics" not in done.stdout  # no check ran


def test_seccomp_unavailable_is_refused_unless_turned_off(monkeypatch):
    from agentkit.envs.sandbox import bwrap
    from agentkit.envs.sandbox import seccomp_filter as seccomp

    monkeypatch.setattr(seccomp, "status", lambda: (False, "no libseccomp Python API: pip install pyseccomp"))
    bwrap.diagnose.cache_clear()
    try:
        sandbox = bwrap.BwrapSandbox(preload=[])
        assert "pip install pyseccomp" in sandbox.refusal() and "options.seccomp=false" in sandbox.refusal()
        assert bwrap.BwrapSandbox(preload=[], seccomp=False).refusal() is None
    finally:
        bwrap.diagnose.cache_clear()


def test_required_cgroups_without_one_is_refused(monkeypatch):
    from agentkit.envs.sandbox import bwrap, cgroups

    monkeypatch.setattr(
        cgroups, "host", lambda: (None, "cgroup v1 /sys/fs/cgroup/pids is not writable by uid 1000")
    )
    bwrap.diagnose.cache_clear()
    try:
        refusal = bwrap.BwrapSandbox(preload=[], cgroups="required").refusal()
        assert refusal and "no writable cgroup" in refusal and "not writable by uid 1000" in refusal
        report = bwrap.BwrapSandbox(preload=[]).limits_report()
        assert report["memory"].startswith("RLIMIT_AS") and "not writable by uid 1000" in report["memory"]
    finally:
        bwrap.diagnose.cache_clear()


@pytest.mark.parametrize(
    "sysctl, value, hint",
    [
        ("/proc/sys/kernel/unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"),
        ("/proc/sys/user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces="),
    ],
)
def test_userns_disabled_names_the_sysctl(monkeypatch, sysctl, value, hint):
    from agentkit.envs.sandbox import bwrap

    monkeypatch.setattr(bwrap, "_sysctl", lambda path: value if path == sysctl else None)
    problem = bwrap._userns_problem("bwrap")
    assert problem is not None and hint in problem and "\n" not in problem


def test_apparmor_restriction_names_the_fix(monkeypatch):
    from agentkit.envs.sandbox import bwrap

    monkeypatch.setattr(bwrap, "_sysctl", lambda path: "1" if "apparmor" in path else None)
    monkeypatch.setattr(bwrap, "_userns_probe", lambda path: "setting up uid map: Permission denied")
    problem = bwrap._userns_problem("bwrap")
    assert "apparmor_restrict_unprivileged_userns" in problem and "userns" in problem


def test_runtime_dir_is_per_user_and_refuses_a_foreign_one(monkeypatch):
    from agentkit.envs.sandbox.base import runtime_dir

    with tempfile.TemporaryDirectory() as tmp:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.setenv("TMPDIR", tmp)
        tempfile.tempdir = None
        try:
            path = runtime_dir()
            assert path == Path(tmp) / f"agentkit-{os.geteuid()}" and (path.stat().st_mode & 0o777) == 0o700
            if os.geteuid() == 0:  # a directory of that name owned by someone else is never used
                os.chown(path, 12345, 12345)
                with pytest.raises(SandboxUnavailable, match="not a directory owned by uid 0"):
                    runtime_dir()
        finally:
            tempfile.tempdir = None
