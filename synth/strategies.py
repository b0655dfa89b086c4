"""Synthesis strategies, registered by stable name: the paper's trajectory schemes.

A strategy turns one (task, sample) into one trajectory through the agent loop, and may pick among
the samples of a task at curation time (``select``) and check its own format (``check_format``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
            raise ConfigError(f"env '{self.env.name}' has no reference solver (needed by policy=reference "
                              f"and strategy=teacher)")
        return client


class Strategy:
    """Base strategy: the plain agent loop, keeping every sample."""

    name: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True

    def __init__(self, **options: Any):
        if options:
            raise TypeError(f"unexpected options: {', '.join(sorted(options))}")

    def first_messages(self, env: Env, task: Task) -> list[Message]:
        return env.initial_messages(task)

    async def run(self, rollout: Rollout) -> Trajectory:
        async with rollout.policy(rollout.task) as client:
            return await run_episode(rollout.env, rollout.task, client, sampling=rollout.sampling,
                                     limits=rollout.limits, trajectory_id=rollout.trajectory_id,
                                     strategy=self.name, messages=self.first_messages(rollout.env, rollout.task),
                                     provenance=rollout.provenance)

    def select(self, group: list[Candidate]) -> list[Candidate]:
        """Pick the samples of one task to keep (after the curation filters)."""
        return group

    def check_format(self, trajectory: Trajectory) -> str | None:
        """Why ``trajectory`` breaks this strategy's format, or None."""
        return None


def build_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    cls = STRATEGIES.get(name)
    try:
        return cls(**dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"strategy.options for '{name}': {exc}") from None


def merge_stats(parts: Sequence[Stats]) -> Stats:
    """Sum the stats of consecutive stretches of one episode."""
    total = Stats()
    seconds = Seconds()
    for part in parts:
        for key in ("turns", "tool_calls", "tool_errors", "parse_errors", "prompt_tokens", "completion_tokens"):
            setattr(total, key, getattr(total, key) + getattr(part, key))
        for key in ("model", "tools", "verify", "total"):
            setattr(seconds, key, getattr(seconds, key) + getattr(part.seconds, key))
    total.seconds = seconds
    return total


def _join_token_ids(parts: Sequence[Trajectory]) -> dict[str, Any]:
    ids = [turn for part in parts for turn in (part.completion_token_ids or [])]
    if not ids:
        return {"completion_token_ids": None, "logprobs": None}
    logprobs = [turn for part in parts for turn in (part.logprobs or [[] for _ in part.completion_token_ids or []])]
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

_PHASE_LABEL = re.compile(r"(?:^|\n|<think>)[ \t]*\**(" + "|".join(PHASES) + r")\**[ \t]*:", re.IGNORECASE)


def phase_report(messages: Sequence[Message]) -> dict[str, Any]:
    """Which phases each assistant turn went through (labels, and tool calls as actions), and whether
    the five-phase format holds: all present, first seen in order, the last turn ending on a summary."""
    per_turn: list[list[str]] = []
    problems: list[str] = []
    for turn, message in enumerate(m for m in messages if m.role == "assistant"):
        seen = [match.group(1).lower() for match in _PHASE_LABEL.finditer(message.content or "")]
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
    return {"per_turn": per_turn, "sequence": collapsed, "missing": missing, "order_ok": order_ok,
            "problems": problems, "complete": not problems}


