"""BFCL from the bfcl-eval wheel: our checker agrees with BFCL's own ``ast_checker`` call for call, and
BFCL tasks run through the tool-use env (reference calls pass, wrong ones fail)."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import sys
import types
from pathlib import Path

import jsonschema
import pytest

from agentkit.client import ScriptedClient
from agentkit.config import TaskSourceConfig
from agentkit.envs.tooluse import ToolUseEnv, bfcl
from agentkit.errors import ConfigError, DataError
from agentkit.loop import run_episode
from agentkit.toolcalls import render_tool_call


@pytest.fixture(scope="module")
def wheel_path() -> Path:
    """The wheel from the cache, downloaded with pip on first use; skipped only when PyPI is unreachable."""
    try:
        return bfcl.find_wheel()
    except DataError as exc:
        import httpx

        try:
            httpx.head("https://pypi.org/simple/bfcl-eval/", timeout=10, follow_redirects=True)
        except httpx.HTTPError as net:
            pytest.skip(f"PyPI is unreachable, cannot fetch bfcl-eval {bfcl.BFCL_VERSION}: {net!r}")
        raise AssertionError(f"PyPI is reachable but fetching the bfcl-eval wheel failed: {exc}") from None


@pytest.fixture(scope="module")
def all_tasks(wheel_path):
    with bfcl.BfclWheel(wheel_path) as wheel:
        return bfcl.load_bfcl_tasks(wheel, list(bfcl.CATEGORIES))


@pytest.fixture
def bfcl_ast_checker(wheel_path, monkeypatch):
    """BFCL's own ``ast_checker``, imported from the wheel (its model registry, which pulls every vendor
    SDK, replaced by the one entry the checker reads)."""
    registry = types.ModuleType("bfcl_eval.constants.model_config")
    registry.MODEL_CONFIG_MAPPING = {"agentkit": types.SimpleNamespace(underscore_to_dot=False)}
    monkeypatch.setitem(sys.modules, "bfcl_eval.constants.model_config", registry)
    monkeypatch.syspath_prepend(str(wheel_path))
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

        yield lambda functions, calls, possible, category: ast_checker(
            functions, calls, possible, Language.PYTHON, category, "agentkit"
        )["valid"]
    finally:
        for name in [m for m in sys.modules if m == "bfcl_eval" or m.startswith("bfcl_eval.")]:
            sys.modules.pop(name, None)


def _mutations(calls: list[dict], rng: random.Random) -> list[list[dict]]:
    """Near misses of a correct call list: each breaks one thing BFCL's checker looks at."""
    out = []
    for kind in range(7):
        variant = copy.deepcopy(calls)
        name = next(iter(variant[0]))
        args = variant[0][name]
        param = rng.choice(sorted(args)) if args else None
        if kind == 0:
            variant.pop()
        elif kind == 1:
            variant.append(copy.deepcopy(variant[0]))
        elif kind == 2:
            args["unexpected_param"] = 1
        elif kind == 3 and param:
            args.pop(param)
        elif kind == 4 and param:
            value = args[param]
            args[param] = (
                (value.upper() + " ")
                if isinstance(value, str)
                else (
                    int(value)
                    if isinstance(value, bool)
                    else float(value)
                    if isinstance(value, int)
                    else str(value)
                )
            )
        elif kind == 5 and param:
            value = args[param]
            args[param] = (
                value + "zz" if isinstance(value, str) else [value] if not isinstance(value, list) else []
            )
        elif kind == 6:
            variant[0] = {name + "_x": args}
        variant.reverse() if len(variant) > 1 and kind == 6 else None
        out.append(variant)
    return out


