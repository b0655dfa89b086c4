"""Ability tags: from the generators and templates onto tasks, from the episode onto trajectories, into the synth
report, and as a filter a training mixture can weight by."""

from __future__ import annotations

import json

from synth_runs import rollout, run_strategy, synth

from agentkit.client import Sampling
from agentkit.config import TaskSourceConfig
from agentkit.records import Trajectory
from agentkit.synth.strategies import build_strategy

MATH = {"knowledge_computation", "complex_reasoning", "metacognition"}
CODE = {"exploration", "localisation", "patching", "testing", "env_comprehension", "self_correction"}
TOOLUSE = {"planning", "function_calling", "state_tracking"}


def test_generated_tasks_carry_the_abilities_of_their_kind():
    from agentkit.envs.math.generator import ABILITIES
    from agentkit.envs.math.generator import make_task as math_task
    from agentkit.envs.tooluse.env import ToolUseEnv

    for kind in ABILITIES:
        task = math_task(0, 0, [kind])
        assert task.abilities and set(task.abilities) <= MATH - {"metacognition"}, kind
    tasks = ToolUseEnv().load_tasks(TaskSourceConfig(source="generated", n=40, seed=0))
    assert all(t.abilities and set(t.abilities) <= TOOLUSE for t in tasks)
    by_template = {t.meta["template"]: set(t.abilities) for t in tasks}
    assert by_template["count_todos"] == {"function_calling"}
    assert by_template["cancel_pending"] == TOOLUSE


def test_a_corrected_mistake_adds_self_correction_to_the_trajectory():
    from agentkit.envs.tooluse.env import ToolUseEnv

    env = ToolUseEnv()
    (task,) = env.load_tasks(
        TaskSourceConfig(source="generated", n=1, seed=2, options={"templates": ["cancel_pending"]})
    )
    one = rollout(env, task, sampling=Sampling(), trajectory_id="t/s0")
    plain = run_strategy(build_strategy("direct"), one)
    taught = run_strategy(build_strategy("teacher", {"mistakes": ["value"]}), one)
    assert plain.abilities == task.abilities and "self_correction" not in plain.abilities
    assert taught.meta["mistake"]["exposed"] and taught.abilities == [*task.abilities, "self_correction"]


def test_synth_reports_the_ability_mix_and_training_filters_by_it(capsys, tmp_path):
    from agentkit.train.config import SourceConfig
    from agentkit.train.sources import SourceStats, TemplateCheck, _trajectory_item

    out = tmp_path / "run"
    synth(
        out,
        "env=tooluse",
        "policy=reference",
        "env.tasks.n=12",
    )
    report = json.loads((out / "report.json").read_text())
    rows = [
        Trajectory.model_validate_json(line)
        for line in (out / "data" / "train-00000.jsonl").read_text().splitlines()
    ]
    expected = {}
    for row in rows:
        for ability in row.abilities:
            expected[ability] = expected.get(ability, 0) + 1
    assert (
        report["abilities"] == dict(sorted(expected.items()))
        and report["abilities"]["function_calling"] == 12
    )
    assert "abilities (kept)" in capsys.readouterr().out

    stats = SourceStats("state")
    source = SourceConfig(path=str(out), abilities=["state_tracking"])
    kept = [r for r in rows if _trajectory_item(r, "x", source, stats, TemplateCheck(None, True)) is not None]
    assert len(kept) == expected["state_tracking"] < len(rows)
    assert stats.skipped["abilities"] == len(rows) - len(kept)
