import asyncio

import pytest
from core.toy_env import AddEnv, AddEpisode, add_task

from agentkit.client import Sampling, ScriptedClient
from agentkit.errors import ContextExceeded, ModelError
from agentkit.loop import EpisodeLimits, run_episode, run_many
from agentkit.records import Status
from agentkit.toolcalls import render_tool_call


def run(coro):
    return asyncio.run(coro)


def test_reference_solver_passes_through_the_loop():
    env, task = AddEnv(), add_task(20, 22)
    trajectory = run(run_episode(env, task, env.reference_solver(task)))
    assert trajectory.status == Status.completed and trajectory.passed and trajectory.reward == 1.0
    roles = [m.role for m in trajectory.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert trajectory.messages[3].content == "42" and trajectory.messages[3].tool_call_id == "call_0"
    assert (
        trajectory.stats.turns == 2 and trajectory.stats.tool_calls == 1 and trajectory.stats.tool_errors == 0
    )
    assert trajectory.provenance.env_version == "toy-add/1" and trajectory.provenance.strategy == "direct"


def test_wrong_answer_is_scored_not_crashed():
    trajectory = run(run_episode(AddEnv(), add_task(), ScriptedClient(["The answer is 6"])))
    assert trajectory.status == Status.completed and not trajectory.passed and trajectory.reward == 0.0


def test_mistakes_become_observations():
    script = [
        "<tool_call>{broken json</tool_call>",
        render_tool_call("add", {"a": "two", "b": 3}),
        render_tool_call("multiply", {"a": 2, "b": 3}),
        render_tool_call("add", {"a": -1, "b": 3}),
        render_tool_call("add", {"a": 2, "b": 3}),
        "The answer is 5",
    ]
    trajectory = run(run_episode(AddEnv(), add_task(), ScriptedClient(script)))
    observations = [m.content for m in trajectory.messages if m.role == "tool"]
    assert observations[0].startswith("error: tool call is not valid JSON")
    assert "invalid arguments for 'add' at 'a'" in observations[1]
    assert "unknown tool 'multiply'" in observations[2]
    assert observations[3] == "error: negative numbers are not supported"
    assert observations[4] == "5"
    assert trajectory.passed and trajectory.stats.tool_errors == 3 and trajectory.stats.parse_errors == 1


@pytest.mark.parametrize(
    ("script", "status"),
    [
        ([ModelError("502 after 5 retries")], Status.model_error),
        ([ContextExceeded("maximum context length")], Status.context_exceeded),
        ([render_tool_call("explode", {})], Status.sandbox_error),
        (["<tool_call>{</tool_call>"] * 3, Status.parse_error),
        ([render_tool_call("add", {"a": 1, "b": 1})] * 3, Status.max_turns),
    ],
)
def test_status_taxonomy(script, status):
    trajectory = run(
        run_episode(AddEnv(), add_task(), ScriptedClient(script), limits=EpisodeLimits(max_turns=3))
    )
    assert trajectory.status == status
    if status.is_infrastructure:
        assert trajectory.reward is None and trajectory.verdict is None and trajectory.error
    else:
        assert trajectory.reward == 0.0 and not trajectory.passed


def test_verifier_failure_is_not_a_zero_reward():
    trajectory = run(
        run_episode(AddEnv(), add_task(broken_verifier=True), ScriptedClient(["The answer is 5"]))
    )
    assert trajectory.status == Status.verifier_error and trajectory.reward is None


def test_wall_clock_limit():
    class SlowClient(ScriptedClient):
        async def complete(self, messages, tools=None, sampling=None):
            await asyncio.sleep(5)

    trajectory = run(run_episode(AddEnv(), add_task(), SlowClient([]), limits=EpisodeLimits(max_seconds=0.2)))
    assert trajectory.status == Status.timeout and trajectory.stats.seconds.total < 2


def test_token_budget_caps_each_turn():
    client = ScriptedClient([render_tool_call("add", {"a": 1, "b": 2})] * 10)
    seen = []
    original = client.complete

    async def spy(messages, tools=None, sampling=None):
        seen.append(sampling.max_tokens)
        return await original(messages, tools, sampling)

    client.complete = spy
    trajectory = run(
        run_episode(
            AddEnv(),
            add_task(),
            client,
            sampling=Sampling(max_tokens=100),
            limits=EpisodeLimits(max_completion_tokens=30),
        )
    )
    assert trajectory.status == Status.max_tokens
    assert seen[0] == 30 and all(s <= 30 for s in seen)


def test_episodes_close_and_run_many_keeps_order():
    env = AddEnv()
    before = AddEpisode.closed
    tasks = [add_task(i, i) for i in range(12)]
    trajectories = run(run_many([(env, t, env.reference_solver(t)) for t in tasks], concurrency=4))
    assert [t.task.id for t in trajectories] == [t.id for t in tasks]
    assert all(t.passed for t in trajectories)
    assert AddEpisode.closed - before == 12