def test_checker_agrees_with_bfcl_on_every_task_and_near_misses(all_tasks, bfcl_ast_checker):
    rng = random.Random(0)
    verdicts = {True: 0, False: 0}
    disagreements = []
    for task in all_tasks:
        meta = task.meta
        reference = [{n: a} for n, a in bfcl.reference_calls(meta["functions"], meta["possible_answer"])]
        for calls in [reference, *_mutations(reference, rng)]:
            theirs = bfcl_ast_checker(meta["functions"], calls, meta["possible_answer"], meta["category"])
            ours = bfcl.check_calls(meta["functions"], calls, meta["possible_answer"], meta["category"])[
                "valid"
            ]
            verdicts[ours] += 1
            if ours != theirs:
                disagreements.append((task.id, calls, ours, theirs))
    assert not disagreements[:5]
    assert len(all_tasks) == 2351 and verdicts[True] > 2000 and verdicts[False] > 10000


def test_tool_schemas_are_valid_json_schema(all_tasks):
    env = ToolUseEnv()
    unique = {
        json.dumps(t.function.parameters, sort_keys=True) for task in all_tasks for t in env.tools(task)
    }
    assert len(unique) > 2000
    for index, text in enumerate(sorted(unique)):
        params = json.loads(text)
        assert params["type"] == "object"
        # Draft 7's metaschema is ~5x faster to check; the loop's 2020-12 validator sees a sample.
        jsonschema.Draft7Validator.check_schema(params)
        if index % 20 == 0:
            jsonschema.Draft202012Validator.check_schema(params)


def test_bfcl_tasks_through_the_env(wheel_path):
    env = ToolUseEnv()
    tasks = env.load_tasks(TaskSourceConfig(source="bfcl", path=str(wheel_path), n=60, seed=0))
    again = env.load_tasks(TaskSourceConfig(source="bfcl", path=str(wheel_path), n=60, seed=0))
    assert [t.id for t in tasks] == [t.id for t in again] and len(tasks) == 60
    assert {t.meta["category"] for t in tasks} == {
        "simple_python",
        "multiple",
        "parallel",
        "parallel_multiple",
    }

    async def run_all():
        return [await run_episode(env, t, env.reference_solver(t)) for t in tasks]

    trajectories = asyncio.run(run_all())
    assert all(t.passed for t in trajectories), [(t.task.id, t.verdict) for t in trajectories if not t.passed]
    assert all(m.role in ("system", "user") for t in tasks for m in env.initial_messages(t))

    task = next(t for t in tasks if t.meta["category"] == "parallel" and len(t.meta["possible_answer"]) >= 2)
    calls = bfcl.reference_calls(task.meta["functions"], task.meta["possible_answer"])
    one_per_turn = [render_tool_call(n, a) for n, a in calls] + ["Done."]
    split = asyncio.run(run_episode(env, task, ScriptedClient(one_per_turn)))
    assert not split.passed and split.verdict.reason.endswith("wrong_count")  # BFCL scores one response
    lenient = ToolUseEnv(calls_scope="all")
    assert asyncio.run(run_episode(lenient, task, ScriptedClient(one_per_turn))).passed
    silent = asyncio.run(run_episode(env, task, ScriptedClient(["I would call some functions."])))
    assert not silent.passed and silent.verdict.reason == "no function call was made"


