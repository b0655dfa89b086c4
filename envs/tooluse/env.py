"""The tool-use env: JSON-schema tools over deterministic simulators, and BFCL function calling.

Three kinds of task (``meta.check``):
- ``state``: tools backed by simulators (``fs``, ``shop``, ``calendar``) from ``meta.initial_state``;
  passed when every simulator's final state equals ``meta.expected_state`` (tau-bench style) and the
  final message mentions each of ``meta.required_outputs``.
- ``calls``: function calling without execution (BFCL); passed when the calls of the model's first
  tool-calling turn match ``meta.possible_answer`` under BFCL's checker.
- ``multi_turn``: BFCL multi-turn; BFCL's simulators run the calls, the user speaks once per turn, and
  the conversation is checked like BFCL's ``multi_turn_checker`` (``agentkit.envs.tooluse.bfcl_multi_turn``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Sequence
from typing import Any

from agentkit.client import GeneratorClient, ModelClient
from agentkit.config import SandboxConfig, TaskSourceConfig
from agentkit.env import Env, Episode, Tool, ToolOutput
from agentkit.envs.prompts import agent_prompt
from agentkit.envs.tasks import FILE_SOURCES, check_task_options, generate, load_task_rows, select
from agentkit.envs.tooluse import bfcl, bfcl_multi_turn
from agentkit.envs.tooluse.generator import TEMPLATES, Calls, Final, SolverGen, make_task, templates_for
from agentkit.envs.tooluse.simulators import SIMULATORS, Simulator
from agentkit.errors import ConfigError, ModelError, VerifierError
from agentkit.records import Message, Task, ToolCall, ToolSpec, Verdict
from agentkit.toolcalls import render_tool_call, split_reasoning

STATE_GUIDANCE = (
    "You act for the user through the tools; the tools change the world, so check what you "
    "need before you change anything. When you are done, tell the user what you did and "
    "answer their questions in your last message."
)
CALLS_GUIDANCE = (
    "Answer the user's request by calling the right functions with the right arguments; when "
    "several calls are needed, make them together in one turn."
)
RECORDED = json.dumps(
    {
        "status": "recorded",
        "note": "calls are checked, not executed; reply without tool calls when you are done",
    }
)
CHECKS = ("state", "calls", "multi_turn")
TOOL_SUBSETS = ("domain", "task")
MULTI_TURN_GUIDANCE = (
    "Carry out each of the user's requests with the functions; they work on a live system whose "
    "state carries over from one request to the next."
)


def state_diff(expected: Any, actual: Any, path: str = "", limit: int = 10) -> list[str]:
    """Where two JSON values differ, as ``path: expected X, got Y`` lines (at most ``limit``)."""
    out: list[str] = []

    def walk(e: Any, a: Any, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(e, dict) and isinstance(a, dict):
            for key in sorted(set(e) | set(a), key=str):
                sub = f"{where}.{key}" if where else str(key)
                if key not in a:
                    out.append(f"{sub}: missing (expected {json.dumps(e[key])[:80]})")
                elif key not in e:
                    out.append(f"{sub}: unexpected {json.dumps(a[key])[:80]}")
                else:
                    walk(e[key], a[key], sub)
        elif isinstance(e, list) and isinstance(a, list) and len(e) == len(a):
            for index, (x, y) in enumerate(zip(e, a, strict=True)):
                walk(x, y, f"{where}[{index}]")
        elif e != a or type(e) is not type(a):
            out.append(f"{where}: expected {json.dumps(e)[:80]}, got {json.dumps(a)[:80]}")

    walk(expected, actual, path)
    return out


def _normalized(text: str) -> str:
    return text.lower().replace(",", "").replace("$", "")


def mentions(text: str, output: str) -> bool:
    """Whether ``output`` appears in ``text`` as a whole token (``3`` is not found in ``13`` or ``3.5``)."""
    pattern = r"(?<![\w.])" + re.escape(_normalized(output)) + r"(?![\w]|\.\d)"
    return re.search(pattern, _normalized(text)) is not None


def decode_calls(message: Message) -> list[dict[str, Any]] | None:
    """The message's calls as BFCL model output ``[{name: arguments}]``; None if any is not a JSON object."""
    calls = []
    for call in message.tool_calls or []:
        try:
            arguments = call.function.parsed_arguments()
        except json.JSONDecodeError:
            return None
        if not isinstance(arguments, dict):
            return None
        calls.append({call.name: arguments})
    return calls


