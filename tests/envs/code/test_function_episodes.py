"""Function-level episodes through the agent loop in the real sandbox: the reference solver writes the
solution in the python session, runs the public tests and answers; every source's tasks pass."""

from __future__ import annotations

import json

import pytest

from agentkit.client import ScriptedClient
from agentkit.config import TaskSourceConfig
from agentkit.envs.code.function import extract_code
from agentkit.loop import EpisodeLimits, run_episode
from agentkit.records import Status

pytestmark = pytest.mark.bwrap

LIMITS = EpisodeLimits(max_turns=8, max_seconds=120)
ROWS = {
    "mbpp": [
        {
            "task_id": 7,
            "text": "Write a function that keeps the pairs whose first item is larger.",
            "code": "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n\n"
            "def bigger_first(pairs):\n    return [(p.a, p.b) for p in pairs if p.a > p.b]\n",
            "test_setup_code": "import math",
            "test_list": [
                "assert bigger_first([Pair(2, 1), Pair(1, 2)]) == [(2, 1)]",
                "assert bigger_first([]) == []",
                "assert math.isclose(len(bigger_first([Pair(3, 0)])), 1)",
            ],
        }
    ],
    "stdio": [
        {
            "id": "rev",
            "prompt": "Print the words of the input line in reverse order.",
            "cases": [
                {"input": "a b c\n", "output": "c b a\n"},
                {"input": "one\n", "output": "one\n"},
                {"input": "x  y\n", "output": "y x\n"},
            ],
            "solution": "print(' '.join(reversed(input().split())))\n",
        }
    ],
}


@pytest.fixture(scope="module")
def tasks(world, tmp_path_factory):
    directory = tmp_path_factory.mktemp("rows")
    found = {}
    for source, rows in ROWS.items():
        path = directory / f"{source}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (found[source],) = world.env.load_tasks(TaskSourceConfig(source=source, path=str(path)))
    generated = world.env.load_tasks(
        TaskSourceConfig(source="generated", n=30, seed=2, options={"kinds": ["function"]})
    )
    for kind in ("function", "stdio"):
        found[f"generated-{kind}"] = next(t for t in generated if t.meta["format"] == kind)
    found["humaneval-0"], found["humaneval-1"] = world.env.load_tasks(
        TaskSourceConfig(source="humaneval", n=2, seed=1)
    )
    return found


@pytest.mark.parametrize(
    "which", ["mbpp", "stdio", "generated-function", "generated-stdio", "humaneval-0", "humaneval-1"]
)
def test_reference_solver_passes(world, tasks, which):
    task = tasks[which]
    trajectory = world.run(run_episode(world.env, task, world.env.reference_solver(task), limits=LIMITS))
    assert trajectory.status == Status.completed, trajectory.error
    assert trajectory.passed and trajectory.reward == 1.0, (task.id, trajectory.verdict)
    assert trajectory.stats.tool_errors == 0 and trajectory.stats.tool_calls >= 1
    names = [c.name for m in trajectory.messages if m.tool_calls for c in m.tool_calls]
    assert names[0] == "python"
    if task.meta.get("public_tests") or task.meta.get("public_cases"):
        assert names[1] == "run_public_tests"
        report = [m.content for m in trajectory.messages if m.role == "tool"][1]
        assert "public tests passed" in report and "FAIL" not in report
    answer = extract_code(trajectory.messages[-1].content)
    assert answer is not None and answer.split() == task.meta["solution"].split()


def test_a_wrong_answer_fails_through_the_loop(world, tasks):
    task = tasks["stdio"]
    trajectory = world.run(run_episode(world.env, task, ScriptedClient(["```python\nprint(input())\n```"])))
    assert trajectory.status == Status.completed and not trajectory.passed
    assert "1 of 3" in trajectory.verdict.reason and "expected" in trajectory.verdict.reason
