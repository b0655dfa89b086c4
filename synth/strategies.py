"""Synthesis strategies, registered by stable name: the paper's trajectory schemes.

A strategy turns one (task, sample) into one trajectory through the agent loop, and may pick among
the samples of a task at curation time (``select``) and check its own format (``check_format``).
"""

from __future__ import annotations

import ast
import functools
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentkit.client import Completion, ModelClient, Sampling, completion_from_text
from agentkit.env import Env
from agentkit.errors import ConfigError
from agentkit.loop import EpisodeLimits, drive_episode, run_episode
from agentkit.records import Message, Provenance, Seconds, Stats, Status, Task, ToolSpec, Trajectory
from agentkit.registry import STRATEGIES
from agentkit.toolcalls import THINK_CLOSE, THINK_OPEN, render_tool_call, split_reasoning


@dataclass
class Candidate:
    """What selection and curation need to know about one stored rollout, without its messages."""

    id: str
    task_id: str
    sample: int
    status: str
    passed: bool
    turns: int = 0
    chars: int = 0
    completion_tokens: int = 0
    abilities: list[str] = field(default_factory=list)


@dataclass
class Rollout:
    """One sample of one task, with everything a strategy may use to produce its trajectory."""

    env: Env
    task: Task
    sample: int
    trajectory_id: str
    sampling: Sampling
    limits: EpisodeLimits
    provenance: Provenance
    policy: Callable[[Task], Any]
    """``policy(task)``: an async context manager yielding the model client (or reference solver)."""

    def reference(self) -> ModelClient:
        """A fresh reference-solver client for this task; the caller closes it."""
        client = self.env.reference_solver(self.task)
        if client is None:
            raise ConfigError(
                f"env '{self.env.name}' has no reference solver (needed by policy=reference "
                f"and strategy=teacher)"
            )
        return client

    def episode_args(self, strategy: str, limits: EpisodeLimits | None = None) -> dict[str, Any]:
        """The keywords of ``run_episode``/``drive_episode`` that this rollout fixes (its sampling, limits,
        id and provenance), with the trajectory recorded as made by ``strategy``."""
        return dict(
            sampling=self.sampling,
            limits=self.limits if limits is None else limits,
            trajectory_id=self.trajectory_id,
            strategy=strategy,
            provenance=self.provenance,
        )


REFLECTION_ABILITY = {"math": "metacognition"}
"""The ability a mistake that was exposed and corrected shows, per env (default ``self_correction``)."""


def tag_abilities(trajectory: Trajectory) -> Trajectory:
    """The trajectory's abilities: its task's, plus what the episode showed (a reflected mistake)."""
    abilities = list(dict.fromkeys([*trajectory.abilities, *trajectory.task.abilities]))
    mistake = trajectory.meta.get("mistake")
    if mistake and mistake.get("corrected") and trajectory.passed:
        reflected = REFLECTION_ABILITY.get(trajectory.task.env, "self_correction")
        if reflected not in abilities:
            abilities.append(reflected)
    trajectory.abilities = abilities
    return trajectory


class Strategy:
    """Base strategy: the plain agent loop, keeping every sample. Every strategy's trajectories carry
    ability tags (``tag_abilities``), whichever ``run`` produced them."""

    name: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None:

            @functools.wraps(run)
            async def tagged(self, rollout: Rollout) -> Trajectory:
                return tag_abilities(await run(self, rollout))

            cls.run = tagged

    def __init__(self, **options: Any):
        if options:
            raise TypeError(f"unexpected options: {', '.join(sorted(options))}")

    def first_messages(self, env: Env, task: Task) -> list[Message]:
        return env.initial_messages(task)

    async def run(self, rollout: Rollout) -> Trajectory:
        async with rollout.policy(rollout.task) as client:
            return tag_abilities(
                await run_episode(
                    rollout.env,
                    rollout.task,
                    client,
                    messages=self.first_messages(rollout.env, rollout.task),
                    **rollout.episode_args(self.name),
                )
            )

    def select(self, group: Sequence[Candidate]) -> list[Candidate]:
        """Pick the samples of one task to keep (after the curation filters)."""
        return list(group)

    def check_format(self, trajectory: Trajectory) -> str | None:
        """Why ``trajectory`` breaks this strategy's format, or None."""
        return None


def build_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    return STRATEGIES.build(name, options, where="strategy.options")