class ToolUseEpisode(Episode):
    def __init__(self, task: Task, env: ToolUseEnv):
        super().__init__(task)
        self._env = env
        self.check = task.meta.get("check", "state")
        self.simulators: dict[str, Simulator] = {}
        self.recorded: list[ToolCall] = []
        self._tools: list[Tool] = []
        self._turn = 0
        if self.check == "state":
            for domain, state in task.meta["initial_state"].items():
                self.simulators[domain] = SIMULATORS[domain](state)
            offered = env.offered_tools(task)
            self._tools = [
                t
                for sim in self.simulators.values()
                for t in sim.tools()
                if offered is None or t.name in offered
            ]
        elif self.check == "multi_turn":
            meta = task.meta
            self.world = bfcl_multi_turn.BfclWorld(
                meta["involved_classes"],
                meta["initial_config"],
                env.bfcl_wheel(),
                meta.get("long_context", False),
            )
            self._tools = [self._bfcl_tool(f) for f in meta["functions"]]
        self.closed = False

    def _bfcl_tool(self, function: dict[str, Any]) -> Tool:
        def run(**arguments: Any) -> ToolOutput:
            text, failed = self.world.call(function["name"], arguments)
            return ToolOutput(content=text, error=failed)

        spec = bfcl.tool_spec(function)
        return Tool(spec.name, spec.function.description, spec.function.parameters, run)

    @property
    def tools(self) -> list[Tool]:
        return self._tools

    async def call(self, call: ToolCall) -> ToolOutput:
        if self.closed:
            raise RuntimeError("the episode is closed")
        if self.check == "calls":
            self.recorded.append(call)
            return ToolOutput(content=RECORDED)
        return await super().call(call)

    def final_state(self) -> dict[str, Any]:
        return {domain: sim.snapshot() for domain, sim in self.simulators.items()}

    async def next_user_message(self, messages: Sequence[Message]) -> Message | None:
        turns = self.task.meta.get("turns") if self.check == "multi_turn" else None
        if not turns or self._turn + 1 >= len(turns):
            return None
        self._turn += 1
        users = [m["content"] for m in turns[self._turn] if m["role"] == "user"]
        return Message(role="user", content="\n\n".join(users))

    async def verify(self, messages: Sequence[Message]) -> Verdict:
        if self.check == "calls":
            return self._verify_calls(messages)
        if self.check == "multi_turn":
            try:
                result = bfcl_multi_turn.check_multi_turn(self.task.meta, messages, self._env.bfcl_wheel())
            except Exception as exc:
                raise VerifierError(f"BFCL multi-turn checker failed on {self.task.id}: {exc}") from exc
            if result["valid"]:
                return Verdict(passed=True, reward=1.0, reason="every turn matches the ground truth")
            return Verdict(
                passed=False, reward=0.0, reason=result["error_type"], details={"error": result["error"]}
            )
        return self._verify_state(messages)

    def _verify_state(self, messages: Sequence[Message]) -> Verdict:
        meta = self.task.meta
        expected = meta.get("expected_state")
        problems: list[str] = []
        details: dict[str, Any] = {}
        if expected is not None:
            diff = state_diff(expected, self.final_state())
            if diff:
                problems.append(f"the final state differs from the expected one in {len(diff)} place(s)")
                details["state_diff"] = diff
        final = next((m for m in reversed(messages) if m.role == "assistant"), None)
        visible = split_reasoning(final.content)[1] if final is not None else ""
        missing = [o for o in meta.get("required_outputs") or [] if not mentions(visible, str(o))]
        if missing:
            problems.append(f"the final message does not give {len(missing)} required output(s)")
            details["missing_outputs"] = missing
        if problems:
            return Verdict(passed=False, reward=0.0, reason="; ".join(problems), details=details)
        return Verdict(passed=True, reward=1.0, reason="final state and outputs match", details=details)

    def _verify_calls(self, messages: Sequence[Message]) -> Verdict:
        meta = self.task.meta
        turns = [m for m in messages if m.role == "assistant" and m.tool_calls]
        if not turns:
            return Verdict(passed=False, reward=0.0, reason="no function call was made")
        chosen = turns if self._env.calls_scope == "all" else turns[:1]
        calls: list[dict[str, Any]] = []
        for message in chosen:
            decoded = decode_calls(message)
            if decoded is None:
                return Verdict(passed=False, reward=0.0, reason="a call's arguments are not a JSON object")
            calls += decoded
        try:
            result = bfcl.check_calls(meta["functions"], calls, meta["possible_answer"], meta["category"])
        except Exception as exc:
            raise VerifierError(f"BFCL checker failed on {self.task.id}: {exc}") from exc
        if result["valid"]:
            return Verdict(
                passed=True, reward=1.0, reason="calls match a possible answer", details={"calls": calls}
            )
        return Verdict(
            passed=False,
            reward=0.0,
            reason=f"{result.get('error_type', 'mismatch')}",
            details={"calls": calls, "errors": result.get("error", [])[:3]},
        )

    def feedback(self, verdict: Verdict) -> str:
        return f"The task is not done correctly yet ({verdict.reason}). Check your steps and try again."

    async def close(self) -> None:
        self.closed = True
        self._tools = []


