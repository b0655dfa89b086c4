"""The env contract: every env registered in ``agentkit.registry.ENVS`` passes these, against the real
bwrap sandbox. One property per test; each env gets one instance (and one event loop) per module."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import psutil
import pytest

from agentkit.client import Completion, ScriptedClient
from agentkit.config import SandboxConfig, TaskSourceConfig
from agentkit.env import Env
from agentkit.envs.tasks import split_of
from agentkit.loop import EpisodeLimits, run_episode
from agentkit.records import Message, Status, Task, ToolSpec
from agentkit.registry import ENVS, SANDBOXES
from agentkit.toolcalls import render_tool_call

pytestmark = pytest.mark.bwrap

ENV_NAMES = ENVS.names()
GENERATED = TaskSourceConfig(source="generated", n=3, seed=0)
SANDBOX = SandboxConfig(backend="bwrap", pool_size=2)
NO_TOOLS_ANSWER = "<think>I will answer without using any tool.</think>I could not complete this task."
LIMITS = EpisodeLimits(max_turns=12, max_seconds=120)


@dataclass
class Harness:
    name: str
    env: Env
    tasks: list[Task]
    runner: asyncio.Runner

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)


@pytest.fixture(scope="module", params=ENV_NAMES)
def harness(request) -> Iterator[Harness]:
    runner = asyncio.Runner()
    env = ENVS.get(request.param)(sandbox=SANDBOX)
    try:
        tasks = env.load_tasks(GENERATED)
        yield Harness(request.param, env, tasks, runner)
    finally:
        runner.run(env.aclose())
        runner.close()


def test_env_is_registered_with_a_name_and_version(harness: Harness) -> None:
    assert type(harness.env).name == harness.name
    assert type(harness.env).version


def test_tools_are_valid_json_schemas(harness: Harness) -> None:
    for task in harness.tasks:
        specs = harness.env.tools(task)
        assert specs, f"{task.id}: no tools"
        names = [spec.name for spec in specs]
        assert len(set(names)) == len(names), f"{task.id}: duplicate tool names {names}"
        for spec in specs:
            assert isinstance(spec, ToolSpec)
            assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", spec.name), spec.name
            params = spec.function.parameters
            assert params.get("type") == "object", f"{spec.name}: parameters must be an object schema"
            jsonschema.validators.validator_for(params, default=jsonschema.Draft202012Validator).check_schema(
                params
            )
            json.dumps(spec.model_dump())


def test_initial_messages_are_system_then_user(harness: Harness) -> None:
    for task in harness.tasks:
        messages = harness.env.initial_messages(task)
        assert [m.role for m in messages] == ["system", "user"]
        system, user = messages
        assert "<tool_call>" in system.content and "<think>" in system.content
        assert user.content == task.prompt and task.prompt.strip()
        answer = task.meta.get("answer")
        if isinstance(answer, str) and len(answer) >= 8:
            assert answer not in system.content + user.content, (
                f"{task.id}: the answer leaks into the messages"
            )


def test_generated_tasks_are_deterministic(harness: Harness) -> None:
    again = harness.env.load_tasks(TaskSourceConfig(source="generated", n=3, seed=0))
    assert [t.model_dump() for t in again] == [t.model_dump() for t in harness.tasks]
    assert len(harness.tasks) == 3 and len({t.id for t in harness.tasks}) == 3
    assert all(t.env == harness.name for t in harness.tasks)
    other_seed = harness.env.load_tasks(TaskSourceConfig(source="generated", n=3, seed=1))
    assert [t.id for t in other_seed] != [t.id for t in harness.tasks]


def test_generated_splits_are_disjoint_and_stable(harness: Harness) -> None:
    split = {
        s: harness.env.load_tasks(
            TaskSourceConfig(source="generated", n=3, seed=0, split=s, test_fraction=0.5)
        )
        for s in ("train", "test")
    }
    assert not {t.id for t in split["train"]} & {t.id for t in split["test"]}
    for name, tasks in split.items():
        assert len(tasks) == 3
        assert all(split_of(t.id, 0.5) == name for t in tasks)


def test_reference_solver_passes_every_task(harness: Harness) -> None:
    for task in harness.tasks:
        solver = harness.env.reference_solver(task)
        assert solver is not None, f"{task.id}: generated tasks need a reference solver"
        trajectory = harness.run(run_episode(harness.env, task, solver, limits=LIMITS))
        assert trajectory.status == Status.completed, (task.id, trajectory.status, trajectory.error)
        assert trajectory.passed and trajectory.reward == 1.0, (task.id, trajectory.verdict)
        assert trajectory.stats.tool_calls >= 1, f"{task.id}: the reference solver must really use the tools"
        assert trajectory.stats.tool_errors == 0, [m.content for m in trajectory.messages if m.role == "tool"]


def test_answer_without_the_tools_fails(harness: Harness) -> None:
    for task in harness.tasks:
        trajectory = harness.run(
            run_episode(harness.env, task, ScriptedClient([NO_TOOLS_ANSWER]), limits=LIMITS)
        )
        assert trajectory.status == Status.completed, (task.id, trajectory.error)
        assert trajectory.verdict is not None and not trajectory.passed and trajectory.reward == 0.0
        assert trajectory.verdict.reason


def _example(schema: dict[str, Any]) -> Any:
    """A schema-valid value with nonsense content: a well-formed call the tool must still survive."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(props.get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        return [_example(schema.get("items", {}))] * max(1, schema.get("minItems", 0))
    if kind == "integer":
        return max(schema.get("minimum", -7), min(-7, schema.get("maximum", -7)))
    if kind == "number":
        return max(schema.get("minimum", -7.5), min(-7.5, schema.get("maximum", -7.5)))
    if kind == "boolean":
        return True
    if "pattern" in schema:
        return {r"^\d{4}-\d{2}-\d{2}$": "1999-13-45", r"^\d{2}:\d{2}$": "99:99"}.get(schema["pattern"], "zz")
    return "nonexistent_zz9"


