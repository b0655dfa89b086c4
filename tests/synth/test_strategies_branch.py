"""strategy=branch: one shared prefix per task, its snapshot restored by replay into fresh episodes, k branches
(the policy's continuation and mistaken ones) linked by branch id and prefix hash, on real envs."""

from __future__ import annotations

import asyncio
import json

import pytest
from synth_runs import need_bwrap, rollout, synth

from agentkit.config import TaskSourceConfig
from agentkit.synth.strategies import build_strategy


def branches(env, task, k, **options):
    strategy = build_strategy("branch", options)

    async def all_branches():
        rollouts = [rollout(env, task, sample=s) for s in range(k)]
        return await asyncio.gather(*(strategy.run(r) for r in rollouts))

    return strategy, asyncio.run(all_branches())


def test_tooluse_branches_share_one_prefix_and_a_wrong_value_really_changes_the_world():
    from agentkit.envs.tooluse.env import ToolUseEnv

    env = ToolUseEnv()
    (task,) = env.load_tasks(
        TaskSourceConfig(source="generated", n=1, seed=2, options={"templates": ["cancel_pending"]})
    )
    strategy, runs = branches(env, task, 3, at=1, mistakes=["value"])
    metas = [r.meta["branch"] for r in runs]
    assert len({m["id"] for m in metas}) == 1 and len({m["prefix_sha256"] for m in metas}) == 1
    prefix = metas[0]["prefix_messages"]
    assert all(
        r.messages[:prefix] == runs[0].messages[:prefix] for r in runs
    )  # the same turns, not re-sampled
    assert [m["index"] for m in metas] == [0, 1, 2] and metas[0]["kind"] == "policy"
    assert runs[0].passed and metas[0]["outcome"] == "passed"
    for run, meta in zip(runs[1:], metas[1:], strict=True):
        mistake = run.meta["mistake"]
        assert meta["kind"] == "value" and mistake["key"] == "customer_id"
        # list_orders for another customer: the simulator answers with that customer's orders, and the branch
        # goes on to cancel them, so the world ends wrong and the verifier fails it
        assert not run.passed and meta["outcome"] == "failed" and "state" in run.verdict.reason.lower()
        assert meta["snapshot"]["replayed_calls"] == 1 and meta["snapshot"]["restore_seconds"] >= 0
        assert strategy.check_format(run) is None


@pytest.mark.bwrap
@pytest.mark.slow
def test_math_branches_replay_the_python_session_and_keep_failed_and_passed_paths(capsys, tmp_path):
    need_bwrap()
    out = tmp_path / "branch"
    synth(
        out,
        "env=math",
        "policy=reference",
        "strategy=branch",
        "n_samples=3",
        "env.tasks.n=2",
        "curation.require_passed=false",
        "curation.dedup.near=false",
        capsys=capsys,
    )
    rows = [json.loads(line) for line in (out / "data" / "train-00000.jsonl").read_text().splitlines()]
    by_branch = {}
    for row in rows:
        by_branch.setdefault(row["meta"]["branch"]["id"], []).append(row)
    assert len(by_branch) == 2
    for group in by_branch.values():
        outcomes = {r["meta"]["branch"]["index"]: r["meta"]["branch"]["outcome"] for r in group}
        assert outcomes[0] == "passed" and "failed" in outcomes.values()
        prefix = group[0]["meta"]["branch"]["prefix_messages"]
        assert all(r["messages"][:prefix] == group[0]["messages"][:prefix] for r in group)
        assert (
            group[0]["messages"][prefix - 1]["role"] == "tool"
        )  # the python cell ran before the branch point
        finals = {r["messages"][-1]["content"] for r in group}
        assert len(finals) == len(group)  # different continuations from one state