@STRATEGIES.register("agentic_cot")
class AgenticCoTStrategy(Strategy):
    """Five explicit phases: Analysis -> Plan -> Action -> Reflection -> Summary, checked and recorded."""

    name = "agentic_cot"

    def first_messages(self, env: Env, task: Task) -> list[Message]:
        messages = env.initial_messages(task)
        if messages and messages[0].role == "system":
            messages[0] = messages[0].model_copy(update={"content": messages[0].content.rstrip() + "\n" + PHASE_PROMPT})
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
            raise TypeError("max_retries must be >= 0")
        self.max_retries = max_retries

    async def run(self, rollout: Rollout) -> Trajectory:
        env, task = rollout.env, rollout.task
        parts: list[Trajectory] = []
        verdicts: list[dict[str, Any]] = []
        messages = self.first_messages(env, task)
        episode = await env.open(task)
        async with episode, rollout.policy(task) as client:
            for attempt in range(self.max_retries + 1):
                part = await drive_episode(env, episode, task, client, sampling=rollout.sampling,
                                           limits=rollout.limits, trajectory_id=rollout.trajectory_id,
                                           strategy=self.name, messages=messages, provenance=rollout.provenance)
                parts.append(part)
                if part.verdict is not None:
                    verdicts.append({"passed": part.verdict.passed, "reason": part.verdict.reason})
                if part.status != Status.completed or part.passed or attempt == self.max_retries:
                    break
                feedback = episode.feedback(part.verdict)
                messages = [*part.messages, Message(role="user", content=feedback)]
        last = parts[-1]
        meta = dict(last.meta) | {"attempts": len(parts), "recovered": last.passed and len(parts) > 1,
                                  "verdicts": verdicts}
        return last.model_copy(update={"stats": merge_stats([p.stats for p in parts]), "meta": meta,
                                       **_join_token_ids(parts)})


_CODE_KEYS = ("code", "source", "script", "program", "command", "cmd")
_ASSIGNED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", re.MULTILINE)
_CALLED = re.compile(r"\b(print|len|range|sum|sorted|round|abs|int|float|str|list|dict|max|min|simplify|solve)\(")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _typo(word: str) -> str:
    """A misspelling that is never the word itself: swap two inner letters, or double the last one."""
    if len(word) >= 4 and word[1] != word[2]:
        return word[0] + word[2] + word[1] + word[3:]
    return word + word[-1]


def misspell_code(code: str) -> tuple[str, str] | None:
    """Misspell a name the code relies on, so that running it really fails. Returns (code, detail)."""
    for match in _ASSIGNED.finditer(code):
        name = match.group(1)
        later = re.search(rf"\b{re.escape(name)}\b", code[match.end():])
        if later is not None:
            start = match.end() + later.start()
            typo = _typo(name)
            if re.search(rf"\b{re.escape(typo)}\b", code):
                continue
            return code[:start] + typo + code[start + len(name):], f"misspelled '{name}' as '{typo}'"
    called = _CALLED.search(code)
    if called is not None:
        name = called.group(1)
        typo = _typo(name)
        return code[:called.start()] + typo + code[called.start() + len(name):], f"misspelled '{name}' as '{typo}'"
    segments = list(re.finditer(r"(?:^|&&|\|\||;|\||\n)\s*([A-Za-z_][\w.-]*)", code))
    if segments:  # a shell line: misspell the program of its last command, which then is not found
        last = segments[-1]
        name = last.group(1)
        return code[:last.start(1)] + _typo(name) + code[last.end(1):], f"misspelled the command '{name}'"
    return None


def break_arguments(arguments: dict[str, Any], spec: ToolSpec | None) -> tuple[dict[str, Any], str] | None:
    """Drop a required argument, so that schema validation rejects the call."""
    required = list((spec.function.parameters if spec else {}).get("required", []))
    for key in required:
        if key in arguments:
            return {k: v for k, v in arguments.items() if k != key}, f"left out the required argument '{key}'"
    return None


def change_answer(text: str) -> tuple[str, str] | None:
    """Change the last number of a final answer (outside <think>) to a wrong one."""
    reasoning, _ = split_reasoning(text)
    offset = text.find(THINK_CLOSE) + len(THINK_CLOSE) if reasoning and THINK_CLOSE in text else 0
    matches = list(_NUMBER.finditer(text, offset))
    if not matches:
        return None
    last = matches[-1]
    value = last.group(0)
    if "." in value:
        wrong = value[:-1] + str((int(value[-1]) + 3) % 10)
    else:
        wrong = str(int(value) + (1 if int(value) % 7 else 2))
    return text[:last.start()] + wrong + text[last.end():], f"wrote {wrong} instead of {value}"


