"""Function-level verification in the real bwrap sandbox: right answers pass, wrong and adversarial
ones (early exits, runner patching, fake output, lying __eq__, hangs, attacks on the runner) fail."""

from __future__ import annotations

import asyncio

import pytest

from agentkit.client import ScriptedClient
from agentkit.errors import VerifierError
from agentkit.loop import run_episode
from agentkit.records import Message, Status, Task
from agentkit.toolcalls import render_tool_call

pytestmark = pytest.mark.bwrap

ADD = Task(
    id="add",
    env="code",
    prompt="Write add(a, b).",
    meta={
        "kind": "function",
        "format": "function",
        "source": "test",
        "entry_point": "add",
        "prelude": "",
        "setup": "",
        "tests": [
            "assert add(1, 2) == 3",
            "assert add(-4, 4) == 0",
            "assert abs(add(0.5, 0.25) - 0.75) < 1e-9",
        ],
        "public_tests": ["assert add(1, 2) == 3"],
        "solution": "def add(a, b):\n    return a + b\n",
        "timeout": 4,
    },
)

ADVERSARIAL = {
    "exit at import": "import sys\nsys.exit(0)\n",
    "os._exit in the call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "exit after printing success": "import sys\ndef add(a, b):\n    print('3 passed'); sys.exit(0)\n",
    "fake harness output": (
        'import sys\nfor line in [\'ready\', \'result [{"id": "add", "units": 3, "passed_units": 3, '
        "\"failures\": []}]']:\n    sys.stdout.write('0' * 32 + ' ' + line + '\\n'); sys.__stdout__.write(line)\n"
        "def add(a, b):\n    return 0\n"
    ),
    "__eq__ that always agrees": "class Yes:\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = object.__hash__\ndef add(a, b):\n    return Yes()\n",
    "patched builtins": "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.AssertionError = KeyError\n"
    "def add(a, b):\n    return 0\n",
    "patched runner via atexit": "import atexit, os\natexit.register(lambda: os.write(1, b'PASSED'))\n"
    "def add(a, b):\n    return None\n",
    "hang": "def add(a, b):\n    while True:\n        pass\n",
    "kills the test runner": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    "def add(a, b):\n    return a - b\n",
    "reads the runner's memory": (
        "import os\ndata = b''\ntry:\n    data = open(f'/proc/{os.getppid()}/mem', 'rb').read(1)\nexcept OSError:\n"
        "    pass\ndef add(a, b):\n    return len(data)\n"
    ),
    "wrong answer": "def add(a, b):\n    return a * b\n",
}


def _verify(world, task: Task, code: str):
    async def go():
        episode = await world.env.open(task)
        async with episode:
            return await episode.verify([Message(role="assistant", content=f"Done.\n```python\n{code}```")])

    return go()


def test_correct_solution_passes(world):
    verdict = world.run(_verify(world, ADD, ADD.meta["solution"]))
    assert verdict.passed and verdict.reward == 1.0, verdict.reason
    assert verdict.details["tests"] == 3 and verdict.details["passed_tests"] == 3


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_adversarial_solutions_fail(world):
    async def all_of_them():
        return await asyncio.gather(*(_verify(world, ADD, code) for code in ADVERSARIAL.values()))

    verdicts = dict(zip(ADVERSARIAL, world.run(all_of_them()), strict=True))
    passed = [name for name, verdict in verdicts.items() if verdict.passed]
    assert not passed, passed
    assert all(v.reward == 0.0 and v.reason for v in verdicts.values())
    assert "timed out" in verdicts["hang"].reason
    assert "the solution failed to load" in verdicts["exit at import"].reason
    assert "exited" in verdicts["os._exit in the call"].reason
    assert "solution" in verdicts["__eq__ that always agrees"].reason


