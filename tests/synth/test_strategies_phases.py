"""Every env's reference solver writes the five Agentic-CoT phases, checked on real envs and real tools."""

from __future__ import annotations

import json

import pytest
from synth_runs import need_bwrap, rollout, run_strategy, synth

from agentkit.client import Sampling
from agentkit.config import TaskSourceConfig
from agentkit.synth.strategies import build_strategy, phase_report


def _run(env, task):
    return run_strategy(build_strategy("agentic_cot"), rollout(env, task, sampling=Sampling()))


def test_tooluse_reference_writes_the_five_phases_for_every_template():
    from agentkit.envs.tooluse.env import ToolUseEnv
    from agentkit.envs.tooluse.generator import TEMPLATES

    env = ToolUseEnv()
    for name in TEMPLATES:
        (task,) = env.load_tasks(
            TaskSourceConfig(source="generated", n=1, seed=3, options={"templates": [name]})
        )
        trajectory = _run(env, task)
        report = trajectory.meta["phases"]
        assert trajectory.passed, (name, trajectory.verdict)
        assert report["complete"], (name, report["problems"])
        assert report["per_turn"][0][:2] == ["analysis", "plan"], name


def test_research_reference_writes_the_five_phases(tmp_path):
    from agentkit.envs.research import ResearchEnv

    env = ResearchEnv(cache_dir=str(tmp_path), progress=False)
    tasks = env.load_tasks(
        TaskSourceConfig(source="generated", n=10, seed=5, options={"docs": 1000, "progress": False})
    )
    for task in tasks:
        trajectory = _run(env, task)
        assert trajectory.passed, trajectory.verdict
        assert trajectory.meta["phases"]["complete"], trajectory.meta["phases"]["problems"]
        last = trajectory.messages[-1].content
        assert "\nSummary: " in last and last.rstrip().endswith("</answer>")


def test_phase_aliases_of_the_research_prompt_count_as_their_phase():
    from agentkit.records import Message

    messages = [
        Message(role="assistant", content="<think>Analysis: a\nPlan: b\nSearch: c</think>"),
        Message(role="assistant", content="<think>Cross-check: d</think>\nSummary: e"),
    ]
    assert phase_report(messages)["sequence"] == ["analysis", "plan", "action", "reflection", "summary"]


@pytest.mark.bwrap
@pytest.mark.slow
@pytest.mark.parametrize(("env", "n"), [("math", 8), ("code", 3)])
def test_sandboxed_reference_solvers_keep_every_episode_under_agentic_cot(capsys, tmp_path, env, n):
    need_bwrap()
    out = tmp_path / env
    synth(
        out,
        f"env={env}",
        "policy=reference",
        "strategy=agentic_cot",
        f"env.tasks.n={n}",
        capsys=capsys,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["curation"]["kept"] == n, report["curation"]
    rows = [json.loads(line) for line in (out / "data" / "train-00000.jsonl").read_text().splitlines()]
    assert all(r["meta"]["phases"]["complete"] for r in rows)