def _with_reflection(raw: str, reflection: str) -> str:
    """Put a reflection at the start of a turn's reasoning (one <think> block per turn)."""
    stripped = raw.lstrip()
    if stripped.startswith(THINK_OPEN):
        return f"{THINK_OPEN}{reflection}\n" + stripped[len(THINK_OPEN):].lstrip()
    return f"{THINK_OPEN}{reflection}{THINK_CLOSE}\n{raw}"


def _count_calls(messages: Sequence[Message]) -> int:
    return sum(len(m.tool_calls or []) for m in messages if m.role == "assistant")


def _first_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    useful = [line for line in lines if "Error" in line or "error" in line] or lines
    line = useful[-1] if useful else ""
    return line[:limit]


class MistakeClient:
    """Replays a reference solver with one injected mistake: a wrong tool call (whose real observation
    exposes it) followed by the reference call, or a wrong final answer withheld-and-corrected after the
    verifier rejects it. Tool-call ids are renumbered so the conversation stays consistent."""

    endpoint_kind = "reference"

    def __init__(self, reference: ModelClient, kinds: Sequence[str], tools: Sequence[ToolSpec]):
        self.name = reference.name
        self._reference = reference
        self._kinds = list(kinds)
        self._tools = {spec.name: spec for spec in tools}
        self._pending: str | None = None
        self.withheld_answer: str | None = None
        self.mistake: dict[str, Any] | None = None

    def _emit(self, text: str, messages: Sequence[Message], like: Completion | None = None) -> Completion:
        completion = completion_from_text(text, start=_count_calls(messages), model=self.name)
        if like is not None:
            completion.prompt_tokens, completion.completion_tokens = like.prompt_tokens, like.completion_tokens
        return completion

    def _wrong_call(self, completion: Completion) -> tuple[str, dict[str, Any]] | None:
        call = completion.message.tool_calls[0]
        try:
            arguments = call.function.parsed_arguments()
        except ValueError:
            return None
        for kind in self._kinds:
            if kind == "answer":
                return None  # the answer mistake comes first in this sample's order: wait for it
            broken: tuple[dict[str, Any], str] | None = None
            if kind == "code":
                for key in _CODE_KEYS:
                    if isinstance(arguments.get(key), str):
                        found = misspell_code(arguments[key])
                        if found is not None:
                            broken = (arguments | {key: found[0]}, found[1])
                            break
            elif kind == "argument":
                broken = break_arguments(arguments, self._tools.get(call.name))
            if broken is not None:
                text = completion.message.content + ("\n" if completion.message.content else "")
                text += render_tool_call(call.name, broken[0])
                return text, {"kind": kind, "tool": call.name, "detail": broken[1]}
        return None

    async def complete(self, messages, tools=None, sampling=None) -> Completion:
        messages = list(messages)
        if self._pending is not None:
            observation = next((m.content for m in reversed(messages) if m.role in ("tool", "user")), "")
            reflection = (f"Reflection: that failed ({_first_line(observation)}). "
                          f"I {self.mistake['detail']}; I fix it and try again.")
            text, self._pending = _with_reflection(self._pending, reflection), None
            return self._emit(text, messages)
        if self.withheld_answer is not None:
            feedback = next((m.content for m in reversed(messages) if m.role == "user"), "")
            reflection = (f"Reflection: the check rejected my answer ({_first_line(feedback)}). Going back over "
                          f"the tool results, I {self.mistake['detail']}; the correct answer follows.")
            text, self.withheld_answer = _with_reflection(self.withheld_answer, reflection), None
            return self._emit(text, messages)
        completion = await self._reference.complete(messages, tools, sampling)
        if self.mistake is None:
            if completion.message.tool_calls:
                wrong = self._wrong_call(completion)
                if wrong is not None:
                    self.mistake = wrong[1] | {"turn": sum(m.role == "assistant" for m in messages)}
                    self._pending = completion.raw_text
                    return self._emit(wrong[0], messages, completion)
            elif "answer" in self._kinds:
                changed = change_answer(completion.raw_text)
                if changed is not None:
                    self.mistake = {"kind": "answer", "detail": changed[1],
                                    "turn": sum(m.role == "assistant" for m in messages)}
                    self.withheld_answer = completion.raw_text
                    return self._emit(changed[0], messages, completion)
        return self._emit(completion.raw_text, messages, completion)

    async def aclose(self) -> None:
        await self._reference.aclose()