def summary_text(text: str) -> str:
    """A solver's final words as the Summary phase of the five-phase (Agentic-CoT) format."""
    return text if text.lstrip().lower().startswith("summary:") else f"Summary: {text}"


def _plan_of(calls: Sequence[tuple[str, dict[str, Any]]]) -> str:
    names = [name for name, _ in calls]
    return "call " + ", then ".join(dict.fromkeys(names)) if names else "answer directly"


def solver_client(steps: SolverGen, *, strict: bool = True) -> GeneratorClient:
    """Turn a ``Calls``/``Final`` solver into a model client that really calls the episode's tools.

    ``strict``: a tool error ends the episode as ``model_error`` (a reference solver must not make one);
    BFCL solvers are lenient, since a few possible answers break their own function's schema.
    """

    def run() -> Generator[str, list[Message], None]:
        step = next(steps)
        while True:
            if isinstance(step, Final):
                yield f"<think>{step.thought}</think>\n{summary_text(step.text)}"  # multi-turn: the next user turn comes back
                try:
                    step = steps.send([])
                except StopIteration:
                    return
                continue
            text = f"<think>{step.thought}</think>\n" + "\n".join(
                render_tool_call(n, a) for n, a in step.calls
            )
            observations = yield text
            results: list[Any] = []
            for message in observations or []:
                if message.role != "tool":
                    continue
                if message.content.startswith("error:") and strict:
                    raise ModelError(f"reference solver got a tool error: {message.content}")
                try:
                    results.append(json.loads(message.content))
                except json.JSONDecodeError:
                    if strict:
                        raise ModelError(
                            f"reference solver cannot read the observation {message.content[:200]!r}"
                        ) from None
                    results.append(message.content)
            if len(results) != len(step.calls):
                raise ModelError(
                    f"reference solver made {len(step.calls)} calls but saw {len(results)} results"
                )
            try:
                step = steps.send(results)
            except StopIteration:
                return

    return GeneratorClient(run, name="reference")