def merge_stats(parts: Sequence[Stats]) -> Stats:
    """Sum the stats of consecutive stretches of one episode."""
    total = Stats()
    seconds = Seconds()
    for part in parts:
        for key in (
            "turns",
            "tool_calls",
            "tool_errors",
            "parse_errors",
            "prompt_tokens",
            "completion_tokens",
        ):
            setattr(total, key, getattr(total, key) + getattr(part, key))
        for key in ("model", "tools", "verify", "total"):
            setattr(seconds, key, getattr(seconds, key) + getattr(part.seconds, key))
    total.seconds = seconds
    return total


def _join_token_ids(parts: Sequence[Trajectory]) -> dict[str, Any]:
    ids = [turn for part in parts for turn in (part.completion_token_ids or [])]
    if not ids:
        return {"completion_token_ids": None, "logprobs": None}
    logprobs = [
        turn for part in parts for turn in (part.logprobs or [[] for _ in part.completion_token_ids or []])
    ]
    return {"completion_token_ids": ids, "logprobs": logprobs if any(logprobs) else None}


@STRATEGIES.register("direct")
class DirectStrategy(Strategy):
    """The plain agent loop."""

    name = "direct"


PHASES = ("analysis", "plan", "action", "reflection", "summary")
PHASE_PROMPT = """
Label each of the five phases explicitly, with its name at the start of a line:
Analysis: what is asked, what is given, what is unknown (inside <think>).
Plan: the steps, and the tool for each (inside <think>).
Action: carry out a step by calling tools; a turn with tool calls is an action (write "Action:" for a
step that needs no tool).
Reflection: after each result, check it against the plan and fix mistakes (inside <think>).
Summary: in your last turn, the outcome and the final answer, with no tool call."""

PHASE_ALIASES = {"search": "action", "read": "action", "cross-check": "reflection"}
"""Names some envs give a phase in their own prompt (research: Search and Read act, Cross-check reflects)."""
_PHASE_LABEL = re.compile(
    r"(?:^|\n|<think>)[ \t]*\**(" + "|".join([*PHASES, *PHASE_ALIASES]) + r")\**[ \t]*:", re.IGNORECASE
)


def _phase(label: str) -> str:
    label = label.lower()
    return PHASE_ALIASES.get(label, label)


def phase_report(messages: Sequence[Message]) -> dict[str, Any]:
    """Which phases each assistant turn went through (labels, and tool calls as actions), and whether
    the five-phase format holds: all present, first seen in order, the last turn ending on a summary."""
    per_turn: list[list[str]] = []
    problems: list[str] = []
    for turn, message in enumerate(m for m in messages if m.role == "assistant"):
        seen = [_phase(match.group(1)) for match in _PHASE_LABEL.finditer(message.content or "")]
        if message.tool_calls:
            if "summary" in seen:
                problems.append(f"turn {turn}: tool calls in the summary turn")
            if "action" not in seen:
                seen.append("action")
        per_turn.append(seen)
    sequence = [phase for turn in per_turn for phase in turn]
    missing = [p for p in PHASES if p not in sequence]
    firsts = [sequence.index(p) for p in PHASES if p in sequence]
    order_ok = firsts == sorted(firsts)
    if not order_ok:
        problems.append("phases first appear out of order")
    if per_turn and per_turn[-1][-1:] != ["summary"]:
        problems.append("the last turn does not end with the summary")
    if missing:
        problems.append("missing phases: " + ", ".join(missing))
    collapsed = [phase for i, phase in enumerate(sequence) if i == 0 or sequence[i - 1] != phase]
    return {
        "per_turn": per_turn,
        "sequence": collapsed,
        "missing": missing,
        "order_ok": order_ok,
        "problems": problems,
        "complete": not problems,
    }


@STRATEGIES.register("agentic_cot")
class AgenticCoTStrategy(Strategy):
    """Five explicit phases: Analysis -> Plan -> Action -> Reflection -> Summary, checked and recorded."""

    name = "agentic_cot"

    def first_messages(self, env: Env, task: Task) -> list[Message]:
        messages = env.initial_messages(task)
        if messages and messages[0].role == "system":
            messages[0] = messages[0].model_copy(
                update={"content": messages[0].content.rstrip() + "\n" + PHASE_PROMPT}
            )
        else:
            messages.insert(0, Message(role="system", content=PHASE_PROMPT.strip()))
        return messages

    async def run(self, rollout: Rollout) -> Trajectory:
        trajectory = await super().run(rollout)
        trajectory.meta["phases"] = phase_report(trajectory.messages)
        return trajectory

    def check_format(self, trajectory: Trajectory) -> str | None:
        report = trajectory.meta.get("phases") or phase_report(trajectory.messages)
        return None if report.get("complete") else "phases: " + "; ".join(report.get("problems", []))