def test_bad_tool_calls_become_observations(harness: Harness) -> None:
    task = harness.tasks[0]
    tool = harness.env.tools(task)[0]
    required = tool.function.parameters.get("required", [])
    wrong_type = {required[0]: {"not": "what the schema wants"}} if required else {"__bogus__": 1}
    script = [
        render_tool_call("no_such_tool_zz", {}),
        render_tool_call(tool.name, wrong_type),
        '<tool_call>{"name": "' + tool.name + '", "arguments": {unquoted}</tool_call>',
        render_tool_call(tool.name, _example(tool.function.parameters)),
        NO_TOOLS_ANSWER,
    ]
    trajectory = harness.run(run_episode(harness.env, task, ScriptedClient(script), limits=LIMITS))
    assert trajectory.status == Status.completed, (trajectory.status, trajectory.error)
    observations = [m.content for m in trajectory.messages if m.role == "tool"]
    assert len(observations) == 4
    assert "unknown tool" in observations[0]
    assert observations[1].startswith("error:") and "invalid arguments" in observations[1]
    assert observations[2].startswith("error:")
    assert observations[3].strip()
    assert trajectory.stats.tool_errors >= 2 and trajectory.stats.parse_errors == 1
    assert not trajectory.passed


class _RaisesAfterFirstTurn:
    """Plays the reference solver's first turn (a real tool call), then fails like a crashing caller."""

    name, endpoint_kind = "raises", "scripted"

    def __init__(self, inner: Any):
        self.inner, self.turns = inner, 0

    async def complete(self, messages: list[Message], tools: Any = None, sampling: Any = None) -> Completion:
        self.turns += 1
        if self.turns > 1:
            raise RuntimeError("the caller crashed mid-episode")
        return await self.inner.complete(messages, tools, sampling)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_episodes_release_everything_when_the_body_raises(monkeypatch) -> None:
    """An episode whose caller blows up closes its sandboxes at once (not later, when the garbage
    collector finalizes a forgotten context manager), and ``aclose`` leaves no process behind."""
    import agentkit.envs.sandbox.pool as pool_module

    created: list[Any] = []
    pooled: set[int] = set()
    acquired: list[Any] = []
    closed: set[int] = set()
    real_factory = SANDBOXES.get("bwrap")
    real_create = pool_module.create_sandbox
    real_acquire = pool_module.SandboxPool.acquire

    def recording_factory(*args: Any, **kwargs: Any) -> Any:
        sandbox = real_factory(*args, **kwargs)
        original_close = sandbox.close

        async def close() -> None:
            closed.add(id(sandbox))
            await original_close()

        sandbox.close = close
        created.append(sandbox)
        return sandbox

    def pool_create(*args: Any, **kwargs: Any) -> Any:
        sandbox = real_create(*args, **kwargs)
        pooled.add(id(sandbox))
        return sandbox

    async def recording_acquire(self: Any) -> Any:
        sandbox = await real_acquire(self)
        acquired.append(sandbox)
        return sandbox

    monkeypatch.setitem(SANDBOXES._entries, "bwrap", recording_factory)
    monkeypatch.setattr(pool_module, "create_sandbox", pool_create)
    monkeypatch.setattr(pool_module.SandboxPool, "acquire", recording_acquire)

    def episode_owned() -> list[Any]:
        return acquired + [s for s in created if id(s) not in pooled and s not in acquired]

    async def crash_one(env: Env, task: Task) -> None:
        client = _RaisesAfterFirstTurn(env.reference_solver(task))
        with pytest.raises(RuntimeError, match="crashed mid-episode"):
            await run_episode(env, task, client, limits=LIMITS)
        # No await since the exception: only an explicit close can have run.
        still_open = [s for s in episode_owned() if id(s) not in closed]
        assert not still_open, f"{env.name}: {len(still_open)} sandbox(es) left open by a crashed episode"

    async def scenario(name: str) -> None:
        env = ENVS.get(name)(sandbox=SANDBOX)
        try:
            for task in env.load_tasks(TaskSourceConfig(source="generated", n=2, seed=3)):
                await crash_one(env, task)
        finally:
            await env.aclose()
        leaked = [s for s in created if id(s) not in closed]
        assert not leaked, f"{name}: {len(leaked)} of {len(created)} sandboxes still open after aclose()"

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    with asyncio.Runner() as runner:
        for name in ENV_NAMES:
            runner.run(scenario(name))
    psutil.wait_procs([p for p in me.children(recursive=True) if p.pid not in before], timeout=5)
    left = [
        p for p in me.children(recursive=True) if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert not left, [" ".join(p.cmdline()[:4]) for p in left]
