"""Harbor task directories in the code env: loading (checked against Harbor's published layout),
verification by the task's own ``tests/test.sh`` in the sandbox, the oracle ``solution/solve.sh`` as
the reference solver, and ``agentkit eval ... policy=reference`` end to end.

The task dirs under ``tests/assets/harbor`` are hand-made in Harbor's format (``instruction.md``,
``task.toml`` with ``version``/``[metadata]``/``[verifier]``/``[agent]``/``[environment]``,
``environment/Dockerfile``, ``tests/test.sh`` writing ``/logs/verifier/reward.{txt,json}``,
``solution/solve.sh``); Harbor's own package needs Python >= 3.12 and cannot write them here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentkit.config import TaskSourceConfig
from agentkit.envs.code import harbor
from agentkit.errors import ConfigError, VerifierError
from agentkit.records import Message, ToolCall

ROOT = Path(__file__).resolve().parents[3]
TASKS = ROOT / "tests" / "assets" / "harbor"


def test_hand_made_tasks_follow_harbors_layout():
    for task_dir in sorted(TASKS.iterdir()):
        for name in (
            "instruction.md",
            "task.toml",
            "environment/Dockerfile",
            "tests/test.sh",
            "solution/solve.sh",
        ):
            assert (task_dir / name).is_file(), f"{task_dir.name}: {name}"
        config = tomllib.loads((task_dir / "task.toml").read_text())
        assert set(config) <= {"version", "metadata", "verifier", "agent", "environment", "solution"}
        assert isinstance(config["verifier"]["timeout_sec"], float) and isinstance(
            config["agent"]["timeout_sec"], float
        )
        assert {"cpus", "memory_mb", "storage_mb", "build_timeout_sec"} <= set(config["environment"])
        assert "/logs/verifier/reward." in (task_dir / "tests" / "test.sh").read_text()


def test_loading_maps_paths_and_reads_the_dockerfile():
    tasks = harbor.load_harbor_tasks(TaskSourceConfig(source="harbor", path=str(TASKS)), "code")
    by_id = {t.id: t for t in tasks}
    assert sorted(by_id) == ["hello-file", "sum-csv"]
    csv_task = by_id["sum-csv"]
    assert "/workspace/app/data/numbers.csv" in csv_task.prompt and "/app/" not in csv_task.prompt.replace(
        "/workspace/app/", ""
    )
    meta = csv_task.meta["harbor"]
    assert meta["workdir"] == "/app" and meta["copies"] == [[["numbers.csv"], "/app/data/numbers.csv"]]
    assert meta["ignored_run_lines"] == ["pip install --no-cache-dir pytest==8.3.4"]
    assert meta["verifier_timeout"] == 60.0 and csv_task.meta["family"] == "data-processing"
    assert harbor.map_paths(
        "cd /app && cat /tests/x > /logs/verifier/reward.txt; ls /application /app",
        harbor.path_mapping("/app"),
    ) == (
        "cd /workspace/app && cat /workspace/.harbor/tests/x > /workspace/.harbor/logs/verifier/reward.txt; "
        "ls /application /workspace/app"
    )
    one = harbor.load_harbor_tasks(TaskSourceConfig(source="harbor", path=str(TASKS / "hello-file")), "code")
    assert [t.id for t in one] == ["hello-file"]
    with pytest.raises(ConfigError, match="env.tasks.path"):
        harbor.load_harbor_tasks(TaskSourceConfig(source="harbor", path=str(ROOT / "conf")), "code")


def _call(name: str, **arguments) -> ToolCall:
    return ToolCall.make("c0", name, arguments)


def test_verification_runs_the_tasks_own_tests_in_the_sandbox(world, tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    tasks = {t.id: t for t in world.env.load_tasks(TaskSourceConfig(source="harbor", path=str(TASKS)))}

    async def attempt(task, command: str | None):
        episode = await world.env.open(task)
        try:
            if command:
                output = await episode.call(_call("bash", command=command))
                assert not output.error, output.content
            return await episode.verify([Message(role="assistant", content="done")])
        finally:
            await episode.close()

    wrong = world.run(attempt(tasks["sum-csv"], "ls data && echo 1000 > answer.txt"))
    right = world.run(
        attempt(tasks["sum-csv"], 'python3 -c "print(17+25-4+1000)" > /workspace/app/answer.txt')
    )
    nothing = world.run(attempt(tasks["hello-file"], None))
    assert not wrong.passed and wrong.reward == 0.0 and "AssertionError" in wrong.details["output"]
    assert right.passed and right.reward == 1.0 and right.reason == "tests/test.sh: reward 1"
    assert not nothing.passed and nothing.reward == 0.0
    # An agent cannot pre-write the reward: the verifier's directory is reset before test.sh runs.
    forged = world.run(
        attempt(
            tasks["hello-file"],
            "mkdir -p /workspace/.harbor/logs/verifier && "
            "echo 1 > /workspace/.harbor/logs/verifier/reward.txt",
        )
    )
    assert not forged.passed

    broken_dir = tmp_path / "no-reward"
    shutil.copytree(TASKS / "hello-file", broken_dir)
    (broken_dir / "tests" / "test.sh").write_text("#!/bin/bash\necho checked\n")
    (broken,) = world.env.load_tasks(TaskSourceConfig(source="harbor", path=str(broken_dir)))
    with pytest.raises(VerifierError, match="wrote no reward"):
        world.run(attempt(broken, None))


@pytest.mark.slow
def test_agentkit_eval_with_the_reference_solver(tmp_path):
    out = tmp_path / "eval"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentkit.cli",
            "eval",
            "env=code",
            "env.tasks.source=harbor",
            f"env.tasks.path={TASKS}",
            "policy=reference",
            "report.progress=false",
            f"out={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["pass_rate"] == 1.0 and report["trajectories"] == 2
    records = [json.loads(line) for line in (out / "raw" / "rollouts.jsonl").read_text().splitlines()]
    for record in records:
        (call,) = [c for m in record["messages"] for c in m.get("tool_calls") or []]
        assert call["function"]["name"] == "bash" and "solution/solve.sh" in call["function"]["arguments"]
        assert record["verdict"]["passed"] and record["verdict"]["reason"] == "tests/test.sh: reward 1"
