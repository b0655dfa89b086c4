"""Repository tasks from a user's project (``tasks.source=repo``), on two real PyPI projects whose sdists ship
their tests (inflection 0.5.1: a top-level package and a root test module; cachetools 5.5.2: a src layout and a
tests/ directory). The sdists are shipped in tests/envs/code/assets/sdists exactly as ``pip download --no-deps
--no-binary :all:`` fetched them, so the tests need no network; they are MIT-licensed and 43 KB together."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from agentkit.config import SandboxConfig, TaskSourceConfig
from agentkit.envs.code import CodeEnv, pytest_arguments
from agentkit.envs.code.inject import STRUCTURAL_OPERATORS, Mutation, package_name, project_files
from agentkit.envs.code.repo import verify_patch
from agentkit.errors import ConfigError
from agentkit.loop import EpisodeLimits, run_episode
from agentkit.records import Status

SDISTS = Path(__file__).parent / "assets" / "sdists"
LIMITS = EpisodeLimits(max_turns=12, max_seconds=240)


def unpack(name: str, into: Path) -> Path:
    with tarfile.open(SDISTS / f"{name}.tar.gz") as archive:
        archive.extractall(into, filter="data")
    return into / name


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sdists")
    found = {name: unpack(name, root) for name in ("inflection-0.5.1", "cachetools-5.5.2")}
    checkout = found["inflection-0.5.1"]  # also a git checkout: only tracked files count
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(
        ["git", "-C", str(checkout), "add", "inflection", "test_inflection.py", "setup.cfg"], check=True
    )
    (checkout / "untracked_notes.txt").write_text("not part of the project\n")
    return found


def test_layouts_and_files_of_real_projects(projects):
    assert package_name(projects["inflection-0.5.1"]) == "inflection"
    assert package_name(projects["cachetools-5.5.2"]) == "src/cachetools"
    tracked = project_files(projects["inflection-0.5.1"])
    assert set(tracked) == {
        "inflection/__init__.py",
        "inflection/py.typed",
        "test_inflection.py",
        "setup.cfg",
    }
    assert "PKG-INFO" in project_files(projects["cachetools-5.5.2"])


def test_test_command_selects_tests_and_must_be_pytest():
    assert pytest_arguments("pytest -q tests -k 'not slow'") == ["tests", "-k", "not slow"]
    assert pytest_arguments("python3 -m pytest -x") == []
    with pytest.raises(ConfigError, match="test_command must run pytest"):
        CodeEnv(test_command="make test")


def test_bad_repo_sources_name_their_key(tmp_path):
    env = CodeEnv()
    with pytest.raises(ConfigError, match="tasks.path is required"):
        env.load_tasks(TaskSourceConfig(source="repo"))
    with pytest.raises(ConfigError, match="no package"):
        env.load_tasks(TaskSourceConfig(source="repo", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="tasks.options.package: x is not in"):
        env.load_tasks(TaskSourceConfig(source="repo", path=str(tmp_path), options={"package": "x"}))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "__init__.py").write_text("")
    with pytest.raises(ConfigError, match="tasks.options.operators"):
        env.load_tasks(TaskSourceConfig(source="repo", path=str(tmp_path), options={"operators": ["nope"]}))


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "command", "operators"),
    [
        ("inflection-0.5.1", "pytest -q", list(STRUCTURAL_OPERATORS)),
        ("cachetools-5.5.2", "python -m pytest -q tests", None),
    ],
)
def test_tasks_from_a_real_project_are_caught_bugs_the_reference_fixes(
    projects, tmp_path, name, command, operators
):
    """Passing tests found by running them, injected bugs kept when a test catches them, fail-to-pass and
    pass-to-pass lists, bash + edit episodes, and verification in a fresh sandbox: the buggy tree fails it,
    the reference fix passes it."""
    import asyncio

    env = CodeEnv(sandbox=SandboxConfig(backend="bwrap", pool_size=2), test_command=command)
    try:
        options = {"cache_dir": str(tmp_path)} | ({"operators": operators} if operators else {})
        tasks = env.load_tasks(
            TaskSourceConfig(source="repo", path=str(projects[name]), n=2, seed=3, options=options)
        )
        assert len(tasks) == 2
        for task in tasks:
            meta = task.meta
            assert meta["source"] == "repo" and meta["project_path"] == str(projects[name].resolve())
            assert meta["fail_to_pass"] and meta["pass_to_pass"]
            assert not set(meta["fail_to_pass"]) & set(meta["pass_to_pass"])
            assert operators is None or meta["bug_kind"] in operators
            assert command.split(" -q")[0] in task.prompt
            assert {"exploration", "localisation", "patching", "testing"} <= set(task.abilities)
            trajectory = asyncio.run(run_episode(env, task, env.reference_solver(task), limits=LIMITS))
            assert trajectory.status == Status.completed, trajectory.error
            assert trajectory.passed, trajectory.verdict
            observations = [m.content for m in trajectory.messages if m.role == "tool"]
            assert "failed" in observations[1].lower() and "failed" not in observations[-1]
            mutation = Mutation.from_dict(meta["mutation"])  # the bug left in place fails the same check
            project = env.project(task)
            buggy = {
                rel: mutation.apply(text) if rel == mutation.file else text
                for rel, text in project.files().items()
                if rel.startswith(project.package + "/") and rel.endswith(".py")
            }
            unfixed = asyncio.run(verify_patch(env, project, meta, buggy))
            assert not unfixed.passed and meta["fail_to_pass"][0] in str(unfixed.details) + unfixed.reason
    finally:
        asyncio.run(env.aclose())