class ToolUseEnv(Env):
    """Tool use over simulated worlds (generated tasks, files) and BFCL function calling."""

    name = "tooluse"
    version = "1"

    def __init__(
        self,
        sandbox: SandboxConfig | None = None,
        *,
        calls_scope: str = "first_turn",
        bfcl_download: bool = True,
        bfcl_path: str | None = None,
        tool_subset: str = "domain",
        system_prompt: str | None = None,
    ):
        super().__init__(sandbox)
        if calls_scope not in ("first_turn", "all"):
            raise ConfigError(f"env.options.calls_scope must be first_turn or all, not '{calls_scope}'")
        if tool_subset not in TOOL_SUBSETS:
            raise ConfigError(
                f"env.options.tool_subset must be one of {', '.join(TOOL_SUBSETS)}, not '{tool_subset}'"
            )
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigError("env.options.system_prompt must be a string (or null for the default prompts)")
        self.calls_scope = calls_scope
        self.tool_subset = tool_subset
        self.custom_prompt = system_prompt
        self.bfcl_download = bfcl_download
        self.bfcl_path = bfcl_path

    def bfcl_wheel(self) -> Any:
        """The bfcl-eval wheel: ``bfcl_path`` (or the one tasks were loaded from), else the cache."""
        return bfcl.find_wheel(self.bfcl_path, download=self.bfcl_download)

    def offered_tools(self, task: Task) -> set[str] | None:
        """With ``tool_subset=task``, the names of the tools a generated task's template needs; None: all."""
        if self.tool_subset != "task":
            return None
        template = TEMPLATES.get(task.meta.get("template", ""))
        return set(template.tools) if template is not None and template.tools else None

    def tools(self, task: Task) -> list[ToolSpec]:
        if task.meta.get("check") in ("calls", "multi_turn"):
            return [bfcl.tool_spec(f) for f in task.meta["functions"]]
        offered = self.offered_tools(task)
        return [
            spec
            for domain in sorted(task.meta["initial_state"])
            for spec in SIMULATORS[domain].specs()
            if offered is None or spec.name in offered
        ]

    def _system(self, guidance: str) -> str:
        return self.custom_prompt if self.custom_prompt is not None else agent_prompt(guidance)

    def initial_messages(self, task: Task) -> list[Message]:
        check = task.meta.get("check")
        if check == "multi_turn":
            first = [m["content"] for m in task.meta["turns"][0] if m["role"] == "user"]
            return [
                Message(role="system", content=self._system(MULTI_TURN_GUIDANCE)),
                Message(role="user", content="\n\n".join(first)),
            ]
        if check != "calls":
            return [
                Message(role="system", content=self._system(STATE_GUIDANCE)),
                Message(role="user", content=task.prompt),
            ]
        given = task.meta.get("messages") or [{"role": "user", "content": task.prompt}]
        extra = "\n\n".join(m["content"] for m in given if m["role"] == "system")
        system = (
            agent_prompt(CALLS_GUIDANCE + (f"\n\n{extra}" if extra else ""))
            if self.custom_prompt is None
            else self.custom_prompt + (f"\n\n{extra}" if extra else "")
        )
        turns = [
            Message(role=role, content=m["content"])
            for m in given
            if (role := m["role"]) in ("user", "assistant")
        ]
        return [Message(role="system", content=system), *turns]

    async def open(self, task: Task) -> ToolUseEpisode:
        return ToolUseEpisode(task, self)

    def reference_solver(self, task: Task) -> ModelClient | None:
        meta = task.meta
        if meta.get("check") == "multi_turn":
            turns = bfcl_multi_turn.reference_turns(meta, self.bfcl_wheel())

            def solve_turns() -> SolverGen:
                for index, calls in enumerate(turns):
                    if calls:
                        yield Calls(
                            f"Analysis: request {index + 1} acts on the current state of the session.\n"
                            f"Plan: {_plan_of(calls)}.",
                            calls,
                        )
                    yield Final(
                        "Reflection: this request is handled."
                        if calls
                        else "Analysis: no offered function serves this request.\nPlan: say so.\n"
                        "Action: answer without a call.\nReflection: nothing to change.",
                        "Done.",
                    )

            return solver_client(solve_turns(), strict=False)
        if meta.get("check") == "calls":
            calls = bfcl.reference_calls(meta["functions"], meta["possible_answer"])
            if not bfcl.check_calls(
                meta["functions"], [{n: a} for n, a in calls], meta["possible_answer"], meta["category"]
            )["valid"]:
                return None  # a few BFCL rows admit no passing call

            def solve() -> SolverGen:
                yield Calls(
                    "Analysis: the request maps onto the offered functions.\nPlan: "
                    f"{_plan_of(calls)}, with the values the user gave.",
                    calls,
                )
                yield Final("Reflection: the calls are made.", "I made the function calls for your request.")

            return solver_client(solve(), strict=False)
        template = TEMPLATES.get(meta.get("template", ""))
        if template is not None:
            return solver_client(template.solve(meta["request"]))
        steps = meta.get("solution")
        if steps:

            def replay() -> SolverGen:
                calls = [(s["name"], s.get("arguments", {})) for s in steps]
                yield Calls(
                    f"Analysis: the task lists the steps that solve it.\nPlan: {_plan_of(calls)}.", calls
                )
                yield Final(
                    "Reflection: every step returned without an error.",
                    str(meta.get("solution_answer", "Done.")),
                )

            return solver_client(replay())
        return None

    def load_tasks(self, source: TaskSourceConfig) -> list[Task]:
        if source.source == "generated":
            names = templates_for(dict(source.options))
            return generate(lambda i: make_task(i, source.seed, names, env_name=self.name), source)
        if source.source == "bfcl":
            options = dict(source.options)
            check_task_options(options, ("categories",), "bfcl")
            wheel_path = bfcl.find_wheel(source.path or self.bfcl_path, download=self.bfcl_download)
            if source.path:
                self.bfcl_path = str(wheel_path)
            categories = list(options.get("categories") or bfcl.DEFAULT_CATEGORIES)
            multi = [c for c in categories if c in bfcl_multi_turn.MULTI_TURN_CATEGORIES]
            single = [c for c in categories if c not in multi]
            with bfcl.BfclWheel(wheel_path) as wheel:
                tasks = bfcl.load_bfcl_tasks(wheel, single, env_name=self.name) if single else []
                for category in multi:
                    tasks += bfcl_multi_turn.load_multi_turn_tasks(wheel, category, env_name=self.name)
            return select(tasks, source)
        if source.source in FILE_SOURCES:
            return load_task_rows(source, self.name, check=check_tooluse_task)
        raise ConfigError(
            f"tasks.source '{source.source}' is not known to the tooluse env; "
            f"use generated, bfcl, {', '.join(FILE_SOURCES)}"
        )