def _mistake_exposed(trajectory: Trajectory, mistake: dict[str, Any]) -> bool:
    """Did the real observation (tool output, validation error, or the verifier) reject the mistake?"""
    assistants = [i for i, m in enumerate(trajectory.messages) if m.role == "assistant"]
    if mistake["turn"] >= len(assistants):
        return False
    index = assistants[mistake["turn"]]
    if mistake["kind"] == "answer":
        following = trajectory.messages[index + 1:index + 2]
        return bool(following) and following[0].role == "user"
    observations = []
    for message in trajectory.messages[index + 1:]:
        if message.role != "tool":
            break
        observations.append(message.content)
    text = "\n".join(observations)
    return bool(re.search(r"error|Error|Traceback|not found|\[(error|timeout|killed)", text))


@STRATEGIES.register("teacher")
class TeacherStrategy(Strategy):
    """Reference-solver trajectories with an injected mistake, the real observation that exposes it,
    and the correction. Tools run for real; no model is needed."""

    name = "teacher"
    needs_model = False
    KINDS = ("code", "argument", "answer")

    def __init__(self, mistakes: Sequence[str] = KINDS, require_mistake: bool = True):
        super().__init__()
        unknown = [kind for kind in mistakes if kind not in self.KINDS]
        if unknown or not mistakes:
            raise TypeError(f"mistakes must be a non-empty subset of {list(self.KINDS)}, got {list(mistakes)}")
        self.mistakes = list(mistakes)
        self.require_mistake = require_mistake

    async def run(self, rollout: Rollout) -> Trajectory:
        env, task = rollout.env, rollout.task
        kinds = list(self.mistakes)
        random.Random(f"{task.id}/{rollout.sample}/{rollout.sampling.seed}").shuffle(kinds)
        client = MistakeClient(rollout.reference(), kinds, env.tools(task))
        parts: list[Trajectory] = []
        try:
            episode = await env.open(task)
            async with episode:
                kwargs = dict(sampling=rollout.sampling, limits=rollout.limits, trajectory_id=rollout.trajectory_id,
                              strategy=self.name, provenance=rollout.provenance)
                part = await drive_episode(env, episode, task, client, messages=self.first_messages(env, task),
                                           **kwargs)
                parts.append(part)
                if client.withheld_answer is not None and part.status == Status.completed and not part.passed:
                    messages = [*part.messages, Message(role="user", content=episode.feedback(part.verdict))]
                    parts.append(await drive_episode(env, episode, task, client, messages=messages, **kwargs))
        finally:
            await client.aclose()
        last = parts[-1]
        mistake = client.mistake
        if mistake is not None:
            mistake = mistake | {"exposed": _mistake_exposed(last, mistake)}
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
            raise TypeError("keep must be >= 1")
        if by not in ("chars", "completion_tokens", "turns"):
            raise TypeError("by must be one of chars, completion_tokens, turns")
        self.keep, self.by = keep, by

    def select(self, group: list[Candidate]) -> list[Candidate]:
        passed = [c for c in group if c.passed]
        return sorted(passed, key=lambda c: (getattr(c, self.by), c.chars, c.sample))[:self.keep]