def test_loader_errors_name_the_problem(wheel_path, tmp_path):
    env = ToolUseEnv()
    with pytest.raises(ConfigError, match="unknown BFCL category 'irrelevance'"):
        env.load_tasks(
            TaskSourceConfig(source="bfcl", path=str(wheel_path), options={"categories": ["irrelevance"]})
        )
    with pytest.raises(DataError, match="no bfcl-eval wheel here"):
        env.load_tasks(TaskSourceConfig(source="bfcl", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="unknown bfcl option"):
        env.load_tasks(
            TaskSourceConfig(source="bfcl", path=str(wheel_path), options={"category": ["simple"]})
        )


@pytest.fixture
def bfcl_multi_turn_checker(wheel_path, monkeypatch):
    """BFCL's own ``multi_turn_checker`` from the wheel; each call gets fresh simulator instances."""
    monkeypatch.syspath_prepend(str(wheel_path))
    counter = iter(range(10**9))
    try:
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

        def check(task, turns):
            decoded = [
                [[f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in step] for step in turn]
                for turn in turns
            ]
            entry = {
                "id": task.id,
                "initial_config": task.meta["initial_config"],
                "involved_classes": task.meta["involved_classes"],
            }
            return multi_turn_checker(
                decoded, task.meta["ground_truth"], entry, task.meta["category"], f"agentkit{next(counter)}"
            )["valid"]

        yield check
    finally:
        for name in [m for m in sys.modules if m == "bfcl_eval" or m.startswith("bfcl_eval.")]:
            sys.modules.pop(name, None)


def _conversation(task, turns) -> list:
    from agentkit.records import Message, ToolCall

    messages = [Message(role="system", content="s")]
    for index, steps in enumerate(turns):
        messages.append(Message(role="user", content=f"turn {index}"))
        for number, step in enumerate(steps):
            calls = [ToolCall.make(f"c{index}_{number}_{i}", n, a) for i, (n, a) in enumerate(step)]
            messages.append(Message(role="assistant", content="", tool_calls=calls))
        messages.append(Message(role="assistant", content="Done."))
    return messages


def test_multi_turn_checker_agrees_with_bfcl(wheel_path, bfcl_multi_turn_checker):
    from agentkit.envs.tooluse import bfcl_multi_turn

    env = ToolUseEnv(bfcl_path=str(wheel_path))
    tasks = env.load_tasks(
        TaskSourceConfig(source="bfcl", n=40, seed=0, options={"categories": ["multi_turn_base"]})
    )
    rng = random.Random(1)
    outcomes = {True: 0, False: 0}
    disagreements = []
    for task in tasks:
        reference = [
            [calls] if calls else [] for calls in bfcl_multi_turn.reference_turns(task.meta, wheel_path)
        ]
        variants = [reference]
        busy = [i for i, turn in enumerate(reference) if turn and turn[0]]
        for _ in range(3):
            variant = copy.deepcopy(reference)
            i = rng.choice(busy)
            step = variant[i][0]
            kind = rng.randrange(4)
            if kind == 0:
                variant[i] = []  # skip a whole request
            elif kind == 1:
                step.pop(rng.randrange(len(step)))  # skip one call
            elif kind == 2 and step[-1][1]:
                name, args = step[-1]
                key = rng.choice(sorted(args))
                args[key] = args[key] + "_x" if isinstance(args[key], str) else 0
            else:
                variant[i].append([step[0]])  # repeat a call in a second step
            variants.append(variant)
        for turns in variants:
            ours = bfcl_multi_turn.check_multi_turn(task.meta, _conversation(task, turns), wheel_path)[
                "valid"
            ]
            theirs = bfcl_multi_turn_checker(task, turns)
            outcomes[ours] += 1
            if ours != theirs:
                disagreements.append((task.id, ours, theirs))
    assert not disagreements[:5]
    assert outcomes[True] >= 40 and outcomes[False] >= 40


def test_multi_turn_tasks_through_the_env(wheel_path):
    from agentkit.loop import EpisodeLimits

    env = ToolUseEnv(bfcl_path=str(wheel_path))
    tasks = env.load_tasks(
        TaskSourceConfig(source="bfcl", n=12, seed=0, options={"categories": ["multi_turn_base"]})
    )
    limits = EpisodeLimits(max_turns=40)

    async def run_all():
        return [await run_episode(env, t, env.reference_solver(t), limits=limits) for t in tasks]

    trajectories = asyncio.run(run_all())
    assert all(t.passed for t in trajectories), [(t.task.id, t.verdict) for t in trajectories if not t.passed]
    for trajectory in trajectories:
        users = [m for m in trajectory.messages if m.role == "user"]
        assert len(users) == len(trajectory.task.meta["turns"])  # every turn was delivered, in order
        assert trajectory.stats.tool_calls >= 1
    task = tasks[0]
    lazy = asyncio.run(
        run_episode(env, task, ScriptedClient(["Done."] * len(task.meta["turns"])), limits=limits)
    )
    assert lazy.status.value == "completed" and not lazy.passed
    assert lazy.verdict.reason == "multi_turn:empty_turn_model_response"
