from functools import partial

import pytest
import synth_runs
from synth_runs import run_strategy as run
from toy_synth_env import ToySynthEnv, make_task

from agentkit.client import ScriptedClient
from agentkit.errors import ConfigError
from agentkit.records import Status
from agentkit.synth.rollout import env_policy, model_policy
from agentkit.synth.strategies import (
    PHASES,
    Candidate,
    build_strategy,
    change_answer,
    misspell_code,
    phase_report,
)
from agentkit.toolcalls import render_tool_call

rollout = partial(synth_runs.rollout, max_turns=8)


TASK = make_task(0, 3, 4, 10)  # 3*4+10 = 22


def test_direct_runs_the_plain_loop_with_a_model():
    client = ScriptedClient([render_tool_call("add", {"a": 12, "b": 10}), "The answer is \\boxed{22}"])
    trajectory = run(build_strategy("direct"), rollout(ToySynthEnv(), TASK, model_policy(client)))
    assert trajectory.status == Status.completed and trajectory.passed
    assert trajectory.provenance.strategy == "direct" and trajectory.id == "toy-synth/task-0/s0"


def _phase_script():
    return [
        "<think>Analysis: a*b+c with a=3, b=4, c=10.\nPlan: multiply with python, then add.</think>"
        + render_tool_call("python", {"code": "print(3*4)"}),
        "<think>Reflection: the product is 12.</think>" + render_tool_call("add", {"a": 12, "b": 10}),
        "<think>Reflection: 12+10=22 agrees with a rough estimate.</think>\nSummary: the answer is \\boxed{22}",
    ]


def test_agentic_cot_asks_for_the_five_phases_and_records_them():
    client = ScriptedClient(_phase_script())
    strategy = build_strategy("agentic_cot")
    trajectory = run(strategy, rollout(ToySynthEnv(), TASK, model_policy(client)))
    system = client.calls[0][0].content
    assert all(f"\n{phase.capitalize()}:" in system for phase in PHASES)
    phases = trajectory.meta["phases"]
    assert phases["complete"], phases["problems"]
    assert phases["sequence"] == [
        "analysis",
        "plan",
        "action",
        "reflection",
        "action",
        "reflection",
        "summary",
    ]
    assert phases["per_turn"][0] == ["analysis", "plan", "action"]
    assert strategy.check_format(trajectory) is None and trajectory.passed


def test_agentic_cot_accepts_the_reference_solver_format():
    env = ToySynthEnv()
    strategy = build_strategy("agentic_cot")
    trajectory = run(strategy, rollout(env, TASK, env_policy(env)))
    assert trajectory.passed and trajectory.meta["phases"]["missing"] == ["analysis", "summary"]
    assert strategy.check_format(trajectory).startswith("phases: ")


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        (["Plan: add.\nSummary: \\boxed{22}"], "missing phases: analysis, action, reflection"),
        (
            ["Analysis: x\nPlan: y\nAction: z\nSummary: s\nReflection: r"],
            "the last turn does not end with the summary",
        ),
        (
            ["Analysis: x\nPlan: y\nSummary: s" + render_tool_call("add", {"a": 1, "b": 2})],
            "tool calls in the summary",
        ),
        (["Plan: p\nAnalysis: a\nAction: x\nReflection: r\nSummary: s"], "out of order"),
    ],
)
def test_phase_check_catches_broken_formats(script, problem):
    from agentkit.client import completion_from_text

    messages = [completion_from_text(text).message for text in script]
    report = phase_report(messages)
    assert not report["complete"] and any(problem in p for p in report["problems"]), report["problems"]


def test_reflect_feeds_the_verdict_back_and_keeps_both_paths():
    client = ScriptedClient(
        [
            render_tool_call("add", {"a": 12, "b": 11}),
            "The answer is \\boxed{23}",
            render_tool_call("add", {"a": 12, "b": 10}),
            "The answer is \\boxed{22}",
        ]
    )
    trajectory = run(
        build_strategy("reflect", {"max_retries": 2}), rollout(ToySynthEnv(), TASK, model_policy(client))
    )
    assert trajectory.passed and trajectory.meta["recovered"] and trajectory.meta["attempts"] == 2
    assert [v["passed"] for v in trajectory.meta["verdicts"]] == [False, True]
    feedback = [m for m in trajectory.messages if m.role == "user"][1]
    assert "not correct" in feedback.content and "expected 22" in feedback.content
    contents = [m.content for m in trajectory.messages if m.role == "assistant"]
    assert "The answer is \\boxed{23}" in contents and contents[-1] == "The answer is \\boxed{22}"
    assert trajectory.stats.turns == 4 and trajectory.stats.tool_calls == 2
    # the retry saw the whole failed attempt plus the feedback
    assert len(client.calls[2]) == len(client.calls[1]) + 2


def test_reflect_gives_up_after_k_retries():
    client = ScriptedClient(["\\boxed{1}", "\\boxed{2}", "\\boxed{3}", "\\boxed{4}"])
    trajectory = run(
        build_strategy("reflect", {"max_retries": 1}), rollout(ToySynthEnv(), TASK, model_policy(client))
    )
    assert not trajectory.passed and trajectory.meta["attempts"] == 2 and not trajectory.meta["recovered"]
    assert len(client.calls) == 2


