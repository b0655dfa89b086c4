"""inspect_ai's own sandbox conformance suite (``inspect_ai.util._sandbox.self_check``) against
``agentkit-bwrap`` and ``agentkit-docker``, run the way inspect's docs tell third-party providers to:
the checks are pulled into collection with ``import *``, a function-scoped ``sandbox_env`` fixture
yields the environment, and the checks a provider cannot satisfy are xfailed inside the fixture,
each with its reason (``KNOWN_FAILURES``). An xfailed check that starts passing fails the run
(``strict``), so the list stays true.

inspect_ai is pinned in the ``test`` extra (a missing package fails collection, it does not skip); the
entry point registering the providers is checked too.
"""

from __future__ import annotations

import shutil

import pytest
from inspect_ai.util._sandbox.self_check import *  # noqa: F403 - inspect's checks, collected here

from tests.sandbox.conftest import _unavailable, docker_reason

INSPECT_AI_VERSION = "0.3.285"

KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "bwrap": {
        **{
            name: "/tmp is a fresh tmpfs for each command (bwrap --tmpfs /tmp per exec); only the workspace "
            "persists between commands, so a file written under /tmp is gone by the next call"
            for name in (
                "test_read_and_write_file_including_directory_absolute",
                "test_write_text_file_is_directory",
                "test_write_binary_file_is_directory",
                "test_cwd_absolute",
            )
        },
        "test_exec_as_user": "no user switching: a bwrap sandbox runs every command as one unprivileged uid "
        "with no root inside (exec(user=...) raises SandboxUserUnsupportedError)",
    },
    "docker": {
        **{
            name: "each exec runs under its own fresh uid (so a timeout kills exactly that exec's processes): a file "
            "keeps the uid of the exec that wrote it, the check's later `chmod` is refused (not the owner) "
            "and the file stays readable/writable through the shared group"
            for name in (
                "test_read_file_not_allowed",
                "test_write_text_file_without_permissions",
                "test_write_binary_file_without_permissions",
            )
        },
        "test_exec_as_user": "no user switching: the container runs as a fixed non-root user with a read-only "
        "root filesystem (exec(user=...) raises SandboxUserUnsupportedError)",
    },
}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(
    params=[
        pytest.param("bwrap", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow]),
    ]
)
async def sandbox_env(request):
    from agentkit.envs.sandbox.inspect_provider import AgentkitSandboxEnvironment

    backend = request.param
    if backend == "bwrap" and shutil.which("bwrap") is None:
        _unavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    if backend == "docker" and docker_reason():
        _unavailable(f"no Docker-API socket reachable: {docker_reason()}")
    reason = KNOWN_FAILURES[backend].get(request.node.originalname)
    if reason:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    provider = {cls.BACKEND: cls for cls in AgentkitSandboxEnvironment.__subclasses__()}[backend]
    environments = await provider.sample_init("self_check", None, {})
    try:
        yield environments["default"]
    finally:
        await provider.sample_cleanup("self_check", None, environments, False)


def test_inspect_finds_the_providers_through_the_entry_point():
    import inspect_ai
    from inspect_ai._util.registry import registry_find  # noqa: F401 - inspect's registry is what resolves names
    from inspect_ai.util._sandbox.registry import registry_find_sandboxenv

    assert inspect_ai.__version__ == INSPECT_AI_VERSION
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="inspect_ai") if e.name == "agentkit"]
    assert entry.value == "agentkit.envs.sandbox.inspect_provider"
    entry.load()
    assert registry_find_sandboxenv("agentkit-bwrap").BACKEND == "bwrap"
    assert registry_find_sandboxenv("agentkit-docker").BACKEND == "docker"


@pytest.mark.slow
@pytest.mark.bwrap
def test_inspect_eval_runs_a_task_in_agentkit_bwrap(tmp_path):
    """``inspect eval ... --sandbox agentkit-bwrap`` as a user runs it: the CLI, the provider, the score."""
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("bwrap") is None:
        _unavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    task = Path(__file__).resolve().parents[1] / "assets" / "inspect" / "sandboxed_task.py"
    inspect = Path(sys.executable).with_name("inspect")
    shutil.copy(task, tmp_path / task.name)  # inspect takes a task file relative to the working directory
    done = subprocess.run(
        [
            str(inspect),
            "eval",
            task.name,
            "--model",
            "mockllm/model",
            "--sandbox",
            "agentkit-bwrap",
            "--log-dir",
            str(tmp_path / "logs"),
            "--display",
            "plain",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    from inspect_ai.log import read_eval_log

    (path,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(path))
    assert log.status == "success" and log.eval.sandbox.type == "agentkit-bwrap"
    (score,) = log.results.scores
    assert score.metrics["accuracy"].value == 1.0
    (sample,) = log.samples
    assert sample.store["out"] == "42"
