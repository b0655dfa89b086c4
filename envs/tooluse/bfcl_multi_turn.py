"""BFCL multi-turn tasks, run on BFCL's own simulators from the wheel (file system, messaging, posting,
tickets, trading, travel, vehicle, math), and checked like BFCL's ``multi_turn_checker``.

The wheel is appended to ``sys.path`` (zip import) the first time a simulator class is needed; the
eight classes of ``multi_turn_base`` import nothing beyond the standard library and mpmath. The
categories that need network or vector stores (web search, memory) are not offered.

Checking follows BFCL: the model's calls of each user turn and the ground-truth calls are replayed on
fresh simulator instances; after every turn with ground truth, the model must have called something,
every simulator's public attributes must equal the ground truth's, and the ground-truth results must all
appear among the model's results so far (in any order).
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit.envs.tooluse.bfcl import DATA_PREFIX, BfclWheel
from agentkit.errors import DataError
from agentkit.records import Message, Task

MULTI_TURN_CATEGORIES = {
    "multi_turn_base": "multi_turn_base",
    "multi_turn_long_context": "multi_turn_long_context",
}
SOURCE_PREFIX = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
CLASSES: dict[str, tuple[str, str]] = {  # class -> (module, function-doc file)
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}
STATELESS = {"MathAPI"}


def simulator_class(name: str, wheel: str | Path) -> type:
    """BFCL's simulator class ``name``, imported from the wheel."""
    if name not in CLASSES:
        raise DataError(f"BFCL class {name} is not supported (supported: {', '.join(CLASSES)})")
    wheel = str(wheel)
    if wheel not in sys.path:
        sys.path.append(wheel)
    import importlib

    module = importlib.import_module(f"{SOURCE_PREFIX}.{CLASSES[name][0]}")
    return getattr(module, name)