@STRATEGIES.register("reflect")
class ReflectStrategy(Strategy):
    """After a failed verification the env's feedback goes back to the model, which retries in the
    same episode; a recovered trajectory keeps the failed path and the fix."""

    name = "reflect"

    def __init__(self, max_retries: int = 2):
        super().__init__()
        if max_retries < 0:
            raise ConfigError("strategy.options.max_retries must be >= 0")
        self.max_retries = max_retries

    async def run(self, rollout: Rollout) -> Trajectory:
        env, task = rollout.env, rollout.task
        parts: list[Trajectory] = []
        verdicts: list[dict[str, Any]] = []
        messages = self.first_messages(env, task)
        episode = await env.open(task)
        async with episode, rollout.policy(task) as client:
            for attempt in range(self.max_retries + 1):
                part = await drive_episode(
                    env, episode, task, client, messages=messages, **rollout.episode_args(self.name)
                )
                parts.append(part)
                if part.verdict is not None:
                    verdicts.append({"passed": part.verdict.passed, "reason": part.verdict.reason})
                if (
                    part.status != Status.completed
                    or part.passed
                    or part.verdict is None
                    or attempt == self.max_retries
                ):
                    break
                feedback = episode.feedback(part.verdict)
                messages = [*part.messages, Message(role="user", content=feedback)]
        last = parts[-1]
        meta = dict(last.meta) | {
            "attempts": len(parts),
            "recovered": last.passed and len(parts) > 1,
            "verdicts": verdicts,
        }
        return last.model_copy(
            update={"stats": merge_stats([p.stats for p in parts]), "meta": meta, **_join_token_ids(parts)}
        )