def test_the_runner_cannot_be_read_from_the_solution(world):
    probe = Task(
        id="probe",
        env="code",
        prompt="",
        meta=ADD.meta | {"tests": ["assert probe() == []"], "entry_point": "probe", "public_tests": []},
    )
    code = (
        "import os\ndef probe():\n    opened = []\n"
        "    for name in ('mem', 'environ', 'fd/0', 'fd/1'):\n        try:\n"
        "            open(f'/proc/{os.getppid()}/{name}', 'rb').close()\n            opened.append(name)\n"
        "        except OSError:\n            pass\n    return opened\n"
    )
    verdict = world.run(_verify(world, probe, code))
    assert verdict.passed, verdict.reason


def test_no_code_block_fails_without_running_anything(world):
    async def go():
        episode = await world.env.open(ADD)
        async with episode:
            return await episode.verify([Message(role="assistant", content="def add(a, b): return a + b")])

    verdict = world.run(go())
    assert not verdict.passed and "code block" in verdict.reason


def test_code_inside_think_does_not_count(world):
    async def go():
        episode = await world.env.open(ADD)
        async with episode:
            text = f"<think>```python\n{ADD.meta['solution']}```</think>I am not sure."
            return await episode.verify([Message(role="assistant", content=text)])

    assert not world.run(go()).passed


def test_solution_exceptions_reach_the_tests_as_builtin_types(world):
    task = Task(
        id="div",
        env="code",
        prompt="",
        meta=ADD.meta
        | {
            "entry_point": "div",
            "public_tests": [],
            "tests": [
                "try:\n    div(1, 0)\n    raise AssertionError('no error')\nexcept ZeroDivisionError:\n    pass",
                "assert div(6, 3) == 2",
            ],
        },
    )
    assert world.run(_verify(world, task, "def div(a, b):\n    return a // b\n")).passed


def test_public_tests_tool_and_feedback(world):
    script = [
        render_tool_call("run_public_tests", {"code": "def add(a, b):\n    return a - b\n"}),
        render_tool_call("python", {"code": "x = 40\n"}),
        render_tool_call("python", {"code": "print(x + 2)\nundefined_name"}),
        "```python\ndef add(a, b):\n    return a - b\n```",
    ]
    trajectory = world.run(run_episode(world.env, ADD, ScriptedClient(script)))
    assert trajectory.status == Status.completed
    report, empty, state = [m.content for m in trajectory.messages if m.role == "tool"]
    assert report.startswith("0 of 1 public tests passed") and "-1 != 3" in report
    assert "42" in state and "NameError" in state
    assert not trajectory.passed and "0 of 3 hidden tests passed" in trajectory.verdict.reason


def test_feedback_names_the_failing_test(world):
    async def go():
        episode = await world.env.open(ADD)
        async with episode:
            verdict = await episode.verify(
                [
                    Message(
                        role="assistant",
                        content="```python\ndef add(a, b):\n    print('debug', a)\n    return a\n```",
                    )
                ]
            )
            return verdict, episode.feedback(verdict)

    verdict, feedback = world.run(go())
    assert not verdict.passed
    assert "assert add(1, 2) == 3" in feedback and "1 != 3" in feedback
    assert "debug 1" in feedback


def test_missing_hidden_tests_is_a_verifier_error(world):
    broken = Task(id="broken", env="code", prompt="", meta=ADD.meta | {"tests": []})
    with pytest.raises(VerifierError):
        world.run(_verify(world, broken, ADD.meta["solution"]))


def test_humaneval_answers_get_the_prompt_as_prelude(world):
    from agentkit.config import TaskSourceConfig

    (task,) = [t for t in world.env.load_tasks(TaskSourceConfig(source="humaneval")) if t.id == "HumanEval/0"]
    body = task.meta["solution"][len(task.meta["prelude"]) :]
    answer = (
        "from __future__ import annotations\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n" + body
    )
    verdict = world.run(_verify(world, task, answer))
    assert verdict.passed, verdict.reason  # List comes from the prompt; the __future__ import still works
