"""agentic_cot_rewrite: a scripted teacher's rewrites, checked by the real math env and its verifier."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from rewrites import BAD, GOOD, TOO_LONG, WRONG_ORDER
from synth_runs import rollout, run_strategy, synth

from agentkit.client import Sampling, ScriptedClient
from agentkit.config import EnvConfig, TaskSourceConfig
from agentkit.env import build_env
from agentkit.errors import ConfigError
from agentkit.records import Task
from agentkit.synth.rewrite import render_phases, split_phases, summary_problems
from agentkit.synth.rollout import model_policy
from agentkit.synth.strategies import build_strategy

ROWS = Path(__file__).parent / "assets" / "long_cot.jsonl"
FIELDS = {"id": "qid", "prompt": "question", "answer": "final", "cot": "reasoning"}


@pytest.fixture(scope="module")
def env_and_tasks():
    env = build_env(EnvConfig(name="math"))
    tasks = env.load_tasks(TaskSourceConfig(source="jsonl", path=str(ROWS), fields=FIELDS))
    yield env, {t.id: t for t in tasks}
    asyncio.run(env.aclose())


def rewrite(env, task, text, **options):
    client = ScriptedClient([text], name="teacher")
    one = rollout(
        env, task, model_policy(client), sampling=Sampling(), max_turns=2, trajectory_id=f"math/{task.id}/s0"
    )
    strategy = build_strategy("agentic_cot_rewrite", options)
    trajectory = run_strategy(strategy, one)
    return strategy, trajectory, client


def test_fields_map_the_row_onto_question_cot_and_answer(env_and_tasks):
    _, tasks = env_and_tasks
    task = tasks["cot-1"]
    assert task.prompt == "What is 37*48-125?" and task.meta["answer"] == "1651"
    assert task.meta["cot"].startswith("Okay, let me think")


@pytest.mark.parametrize("row", sorted(GOOD))
def test_a_good_rewrite_is_kept_as_one_five_phase_turn(env_and_tasks, row):
    env, tasks = env_and_tasks
    strategy, trajectory, client = rewrite(env, tasks[row], GOOD[row])
    request = client.calls[0]
    assert request[0].role == "system" and "Analysis:" in request[0].content
    assert tasks[row].meta["cot"] in request[1].content and tasks[row].meta["answer"] in request[0].content
    assert trajectory.passed, trajectory.verdict
    check = trajectory.meta["rewrite"]
    assert check["problems"] == [] and check["reduction"] >= 1.5, check
    assert strategy.check_format(trajectory) is None
    assert trajectory.meta["phases"]["complete"]
    last = trajectory.messages[-1]
    assert (
        last.role == "assistant"
        and last.content.startswith("<think>Analysis:")
        and "</think>\nSummary:" in last.content
    )
    assert [m.role for m in trajectory.messages] == ["system", "user", "assistant"]


@pytest.mark.parametrize("row", sorted(BAD))
def test_a_bad_rewrite_is_kept_as_a_failure_with_its_reason(env_and_tasks, row):
    env, tasks = env_and_tasks
    text, checks = BAD[row]
    strategy, trajectory, _ = rewrite(env, tasks[row], text)
    problems = trajectory.meta["rewrite"]["problems"]
    assert [p.split(":")[0] for p in problems] == checks, problems
    assert strategy.check_format(trajectory).startswith(f"rewrite: {checks[0]}:")
    if "answer" in checks:
        assert not trajectory.passed and "24" in problems[0]  # the env's verifier itself rejects 24
    else:
        assert trajectory.passed and "12600" in problems[0]


def test_phases_out_of_order_or_missing_are_rejected(env_and_tasks):
    env, tasks = env_and_tasks
    _, trajectory, _ = rewrite(env, tasks["cot-1"], WRONG_ORDER)
    assert trajectory.meta["rewrite"]["problems"][0].startswith("phases: expected analysis -> plan")
    _, trajectory, _ = rewrite(env, tasks["cot-1"], GOOD["cot-1"].replace("Reflection:", "Also:"))
    assert trajectory.meta["rewrite"]["problems"][0] == "phases: missing reflection"


def test_text_without_any_phase_is_a_failure_not_a_crash(env_and_tasks):
    env, tasks = env_and_tasks
    strategy, trajectory, _ = rewrite(env, tasks["cot-2"], "210 210 the the the")
    problems = trajectory.meta["rewrite"]["problems"]
    assert problems[0] == "phases: missing analysis, plan, action, reflection, summary"
    assert strategy.check_format(trajectory).startswith("rewrite: phases")


def test_a_rewrite_that_is_not_shorter_fails_the_length_check(env_and_tasks):
    env, tasks = env_and_tasks
    _, trajectory, _ = rewrite(env, tasks["cot-1"], TOO_LONG)
    (problem,) = trajectory.meta["rewrite"]["problems"]
    assert problem.startswith("length:") and trajectory.passed  # a right answer, but not a rewrite
    _, trajectory, _ = rewrite(env, tasks["cot-1"], GOOD["cot-1"], min_reduction=10)
    assert trajectory.meta["rewrite"]["problems"][0].startswith("length:")


def test_split_and_render_phases():
    sections = split_phases(
        "Sure! <think>**Analysis:** a\n## Plan: b\nAction: c</think>\nReflection: d\nSummary: e"
    )
    assert sections == [
        ("analysis", "a"),
        ("plan", "b"),
        ("action", "c"),
        ("reflection", "d"),
        ("summary", "e"),
    ]
    assert (
        render_phases(sections) == "<think>Analysis: a\nPlan: b\nAction: c\nReflection: d</think>\nSummary: e"
    )
    assert split_phases("an untrained model's text, no labels") == []
    assert summary_problems([("action", "x = 6"), ("summary", "the answer is 6")], "q", "6") == []
    assert summary_problems([("action", "x = 6"), ("summary", "6, and 7")], "q", "6")[0].endswith("7")
    assert summary_problems([("action", "done"), ("summary", "Paris")], "q", "Paris")[0].startswith(
        "the answer"
    )


def test_a_row_without_the_mapped_field_is_a_config_error(env_and_tasks):
    env, _ = env_and_tasks
    task = Task(id="x", env="math", prompt="1+1?", meta={"answer": "2"})
    with pytest.raises(ConfigError, match=r"env.tasks.fields.cot"):
        rewrite(env, task, GOOD["cot-1"])
    with pytest.raises(ConfigError, match="min_reduction"):
        build_strategy("agentic_cot_rewrite", {"min_reduction": 0})


def test_synth_rewrites_rows_through_a_served_teacher(capsys, tmp_path):
    """The CLI path: a JSONL source with a field mapping, a teacher over the OpenAI API, curated output."""
    from flaky_openai import ServerThread
    from rewrites import create_teacher_app

    rows = {json.loads(line)["question"]: json.loads(line)["qid"] for line in ROWS.read_text().splitlines()}
    out = tmp_path / "rewrite"
    with ServerThread(create_teacher_app(rows)) as server:
        synth(
            out,
            "env=math",
            "env.tasks.source=jsonl",
            f"env.tasks.path={ROWS}",
            *[f"+env.tasks.fields.{k}={v}" for k, v in FIELDS.items()],
            "strategy=agentic_cot_rewrite",
            f"model.base_url={server.base_url}",
            "model.name=teacher",
            capsys=capsys,
        )
    report = json.loads((out / "report.json").read_text())
    assert report["curation"] == {"kept": 4, "dropped": {"format": 1, "verdict": 1}}  # 12600; the answer 24
    kept = [json.loads(line) for line in (out / "data" / "train-00000.jsonl").read_text().splitlines()]
    assert sorted(r["task"]["id"] for r in kept) == sorted(GOOD)
    assert all(r["provenance"]["strategy"] == "agentic_cot_rewrite" for r in kept)
    raw = {
        r["task"]["id"]: r for r in map(json.loads, (out / "raw" / "rollouts.jsonl").read_text().splitlines())
    }
    for row, (_, checks) in BAD.items():
        assert [p.split(":")[0] for p in raw[row]["meta"]["rewrite"]["problems"]] == checks
