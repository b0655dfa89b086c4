"""The math env end to end through the agent loop and the real bwrap sandbox."""

from __future__ import annotations

import asyncio

import pytest

from agentkit.client import ScriptedClient
from agentkit.config import SandboxConfig, TaskSourceConfig
from agentkit.envs.math import MathEnv
from agentkit.errors import ConfigError
from agentkit.loop import run_episode
from agentkit.records import Status, Task
from agentkit.toolcalls import render_tool_call

pytestmark = pytest.mark.bwrap


@pytest.fixture(scope="module")
def world():
    runner = asyncio.Runner()
    env = MathEnv(sandbox=SandboxConfig(backend="bwrap", pool_size=1))
    (task,) = env.load_tasks(TaskSourceConfig(n=1, seed=7, options={"kinds": ["quadratic"]}))
    yield env, task, runner
    runner.run(env.aclose())
    runner.close()


def test_python_session_keeps_state_and_reports_errors(world):
    env, task, runner = world
    script = [
        render_tool_call(
            "python", {"code": "import sympy\nx = sympy.Symbol('x')\nroots = sympy.solve(x**2 - 4, x)"}
        ),
        render_tool_call("python", {"code": "print(sorted(roots))\n1/0"}),
        "\\boxed{0}",
    ]
    trajectory = runner.run(run_episode(env, task, ScriptedClient(script)))
    first, second = [m.content for m in trajectory.messages if m.role == "tool"]
    assert first == "[no output]"
    assert "[-2, 2]" in second and "ZeroDivisionError" in second  # state kept, error observed
    assert trajectory.stats.tool_errors == 1 and trajectory.status == Status.completed


def test_correct_tools_but_a_wrong_final_answer_fails(world):
    env, task, runner = world
    program = task.meta["solution"]
    script = [render_tool_call("python", {"code": program}), "The answer is \\boxed{12345}."]
    trajectory = runner.run(run_episode(env, task, ScriptedClient(script)))
    assert trajectory.stats.tool_calls == 1 and not trajectory.passed

    async def feedback() -> str:
        async with await env.open(task) as episode:
            return episode.feedback(trajectory.verdict)

    episode_feedback = runner.run(feedback())
    assert task.meta["answer"] not in episode_feedback and "12345" in episode_feedback


def test_an_answer_only_in_the_tool_output_does_not_count(world):
    env, task, runner = world
    body = "\n".join("    " + line for line in task.meta["solution"].splitlines())
    code = (
        "import contextlib, io\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n"
        + body
        + "\nprint('\\\\boxed{' + buf.getvalue().strip() + '}')"
    )
    script = [render_tool_call("python", {"code": code}), "The tool printed the boxed answer above."]
    trajectory = runner.run(run_episode(env, task, ScriptedClient(script)))
    observation = next(m.content for m in trajectory.messages if m.role == "tool")
    assert observation.startswith("\\boxed{") and task.meta["answer"] in observation
    assert not trajectory.passed and "no final answer" in trajectory.verdict.reason


def test_a_missing_reference_is_a_verifier_error_not_a_zero(world):
    env, _, runner = world
    task = Task(id="no-answer", env="math", prompt="What is 1+1?", meta={})
    trajectory = runner.run(run_episode(env, task, ScriptedClient(["\\boxed{2}"])))
    assert trajectory.status == Status.verifier_error and trajectory.reward is None


def test_options_are_checked():
    with pytest.raises(ConfigError, match="answer_format"):
        MathEnv(answer_format=["latex_magic"])
    env = MathEnv(answer_format=["answer_tag"], python_tool=False)
    assert env.tools(Task(id="t", env="math", prompt="p")) == []
    assert "<answer>" in env.system_prompt