def check_tooluse_task(task: Task) -> None:
    """Validate a task read from a file (raises ``ValueError``; the loader adds ``path:line``)."""
    meta = task.meta
    check = meta.setdefault("check", "state")
    if check not in CHECKS:
        raise ValueError(f"field 'check' must be one of {', '.join(CHECKS)}, not {check!r}")
    if check == "calls":
        for key in ("functions", "possible_answer", "category"):
            if key not in meta:
                raise ValueError(f"a calls task needs field '{key}'")
        try:
            [bfcl.tool_spec(f) for f in meta["functions"]]
        except Exception as exc:
            raise ValueError(f"field 'functions' cannot be turned into tool schemas: {exc}") from None
        return
    initial = meta.get("initial_state")
    if not isinstance(initial, dict) or not initial:
        raise ValueError(
            "a state task needs 'initial_state': {domain: state} with domains "
            f"{', '.join(sorted(SIMULATORS))}"
        )
    for domain, state in initial.items():
        if domain not in SIMULATORS:
            raise ValueError(
                f"unknown domain '{domain}' in initial_state; known: {', '.join(sorted(SIMULATORS))}"
            )
        SIMULATORS[domain](state)
    expected = meta.get("expected_state")
    if expected is not None and (not isinstance(expected, dict) or set(expected) != set(initial)):
        raise ValueError("'expected_state' must give a state for each domain of 'initial_state'")
    if expected is None and not meta.get("required_outputs"):
        raise ValueError("a state task needs 'expected_state' and/or 'required_outputs'")
    if expected is not None:
        meta["expected_state"] = {d: SIMULATORS[d](s).snapshot() for d, s in expected.items()}
