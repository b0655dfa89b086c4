import asyncio

import pytest
from toy_synth_env import ToySynthEnv, make_task

from agentkit.client import Sampling, completion_from_text
from agentkit.errors import ConfigError, ModelError
from agentkit.loop import EpisodeLimits
from agentkit.records import Provenance
from agentkit.synth.rollout import RolloutEngine, env_policy, model_policy, plan_work
from agentkit.synth.strategies import build_strategy
from agentkit.toolcalls import render_tool_call


class ArithClient:
    """A deterministic model for engine tests: calls ``add`` then answers; can fail or stall on cue."""

    name, endpoint_kind = "arith", "test"

    def __init__(
        self, fail_first: dict[str, int] | None = None, crash: set[str] | None = None, delay: float = 0.0
    ):
        self.fail_first = dict(fail_first or {})
        self.crash = crash or set()
        self.delay = delay
        self.in_flight = self.peak = self.requests = 0
        self.seeds: dict[str, set] = {}

    async def complete(self, messages, tools=None, sampling=None):
        self.requests += 1
        task_id = messages[1].content.split(":")[0]
        self.seeds.setdefault(task_id, set()).add(sampling.seed)
        if self.fail_first.get(task_id, 0) > 0:
            self.fail_first[task_id] -= 1
            raise ModelError("HTTP 503 after retries")
        if task_id in self.crash:
            raise RuntimeError("a bug in a client")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        numbers = [
            int(x) for x in messages[1].content.split("what is ")[1].rstrip("?").replace("*", "+").split("+")
        ]
        a, b, c = numbers
        if messages[-1].role == "tool":
            return completion_from_text(f"The answer is \\boxed{{{messages[-1].content}}}")
        return completion_from_text(render_tool_call("add", {"a": a * b, "b": c}))

    async def aclose(self):
        return None


def engine(env, strategy, policy, **kwargs):
    done, failed, retried = [], [], []
    eng = RolloutEngine(
        env,
        build_strategy(strategy),
        policy,
        sampling=Sampling(),
        limits=EpisodeLimits(max_turns=4),
        provenance=Provenance(strategy=strategy),
        retry_backoff=0.001,
        on_trajectory=lambda t, item: done.append(t),
        on_failure=failed.append,
        on_retry=lambda item, error: retried.append((item.key, error)),
        **kwargs,
    )
    return eng, done, failed, retried


TASKS = [make_task(i, 2 + i, 3, i) for i in range(6)]


def test_every_item_ends_once_with_bounded_concurrency():
    client = ArithClient(delay=0.01)
    items = plan_work(TASKS, 3, "cfg", 0)
    eng, done, failed, _ = engine(ToySynthEnv(), "direct", model_policy(client), concurrency=4)
    asyncio.run(eng.run(items))
    assert sorted(t.meta["key"] for t in done) == sorted(i.key for i in items) and not failed
    assert all(t.passed for t in done)
    assert client.peak == 4
    # each sample has its own reproducible seed, recorded in provenance
    assert all(len(seeds) == 3 for seeds in client.seeds.values())
    assert {t.provenance.seed for t in done} == {i.seed for i in items}


def test_infrastructure_failures_are_retried_then_recorded_never_written():
    env = ToySynthEnv(lose_sandbox=["task-1"])
    client = ArithClient(fail_first={"task-2": 2, "task-3": 99})
    items = plan_work(TASKS, 1, "cfg", 0)
    eng, done, failed, retried = engine(env, "direct", model_policy(client), concurrency=3, retries=2)
    asyncio.run(eng.run(items))
    by_task = {t.task.id: t for t in done}
    assert set(by_task) == {"task-0", "task-2", "task-4", "task-5"}
    assert by_task["task-2"].passed and by_task["task-2"].meta["infra_retries"] == 2
    assert sorted((f.task_id, f.status, f.attempts) for f in failed) == [
        ("task-1", "sandbox_error", 3),
        ("task-3", "model_error", 3),
    ]
    assert all(t.reward is not None for t in done)
    assert len(retried) == 2 + 2 + 2


def test_a_bug_is_recorded_as_a_failure_and_the_run_goes_on():
    items = plan_work(TASKS[:3], 1, "cfg", 0)
    eng, done, failed, retried = engine(ToySynthEnv(), "direct", model_policy(ArithClient(crash={"task-1"})))
    asyncio.run(eng.run(items))
    assert len(done) == 2 and [(f.task_id, f.status) for f in failed] == [("task-1", "exception")]
    assert "RuntimeError: a bug in a client" in failed[0].error and not retried


def test_a_config_error_stops_the_run():
    class NoReference(ToySynthEnv):
        def reference_solver(self, task):
            return None

    env = NoReference()
    eng, done, failed, _ = engine(env, "direct", env_policy(env))
    with pytest.raises(ConfigError, match="no reference solver"):
        asyncio.run(eng.run(plan_work(TASKS, 1, "cfg", 0)))


def test_work_keys_are_content_addressed():
    a = plan_work(TASKS[:2], 2, "cfg", 0)
    assert [i.key for i in a] == [i.key for i in plan_work(TASKS[:2], 2, "cfg", 0)]
    assert len({i.key for i in a}) == 4
    assert {i.key for i in a}.isdisjoint(i.key for i in plan_work(TASKS[:2], 2, "other", 0))
    changed = [TASKS[0].model_copy(update={"prompt": "task-0: what is 9*9+9?"})]
    assert plan_work(changed, 1, "cfg", 0)[0].key != a[0].key
    assert [i.seed for i in a] != [i.seed for i in plan_work(TASKS[:2], 2, "cfg", 1)]