def format_result(result: Any) -> str:
    """A call's result as BFCL's executor writes it (strings as is, dicts as JSON, the rest ``str``)."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


class BfclWorld:
    """Live instances of a task's BFCL classes, loaded from its initial config."""

    def __init__(
        self,
        classes: Sequence[str],
        initial_config: dict[str, Any],
        wheel: str | Path,
        long_context: bool = False,
    ):
        import copy

        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Any] = {}
        for name in classes:
            instance = simulator_class(name, wheel)()
            if name not in STATELESS:
                instance._load_scenario(
                    copy.deepcopy(initial_config.get(name, {})), long_context=long_context
                )
            self.instances[name] = instance
            for method_name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not method_name.startswith("_"):
                    self.methods[method_name] = method

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Run one call; returns (result text, whether it failed), as BFCL reports it."""
        method = self.methods.get(name)
        if method is None:
            return f"Error during execution: no function named {name}", True
        try:
            return format_result(method(**arguments)), False
        except Exception as exc:  # the simulators raise anything on bad input; BFCL reports it
            return f"Error during execution: {exc}", True

    def call_source(self, source: str) -> tuple[str, bool]:
        """Run a ground-truth call written as Python (``mv(source='a', destination='b')``)."""
        name, arguments = parse_call(source, self.methods)
        return self.call(name, arguments)

    def state(self) -> dict[str, dict[str, Any]]:
        return {
            name: {k: v for k, v in vars(obj).items() if not k.startswith("_")}
            for name, obj in self.instances.items()
        }


def parse_call(source: str, methods: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``f(1, b='x')`` as ``("f", {first_param: 1, "b": "x"})`` (positional arguments named by signature)."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise DataError(f"ground-truth call {source!r} is not Python: {exc.msg}") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise DataError(f"ground-truth call {source!r} is not a plain function call")
    name = node.func.id
    args = [ast.literal_eval(a) for a in node.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    if args:
        method = methods.get(name)
        if method is None:
            raise DataError(f"ground-truth call {source!r} names an unknown function")
        bound = inspect.signature(method).bind_partial(*args, **kwargs)
        kwargs = dict(bound.arguments)
    return name, kwargs


def load_multi_turn_tasks(wheel: BfclWheel, category: str, env_name: str = "tooluse") -> list[Task]:
    stem = MULTI_TURN_CATEGORIES[category]
    member = f"{DATA_PREFIX}/BFCL_v4_{stem}.json"
    answers = {
        r["id"]: r["ground_truth"]
        for _, r in wheel.rows(f"{DATA_PREFIX}/possible_answer/BFCL_v4_{stem}.json")
    }
    docs = {
        name: [row for _, row in wheel.rows(f"{DATA_PREFIX}/multi_turn_func_doc/{doc}")]
        for name, (_, doc) in CLASSES.items()
    }
    tasks = []
    for line, row in wheel.rows(member):
        where = f"{wheel.path}!{member}"
        unsupported = [c for c in row.get("involved_classes", []) if c not in CLASSES]
        if unsupported:
            raise DataError(f"{row.get('id')}: unsupported BFCL classes {unsupported}", where, line)
        truth = answers.get(row["id"])
        if truth is None or len(truth) != len(row["question"]):
            raise DataError(f"{row['id']}: ground truth missing or not one list per turn", where, line)
        excluded = set(row.get("excluded_function", []))
        functions = [f for c in row["involved_classes"] for f in docs[c] if f["name"] not in excluded]
        turns = [[{"role": m["role"], "content": m["content"]} for m in turn] for turn in row["question"]]
        first_users = [m["content"] for m in turns[0] if m["role"] == "user"]
        tasks.append(
            Task(
                id=row["id"],
                env=env_name,
                prompt=first_users[-1] if first_users else "",
                meta={
                    "check": "multi_turn",
                    "source": "bfcl",
                    "category": stem,
                    "turns": turns,
                    "involved_classes": row["involved_classes"],
                    "initial_config": row["initial_config"],
                    "functions": functions,
                    "ground_truth": truth,
                    "long_context": "long_context" in stem,
                },
            )
        )
    return tasks


def turns_of(messages: Sequence[Message]) -> list[list[list[tuple[str, dict[str, Any]]]]]:
    """The model's calls per user turn, per assistant step: ``[turn][step][(name, arguments)]``.

    Calls whose arguments are not a JSON object are dropped, as BFCL drops what it cannot decode.
    """
    turns: list[list[list[tuple[str, dict[str, Any]]]]] = []
    for message in messages:
        if message.role == "user":
            turns.append([])
        elif message.role == "assistant" and message.tool_calls and turns:
            step = []
            for call in message.tool_calls:
                try:
                    arguments = call.function.parsed_arguments()
                except json.JSONDecodeError:
                    continue
                if isinstance(arguments, dict):
                    step.append((call.name, arguments))
            if step:
                turns[-1].append(step)
    return turns


def _missing_unordered(expected: list[str], actual: list[str]) -> list[str]:
    pool = list(actual)
    missing = []
    for item in expected:
        try:
            pool.remove(item)
        except ValueError:
            missing.append(item)
    return missing


def check_multi_turn(meta: dict[str, Any], messages: Sequence[Message], wheel: str | Path) -> dict[str, Any]:
    """BFCL's ``multi_turn_checker`` over a finished conversation."""
    truth = meta["ground_truth"]
    model_turns = turns_of(messages)
    if len(model_turns) != len(truth):
        return {
            "valid": False,
            "error_type": "multi_turn:force_terminated",
            "error": f"the conversation has {len(model_turns)} user turns, the task {len(truth)}",
        }
    args = (meta["involved_classes"], meta["initial_config"], wheel, meta.get("long_context", False))
    model_world, truth_world = BfclWorld(*args), BfclWorld(*args)
    all_model_results: list[str] = []
    for index, (steps, expected_calls) in enumerate(zip(model_turns, truth, strict=True)):
        for step in steps:
            all_model_results += [model_world.call(name, arguments)[0] for name, arguments in step]
        expected_results = [truth_world.call_source(source)[0] for source in expected_calls]
        if not expected_calls:
            continue
        if not steps:
            return {
                "valid": False,
                "error_type": "multi_turn:empty_turn_model_response",
                "error": f"no function call in turn {index}",
            }
        model_state, truth_state = model_world.state(), truth_world.state()
        for name, attributes in truth_state.items():
            differing = sorted(k for k, v in attributes.items() if model_state[name].get(k) != v)
            if differing:
                return {
                    "valid": False,
                    "error_type": "multi_turn:instance_state_mismatch",
                    "error": f"turn {index}: {name} differs in {', '.join(differing)}",
                }
        missing = _missing_unordered(expected_results, all_model_results)
        if missing:
            return {
                "valid": False,
                "error_type": "multi_turn:execution_response_mismatch",
                "error": f"turn {index}: results never produced: {[m[:80] for m in missing[:3]]}",
            }
    return {"valid": True}


def reference_turns(meta: dict[str, Any], wheel: str | Path) -> list[list[tuple[str, dict[str, Any]]]]:
    """The ground-truth calls of every turn as ``(name, arguments)`` (positional arguments named)."""
    world = BfclWorld(
        meta["involved_classes"], meta["initial_config"], wheel, meta.get("long_context", False)
    )
    return [[parse_call(source, world.methods) for source in turn] for turn in meta["ground_truth"]]