_CODE_KEYS = ("code", "source", "script", "program", "command", "cmd")
_PYTHON_KEYS = ("code", "source", "program")
_SHELL_TOOLS = ("bash", "shell", "sh", "terminal")
_ASSIGNED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", re.MULTILINE)
_CALLED = re.compile(
    r"\b(print|len|range|sum|sorted|round|abs|int|float|str|list|dict|max|min|simplify|solve)\("
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_READ_ONLY = re.compile(
    r"^(get|list|find|read|search|open|lookup|query|view|check|count|show|describe)(_|$)", re.IGNORECASE
)
"""Tools whose names say they only read: a wrong argument to them changes no state (the episode stays fixable)."""
_FAILED = re.compile(
    r"Traceback|\w+Error\b|^error:|not found|No such file|FAILED|\bfailed\b|"
    r"\[(?:error|timeout|killed)",
    re.MULTILINE,
)
_TESTS_PASSED = re.compile(r"(\d+) of (\d+) (?:public |hidden )?tests passed")
_OP_SWAPS = {
    "+": "-",
    "-": "+",
    "*": "+",
    "/": "*",
    "//": "%",
    "%": "//",
    "**": "*",
    "<": "<=",
    "<=": "<",
    ">": ">=",
    ">=": ">",
    "==": "!=",
    "!=": "==",
}


def _typo(word: str) -> str:
    """A misspelling that is never the word itself: swap two inner letters, or double the last one."""
    if len(word) >= 4 and word[1] != word[2]:
        return word[0] + word[2] + word[1] + word[3:]
    return word + word[-1]


def misspell_code(code: str) -> tuple[str, str] | None:
    """Misspell a name the code relies on, so that running it really fails. Returns (code, detail)."""
    for match in _ASSIGNED.finditer(code):
        name = match.group(1)
        later = re.search(rf"\b{re.escape(name)}\b", code[match.end() :])
        if later is not None:
            start = match.end() + later.start()
            typo = _typo(name)
            if re.search(rf"\b{re.escape(typo)}\b", code):
                continue
            return code[:start] + typo + code[start + len(name) :], f"misspelled '{name}' as '{typo}'"
    called = _CALLED.search(code)
    if called is not None:
        name = called.group(1)
        typo = _typo(name)
        return code[: called.start()] + typo + code[
            called.start() + len(name) :
        ], f"misspelled '{name}' as '{typo}'"
    segments = list(re.finditer(r"(?:^|&&|\|\||;|\||\n)\s*([A-Za-z_][\w.-]*)", code))
    if segments:  # a shell line: misspell the program of its last command, which then is not found
        last = segments[-1]
        name = last.group(1)
        return code[: last.start(1)] + _typo(name) + code[last.end(1) :], f"misspelled the command '{name}'"
    return None


@dataclass(frozen=True)
class CodeMutation:
    """A one-line change to a program: the line as written, the line with the mistake, and what changed."""

    code: str
    detail: str
    old_line: str
    new_line: str

    def carry(self, code: str) -> str | None:
        """The same mistake in later code that repeats the line (a wrong line is usually reused)."""
        return code.replace(self.old_line, self.new_line) if self.old_line in code else None


def _in_fstring(tree: ast.AST) -> set[int]:
    return {
        id(node)
        for joined in ast.walk(tree)
        if isinstance(joined, ast.JoinedStr)
        for node in ast.walk(joined)
    }


def mutate_code(code: str, rng: random.Random) -> CodeMutation | None:
    """A wrong program that still runs: an arithmetic or comparison operator swapped (``a*b`` -> ``a+b``,
    ``<`` -> ``<=``) or an integer constant off by one, in one line. None for code that is not Python or
    has nothing to change."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    lines = code.splitlines(keepends=True)
    skip = _in_fstring(tree)
    operators: list[tuple[int, int, int, str, str]] = []  # (line, start col, end col, old, new)
    constants: list[tuple[int, int, int, str, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        pairs = []
        if isinstance(node, ast.BinOp):
            pairs = [(node.left, node.right)]
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            pairs = [(node.left, node.comparators[0])]
        for left, right in pairs:
            if left.end_lineno != right.lineno or left.end_col_offset is None:
                continue
            row = lines[right.lineno - 1]
            between = row[left.end_col_offset : right.col_offset]
            symbol = between.strip().strip("()").strip()
            if symbol in _OP_SWAPS:
                start = left.end_col_offset + between.index(symbol)
                operators.append((right.lineno, start, start + len(symbol), symbol, _OP_SWAPS[symbol]))
        if (
            isinstance(node, ast.Constant)
            and type(node.value) is int
            and node.lineno == node.end_lineno
            and node.end_col_offset is not None
            and lines[node.lineno - 1][node.col_offset : node.end_col_offset].isdigit()
        ):
            constants.append(
                (node.lineno, node.col_offset, node.end_col_offset, str(node.value), str(node.value + 1))
            )
    choices = sorted(operators) or sorted(constants)
    if not choices:
        return None
    line, start, end, old, new = rng.choice(choices)
    row = lines[line - 1]
    mutated = row[:start] + new + row[end:]
    kind = "operator" if operators else "constant"
    detail = f"wrote '{new}' where '{old}' belongs" if kind == "operator" else f"wrote {new} instead of {old}"
    lines[line - 1] = mutated
    return CodeMutation("".join(lines), detail, row.rstrip("\n"), mutated.rstrip("\n"))


_SLUG = re.compile(r"\b[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)+\b")


def wrong_value(value: Any, schema: dict[str, Any], rng: random.Random, seen: str = "") -> Any:
    """A different value of the same type that the schema still accepts: another enum member, an integer
    one off, an id/date with its last number changed, or another id of the same shape from ``seen`` (the
    text the agent has seen: a neighbouring search result). None when there is no such value."""
    if isinstance(schema.get("enum"), list):
        others = [v for v in schema["enum"] if v != value]
        return rng.choice(others) if others else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        runs = list(re.finditer(r"\d+", value))
        if runs:
            last = runs[-1]
            bumped = str(int(last.group()) + 1).zfill(len(last.group()))
            return value[: last.start()] + bumped + value[last.end() :]
        if _SLUG.fullmatch(value):
            others = sorted({m.group(0) for m in _SLUG.finditer(seen)} - {value})
            return rng.choice(others) if others else None
    return None


def wrong_argument(
    arguments: dict[str, Any],
    spec: ToolSpec | None,
    keep: Callable[[str, Any], bool],
    rng: random.Random,
    seen: str = "",
) -> tuple[dict[str, Any], str, Any, Any] | None:
    """Replace one argument (one that ``keep(key, value)`` accepts) with a wrong value that still passes
    the tool's JSON schema, so the tool really runs on it. Returns (arguments, key, wrong, right)."""
    import jsonschema

    parameters = spec.function.parameters if spec else {}
    properties = parameters.get("properties", {})
    for key, value in arguments.items():
        if not keep(key, value):
            continue
        wrong = wrong_value(value, properties.get(key, {}), rng, seen)
        if wrong is None or wrong == value:
            continue
        changed = arguments | {key: wrong}
        try:
            jsonschema.validate(changed, parameters)
        except jsonschema.ValidationError:
            continue
        return changed, key, wrong, value
    return None


def change_answer(text: str, rng: random.Random | None = None) -> tuple[str, str] | None:
    """Change the last number of a final answer (outside <think>) to a wrong one (by a fixed step, or a random
    one with ``rng``, so branches from one state make different mistakes)."""
    reasoning, _ = split_reasoning(text)
    offset = text.find(THINK_CLOSE) + len(THINK_CLOSE) if reasoning and THINK_CLOSE in text else 0
    matches = list(_NUMBER.finditer(text, offset))
    if not matches:
        return None
    last = matches[-1]
    value = last.group(0)
    if "." in value:
        wrong = value[:-1] + str((int(value[-1]) + 3) % 10)
    elif rng is not None:
        wrong = str(int(value) + rng.choice([-3, -2, -1, 1, 2, 3, 10]))
    else:
        wrong = str(int(value) + (1 if int(value) % 7 else 2))
    return text[: last.start()] + wrong + text[last.end() :], f"wrote {wrong} instead of {value}"


def _fix_turn(raw: str, reflection: str) -> str:
    """The turn that corrects a mistake: the reflection as its reasoning, then the reference's tool calls
    (the reference's own plan for that turn was written before the mistake and would repeat it)."""
    _, rest = split_reasoning(raw)
    return f"{THINK_OPEN}{reflection}{THINK_CLOSE}\n{rest}"


def _with_reflection(raw: str, reflection: str) -> str:
    """Put a reflection at the start of a turn's reasoning (one <think> block per turn)."""
    stripped = raw.lstrip()
    if stripped.startswith(THINK_OPEN):
        return f"{THINK_OPEN}{reflection}\n" + stripped[len(THINK_OPEN) :].lstrip()
    return f"{THINK_OPEN}{reflection}{THINK_CLOSE}\n{raw}"


def _count_calls(messages: Sequence[Message]) -> int:
    return sum(len(m.tool_calls or []) for m in messages if m.role == "assistant")


def _first_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    useful = [line for line in lines if _FAILED.search(line)] or lines
    line = useful[-1] if useful else ""
    return line[:limit]


def _since_last_turn(messages: Sequence[Message], roles: tuple[str, ...] = ("tool",)) -> str:
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    return "\n".join(m.content for m in messages[last + 1 :] if m.role in roles)


def observation_fails(text: str) -> str | None:
    """The line of a tool observation that shows the run failed (an error, a traceback, failing tests)."""
    for match in _TESTS_PASSED.finditer(text):
        if int(match.group(1)) < int(match.group(2)):
            return match.group(0)
    return _first_line(text) if _FAILED.search(text) else None


def _short(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f"'{value}'"


class MistakeClient:
    """Replays a reference solver with one injected mistake that really runs, and writes the reflection
    from what the real observation showed.

    Kinds: ``code`` (a program changed so it still runs but computes something else; a bash command
    misspelled): its output, failing tests, or, when it prints a plausible wrong value, the verifier's
    rejection of the answer built on it exposes it; ``argument`` (a value from the request, changed in a
    schema-valid way) and ``value`` (a value read from an earlier observation, carried forward wrong): the
    tool answers for the wrong entity or fails; ``answer`` (a wrong final number): the verifier rejects it.
    Legacy kinds ``typo`` (a misspelled name: NameError) and ``missing_argument`` (a dropped required
    argument: rejected by schema validation) remain for existing recipes.
    """

    endpoint_kind = "reference"

    def __init__(
        self,
        reference: Callable[[], ModelClient],
        kinds: Sequence[str],
        tools: Sequence[ToolSpec],
        rng: random.Random,
        correct: bool = True,
    ):
        """``correct=False`` leaves the mistake in place (the ``branch`` strategy's failed paths); then a wrong
        argument may also go to a tool that changes state, since nothing has to be undone."""
        self._make_reference = reference
        self._reference = reference()
        self.name = self._reference.name
        self._kinds = list(kinds)
        self._tools = {spec.name: spec for spec in tools}
        self._rng = rng
        self.correct = correct
        self._pending: str | None = None  # the reference's turn that the mistake replaced
        self._carry: CodeMutation | None = None
        self.awaiting: str | None = None  # "observation" | "verdict" | "answer"
        self.withheld_answer: str | None = None
        self.mistake: dict[str, Any] | None = None

    def _emit(self, text: str, messages: Sequence[Message], like: Completion | None = None) -> Completion:
        completion = completion_from_text(text, start=_count_calls(messages), model=self.name)
        if like is not None:
            completion.prompt_tokens, completion.completion_tokens = (
                like.prompt_tokens,
                like.completion_tokens,
            )
        return completion

    # ------------------------------------------------------------------------------------ injection
    def _inject(
        self, completion: Completion, messages: Sequence[Message]
    ) -> tuple[str, dict[str, Any]] | None:
        calls = completion.message.tool_calls or []
        prompt = "\n".join(m.content for m in messages if m.role == "user")
        observed = "\n".join(m.content for m in messages if m.role == "tool")
        for kind in self._kinds:
            if kind == "answer":
                return None  # the answer mistake comes first in this sample's order: wait for it
            for index, call in enumerate(calls):
                try:
                    arguments = call.function.parsed_arguments()
                except ValueError:
                    continue
                found = self._wrong_arguments(kind, call.name, arguments, len(calls), prompt, observed)
                if found is None:
                    continue
                changed, mistake = found
                rendered = [
                    render_tool_call(c.name, changed if i == index else c.function.parsed_arguments())
                    for i, c in enumerate(calls)
                ]
                text = (
                    completion.message.content
                    + ("\n" if completion.message.content else "")
                    + "\n".join(rendered)
                )
                return text, mistake | {"kind": kind, "tool": call.name}
        return None

    def _wrong_arguments(
        self, kind: str, tool: str, arguments: dict[str, Any], n_calls: int, prompt: str, observed: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        spec = self._tools.get(tool)
        if kind in ("code", "typo"):
            for key in _CODE_KEYS:
                code = arguments.get(key)
                if not isinstance(code, str):
                    continue
                if kind == "code" and key in _PYTHON_KEYS and tool not in _SHELL_TOOLS:
                    mutation = mutate_code(code, self._rng)
                    if mutation is not None:
                        self._carry = mutation
                        return arguments | {key: mutation.code}, {
                            "detail": mutation.detail,
                            "effect": "runs",
                            "wrong": mutation.new_line.strip(),
                            "right": mutation.old_line.strip(),
                        }
                typo = misspell_code(code)
                if typo is not None:
                    return arguments | {key: typo[0]}, {"detail": typo[1], "effect": "fails"}
            return None
        if kind == "missing_argument":
            broken = break_arguments(arguments, spec)
            return (broken[0], {"detail": broken[1], "effect": "rejected"}) if broken else None
        if n_calls != 1 or (self.correct and not _READ_ONLY.match(tool)):
            return None  # a wrong argument to a call that changes state could not be undone by the fix

        def distinctive(key: str, value: Any) -> bool:
            return key not in _CODE_KEYS and not isinstance(value, bool) and len(str(value)) >= 3

        if kind == "argument":

            def keep(key: str, value: Any) -> bool:
                return distinctive(key, value) and str(value) in prompt
        else:  # "value": carried forward from an earlier observation, not from the request

            def keep(key: str, value: Any) -> bool:
                return distinctive(key, value) and str(value) in observed and str(value) not in prompt

        found = wrong_argument(arguments, spec, keep, self._rng, prompt + "\n" + observed)
        if found is None:
            return None
        changed, key, wrong, right = found
        source = "the request" if kind == "argument" else "the earlier result"
        return changed, {
            "detail": f"passed {key}={_short(wrong)} although {source} gives {_short(right)}",
            "key": key,
            "wrong": wrong,
            "right": right,
            "effect": "runs",
        }

    # ------------------------------------------------------------------------------------ exposure
    def _judge(self, observation: str) -> tuple[bool, str]:
        """Whether the observation of the wrong call shows the mistake, and the line that shows it."""
        failed = observation_fails(observation)
        if failed:
            return True, failed
        mistake = self.mistake or {}
        if mistake.get("kind") in ("argument", "value"):
            right = str(mistake["right"])
            if observation.strip() and right not in observation:
                return True, _first_line(observation, 120)
        return False, _first_line(observation, 120)

    def _reflection(self, observed: str, how: str) -> str:
        mistake = self.mistake or {}
        kind = mistake.get("kind")
        if kind in ("argument", "value"):
            what = (
                f"the call failed: {observed}"
                if how == "failed"
                else f"the result is not about {_short(mistake['right'])}: it shows {observed}"
            )
            return (
                f"Reflection: {what}. I {mistake['detail']}; I call it again with "
                f"{mistake['key']}={_short(mistake['right'])}."
            )
        if kind == "code" and mistake.get("effect") == "runs" and how == "verdict":
            return (
                f"Reflection: the check rejected my answer ({observed}). The answer came from my code's output "
                f"({mistake.get('observed', '')}), so the code is wrong: I {mistake['detail']} "
                f"(`{mistake.get('wrong', '')}`). I run the corrected code."
            )
        return f"Reflection: that failed ({observed}). I {mistake.get('detail', 'made a mistake')}; I fix it and try again."

    # ------------------------------------------------------------------------------------ the turn
    async def complete(self, messages, tools=None, sampling=None) -> Completion:
        messages = list(messages)
        if self.awaiting == "observation":
            observation = _since_last_turn(messages)
            exposed, line = self._judge(observation)
            self.mistake = (self.mistake or {}) | {"observed": line}
            if not self.correct:  # an uncorrected branch: the wrong result is carried forward
                self.mistake |= {"exposed": exposed, "exposed_by": "tool" if exposed else None}
                if observation_fails(observation):  # a failed call carries nothing: the step is taken again
                    text, self._pending, self.awaiting, self._carry = self._pending or "", None, None, None
                    return self._emit(text, messages)
                self._pending, self.awaiting, self._carry = None, None, None
                completion = await self._reference.complete(messages, tools, sampling)
                return self._emit(completion.raw_text, messages, completion)
            if exposed:
                self.mistake |= {"exposed": True, "exposed_by": "tool", "corrected": True}
                how = "failed" if observation_fails(observation) else "mismatch"
                text, self._pending, self.awaiting, self._carry = (
                    _fix_turn(self._pending or "", self._reflection(line, how)),
                    None,
                    None,
                    None,
                )
                return self._emit(text, messages)
            if self.mistake.get("kind") != "code" or self._carry is None:
                self.mistake |= {"exposed": False, "exposed_by": None}
                text, self._pending, self.awaiting = self._pending or "", None, None
                return self._emit(text, messages)
            self.awaiting = None  # a plausible wrong output: carried forward until something rejects it
        elif self.awaiting == "verdict":
            feedback = _first_line(_since_last_turn(messages, ("user",)))
            self.mistake = (self.mistake or {}) | {
                "exposed": True,
                "exposed_by": "verifier",
                "corrected": True,
            }
            await self._reference.aclose()
            self._reference, self.awaiting, self._carry = self._make_reference(), None, None
            completion = await self._reference.complete(messages, tools, sampling)
            return self._emit(
                _fix_turn(completion.raw_text, self._reflection(feedback, "verdict")), messages, completion
            )
        elif self.awaiting == "answer":
            feedback = _first_line(_since_last_turn(messages, ("user",)))
            self.mistake = (self.mistake or {}) | {
                "exposed": True,
                "exposed_by": "verifier",
                "observed": feedback,
                "corrected": True,
            }
            reflection = (
                f"Reflection: the check rejected my answer ({feedback}). Going back over the tool results, "
                f"I {self.mistake['detail']}; the correct answer follows."
            )
            text, self.withheld_answer, self.awaiting = (
                _with_reflection(self.withheld_answer or "", reflection),
                None,
                None,
            )
            return self._emit(text, messages)

        completion = await self._reference.complete(messages, tools, sampling)
        if self._carry is not None:
            if completion.message.tool_calls:
                rendered, carried = [], False
                for call in completion.message.tool_calls:
                    arguments = call.function.parsed_arguments()
                    wrong = {
                        k: (self._carry.carry(v) or v) if isinstance(v, str) else v
                        for k, v in arguments.items()
                    }
                    carried |= wrong != arguments
                    rendered.append(render_tool_call(call.name, wrong))
                if carried:
                    self._pending = completion.raw_text
                    self.awaiting = "observation"
                    content = completion.message.content
                    return self._emit(
                        content + ("\n" if content else "") + "\n".join(rendered), messages, completion
                    )
            else:  # the final answer, built on the wrong output
                self.mistake = (self.mistake or {}) | {"carried_to_answer": True}
                self.awaiting = "verdict"
            return self._emit(completion.raw_text, messages, completion)
        if self.mistake is None:
            if completion.message.tool_calls:
                wrong = self._inject(completion, messages)
                if wrong is not None:
                    self.mistake = wrong[1] | {"turn": sum(m.role == "assistant" for m in messages)}
                    self._pending, self.awaiting = completion.raw_text, "observation"
                    return self._emit(wrong[0], messages, completion)
            elif "answer" in self._kinds:
                changed = change_answer(completion.raw_text, None if self.correct else self._rng)
                if changed is not None:
                    self.mistake = {
                        "kind": "answer",
                        "detail": changed[1],
                        "effect": "runs",
                        "turn": sum(m.role == "assistant" for m in messages),
                    }
                    self.withheld_answer, self.awaiting = completion.raw_text, "answer"
                    return self._emit(changed[0], messages, completion)
        return self._emit(completion.raw_text, messages, completion)

    async def aclose(self) -> None:
        await self._reference.aclose()


def break_arguments(arguments: dict[str, Any], spec: ToolSpec | None) -> tuple[dict[str, Any], str] | None:
    """Drop a required argument, so that schema validation rejects the call (the legacy ``missing_argument``)."""
    required = list((spec.function.parameters if spec else {}).get("required", []))
    for key in required:
        if key in arguments:
            return {k: v for k, v in arguments.items() if k != key}, f"left out the required argument '{key}'"
    return None


def _checks_answer(task: Task) -> bool:
    """Whether the task has a reference answer (or required outputs) that a wrong final number can break;
    without one (a repository fix checked by its tests) an ``answer`` mistake would never be exposed."""
    return task.meta.get("answer") not in (None, "") or bool(task.meta.get("required_outputs"))


@STRATEGIES.register("teacher")
class TeacherStrategy(Strategy):
    """Reference-solver trajectories with an injected mistake that really runs, the real observation that
    exposes it (a tool's output or error, failing tests, or the verifier), a reflection written from that
    observation, and the correction. Tools run for real; no model is needed."""

    name = "teacher"
    needs_model = False
    KINDS = ("code", "argument", "value", "answer", "typo", "missing_argument")

    def __init__(
        self, mistakes: Sequence[str] = ("code", "argument", "value", "answer"), require_mistake: bool = True
    ):
        super().__init__()
        unknown = [kind for kind in mistakes if kind not in self.KINDS]
        if unknown or not mistakes:
            raise ConfigError(
                f"strategy.options.mistakes must be a non-empty subset of {list(self.KINDS)}, got {list(mistakes)}"
            )
        self.mistakes = list(mistakes)
        self.require_mistake = require_mistake

    async def run(self, rollout: Rollout) -> Trajectory:
        env, task = rollout.env, rollout.task
        kinds = [kind for kind in self.mistakes if kind != "answer" or _checks_answer(task)]
        rng = random.Random(f"{task.id}/{rollout.sample}/{rollout.sampling.seed}")
        rng.shuffle(kinds)
        client = MistakeClient(rollout.reference, kinds, env.tools(task), rng)
        parts: list[Trajectory] = []
        try:
            episode = await env.open(task)
            async with episode:
                kwargs = rollout.episode_args(self.name)
                messages = self.first_messages(env, task)
                for _ in range(3):
                    part = await drive_episode(env, episode, task, client, messages=messages, **kwargs)
                    parts.append(part)
                    if (
                        client.awaiting not in ("verdict", "answer")
                        or part.status != Status.completed
                        or part.passed
                        or part.verdict is None
                    ):
                        break
                    messages = [*part.messages, Message(role="user", content=episode.feedback(part.verdict))]
        finally:
            await client.aclose()
        last = parts[-1]
        mistake = client.mistake
        if mistake is not None and "exposed" not in mistake:
            mistake = mistake | {"exposed": False, "exposed_by": None}
        meta = dict(last.meta) | {"mistake": mistake}
        return last.model_copy(update={"stats": merge_stats([p.stats for p in parts]), "meta": meta})

    def check_format(self, trajectory: Trajectory) -> str | None:
        mistake = trajectory.meta.get("mistake")
        if mistake is None:
            return "no mistake could be injected" if self.require_mistake else None
        if not mistake.get("exposed"):
            return f"the injected mistake ({mistake.get('kind')}) was not exposed by an observation"
        return None


@STRATEGIES.register("rejection")
class RejectionStrategy(Strategy):
    """n samples per task through the plain loop; keep the passing ones, then the shortest."""

    name = "rejection"

    def __init__(self, keep: int = 1, by: str = "chars"):
        super().__init__()
        if keep < 1:
            raise ConfigError("strategy.options.keep must be >= 1")
        if by not in ("chars", "completion_tokens", "turns"):
            raise ConfigError("strategy.options.by must be one of chars, completion_tokens, turns")
        self.keep, self.by = keep, by

    def select(self, group: Sequence[Candidate]) -> list[Candidate]:
        passed = [c for c in group if c.passed]
        return sorted(passed, key=lambda c: (getattr(c, self.by), c.chars, c.sample))[: self.keep]
