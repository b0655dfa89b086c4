"""teacher: mistakes that really run in the real envs (simulators, the research index, sandboxes), exposed
by the real observation, with a reflection that quotes that observation. Nothing here is canned."""

from __future__ import annotations

import json
import random

import pytest
from synth_runs import need_bwrap, rollout, run_strategy, synth

from agentkit.config import TaskSourceConfig
from agentkit.synth.strategies import build_strategy, mutate_code, observation_fails, wrong_value


def teach(env, task, kinds, sample=0):
    strategy = build_strategy("teacher", {"mistakes": kinds})
    return strategy, run_strategy(strategy, rollout(env, task, sample=sample, max_turns=24))


def wrong_turn(trajectory):
    """The assistant turn with the mistake, the observations it got, and the turn after them."""
    assistants = [i for i, m in enumerate(trajectory.messages) if m.role == "assistant"]
    index = assistants[trajectory.meta["mistake"]["turn"]]
    after = index + 1
    while trajectory.messages[after].role == "tool":
        after += 1
    return trajectory.messages[index], trajectory.messages[index + 1 : after], trajectory.messages[after]


def check_argument_mistake(strategy, trajectory, kind):
    mistake = trajectory.meta["mistake"]
    assert mistake["kind"] == kind and mistake["exposed"] and mistake["exposed_by"] == "tool", mistake
    assert trajectory.passed and strategy.check_format(trajectory) is None
    call, observations, fix = wrong_turn(trajectory)
    arguments = json.loads(call.tool_calls[0].function.arguments)
    assert arguments[mistake["key"]] == mistake["wrong"] != mistake["right"]
    seen = observations[0].content
    assert mistake["observed"] in seen  # the reflection quotes what the tool really returned
    assert str(mistake["right"]) not in seen or observation_fails(seen)
    assert fix.content.startswith("<think>Reflection: ") and mistake["observed"] in fix.content
    assert json.loads(fix.tool_calls[0].function.arguments)[mistake["key"]] == mistake["right"]


def test_tooluse_wrong_request_values_run_against_the_simulator_and_are_exposed():
    from agentkit.envs.tooluse.env import ToolUseEnv

    env = ToolUseEnv()
    tasks = env.load_tasks(TaskSourceConfig(source="generated", n=30, seed=1))
    injected = 0
    for task in tasks:
        strategy, trajectory = teach(env, task, ["argument"])
        if trajectory.meta["mistake"] is None:
            continue
        injected += 1
        check_argument_mistake(strategy, trajectory, "argument")
        assert (
            trajectory.meta["mistake"]["wrong"] in trajectory.messages[3].content
        )  # the simulator answered it
    assert injected >= 15


def test_tooluse_a_value_read_earlier_and_carried_forward_wrong_is_exposed():
    from agentkit.envs.tooluse.env import ToolUseEnv

    env = ToolUseEnv()
    tasks = env.load_tasks(
        TaskSourceConfig(source="generated", n=6, seed=2, options={"templates": ["cancel_pending"]})
    )
    for task in tasks:
        strategy, trajectory = teach(env, task, ["value"])
        check_argument_mistake(strategy, trajectory, "value")
        assert trajectory.meta["mistake"]["turn"] >= 1 and trajectory.meta["mistake"]["key"] == "customer_id"


def test_research_opening_a_neighbouring_result_is_exposed(tmp_path):
    from agentkit.envs.research import ResearchEnv

    env = ResearchEnv(cache_dir=str(tmp_path), progress=False)
    tasks = env.load_tasks(
        TaskSourceConfig(source="generated", n=8, seed=4, options={"docs": 1000, "progress": False})
    )
    exposed = 0
    for task in tasks:
        strategy, trajectory = teach(env, task, ["value"])
        mistake = trajectory.meta["mistake"]
        if mistake is not None and mistake["exposed"]:
            check_argument_mistake(strategy, trajectory, "value")
            exposed += 1
    assert exposed >= 5


def test_mutations_keep_the_program_runnable():
    rng = random.Random(0)
    mutation = mutate_code("product = 3 * 4\nprint(product)", rng)
    assert (
        mutation.code == "product = 3 + 4\nprint(product)"
        and mutation.detail == "wrote '+' where '*' belongs"
    )
    assert mutation.carry("y = 2\n") is None
    assert mutation.carry("x = 1\nproduct = 3 * 4\n") == "x = 1\nproduct = 3 + 4\n"
    assert mutate_code("print(f'{n}')", rng) is None and mutate_code("cd /w && ls", rng) is None
    assert mutate_code("if n < 2:\n    pass", rng).code == "if n <= 2:\n    pass"
    assert mutate_code("print(41)", rng).code == "print(42)"
    assert wrong_value("O1008", {"type": "string"}, rng) == "O1009"
    assert wrong_value("doc-a", {"type": "string"}, rng, "id: doc-a\nid: doc-b") == "doc-b"
    assert wrong_value("pending", {"type": "string", "enum": ["pending", "shipped"]}, rng) == "shipped"
    assert observation_fails("3 of 4 public tests passed.") and not observation_fails(
        "4 of 4 public tests passed."
    )


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "kind", "exposed_by"), [("math", "code", "verifier"), ("code", "code", "tool")]
)
def test_sandboxed_mistakes_run_and_the_real_output_exposes_them(capsys, tmp_path, env, kind, exposed_by):
    """math: a mutated program prints a wrong value, the answer built on it is rejected by the verifier.
    code (repository tasks): a misspelled bash command really fails in the sandbox."""
    need_bwrap()
    out = tmp_path / env
    synth(
        out,
        f"env={env}",
        "policy=reference",
        "strategy=teacher",
        f"strategy.options.mistakes=[{kind}]",
        "env.tasks.n=3",
        capsys=capsys,
    )
    rows = [json.loads(line) for line in (out / "raw" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        mistake = row["meta"]["mistake"]
        assert row["verdict"]["passed"] and mistake["exposed"] and mistake["exposed_by"] == exposed_by, (
            mistake
        )
        tools = [m["content"] for m in row["messages"] if m["role"] == "tool"]
        if env == "math":  # the wrong program's real output differs from the fixed program's
            assert tools[0].strip() == mistake["observed"] and tools[0] != tools[-1]
            feedback = next(
                m["content"] for m in row["messages"] if m["role"] == "user" and "not correct" in m["content"]
            )
            assert mistake["observed"] in feedback or "does not match" in feedback
        else:
            assert "not found" in tools[mistake["turn"]] and mistake["observed"] in tools[mistake["turn"]]