def test_reflect_does_not_retry_an_episode_that_ended_without_an_answer():
    client = ScriptedClient([render_tool_call("add", {"a": 1, "b": 1})] * 5)
    trajectory = run(
        build_strategy("reflect"),
        rollout(ToySynthEnv(), TASK, model_policy(client), max_turns=2),
    )
    assert trajectory.status == Status.max_turns and trajectory.meta["attempts"] == 1


@pytest.mark.parametrize("kind", ["code", "typo", "missing_argument", "answer"])
def test_teacher_injects_a_mistake_exposed_by_a_real_observation_then_corrects_it(kind):
    env = ToySynthEnv()
    strategy = build_strategy("teacher", {"mistakes": [kind]})
    trajectory = run(strategy, rollout(env, TASK, env_policy(env)))
    mistake = trajectory.meta["mistake"]
    assert trajectory.passed and mistake["kind"] == kind and mistake["exposed"], mistake
    assert strategy.check_format(trajectory) is None
    ids = [c.id for m in trajectory.messages for c in m.tool_calls or []]
    answered = [m.tool_call_id for m in trajectory.messages if m.role == "tool"]
    assert ids == answered and len(set(ids)) == len(ids)  # every call answered once, ids consistent
    tools = [m.content for m in trajectory.messages if m.role == "tool"]
    if kind == "code":  # 3 * 4 became 3 + 4: it runs, prints 7, the answer built on it (17) is rejected
        assert tools[:2] == ["7\n", "17"] and mistake["exposed_by"] == "verifier"
        assert mistake["carried_to_answer"] and mistake["observed"] == "7"
        users = [m.content for m in trajectory.messages if m.role == "user"]
        assert "got '17'" in users[1] and "printed" not in users[1]
        fix = trajectory.messages[
            trajectory.messages.index(
                next(m for m in trajectory.messages if m.role == "user" and "17" in m.content)
            )
            + 1
        ]
        assert (
            "rejected my answer" in fix.content and "(7)" in fix.content and "product = 3 + 4" in fix.content
        )
        assert tools[2:] == ["12\n", "22"]
    elif kind == "typo":
        assert "NameError" in tools[0] and tools[1].strip() == "12" and mistake["exposed_by"] == "tool"
    elif kind == "missing_argument":
        assert "required property" in tools[0]
    else:
        users = [m.content for m in trajectory.messages if m.role == "user"]
        assert len(users) == 2 and "not correct" in users[1]
        assert (
            "\\boxed{22}" in trajectory.messages[-1].content
            and "Reflection" in trajectory.messages[-1].content
        )
    assert trajectory.messages[-1].content.count("<think>") == 1


def test_teacher_samples_differ_and_need_no_model():
    env = ToySynthEnv()
    strategy = build_strategy("teacher")
    assert strategy.needs_model is False
    kinds = {
        run(strategy, rollout(env, TASK, env_policy(env), sample=s)).meta["mistake"]["kind"]
        for s in range(12)
    }
    assert kinds == {"code", "answer"}  # the toy env has no read-only tool for argument and value mistakes


def test_teacher_without_a_reference_solver_is_a_config_error():
    class NoReference(ToySynthEnv):
        def reference_solver(self, task):
            return None

    env = NoReference()
    with pytest.raises(ConfigError, match="no reference solver"):
        run(build_strategy("teacher"), rollout(env, TASK, env_policy(env)))


def test_rejection_keeps_the_shortest_passing_sample():
    group = [
        Candidate(id=f"t/s{i}", task_id="t", sample=i, status="completed", passed=p, chars=c)
        for i, (p, c) in enumerate([(True, 300), (False, 50), (True, 120), (True, 120)])
    ]
    assert [c.sample for c in build_strategy("rejection").select(group)] == [2]
    assert [c.sample for c in build_strategy("rejection", {"keep": 2}).select(group)] == [2, 3]
    assert build_strategy("rejection").select(group[1:2]) == []


def test_mistake_helpers():
    code, detail = misspell_code("total = 3 * 4\nprint(total)")
    assert code == "total = 3 * 4\nprint(ttoal)" and "total" in detail
    assert misspell_code("print(37*48-125)")[0] == "pirnt(37*48-125)"
    assert misspell_code("ls -la")[0] == "lss -la"
    assert (
        misspell_code("cd /workspace/repo && pytest -q tests")[0] == "cd /workspace/repo && ptyest -q tests"
    )
    assert change_answer("<think>3 and 4</think>The answer is \\boxed{22}.")[0].endswith("\\boxed{23}.")
    assert change_answer("<think>12</think>no number here") is None


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, "unknown strategy 'nope'"),
        ("reflect", {"max_retry": 2}, "strategy.options for 'reflect': .*max_retry"),
        ("teacher", {"mistakes": ["typos"]}, "mistakes must be"),
    ],
)
def test_bad_strategy_config(name, options, message):
    with pytest.raises(ConfigError, match=message):
        build_strategy(name, options)
