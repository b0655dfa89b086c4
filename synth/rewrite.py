"""Agentic-CoT rewriting: a served teacher turns (question, long chain of thought, answer) rows into the
five phases (Analysis -> Plan -> Action -> Reflection -> Summary), and each rewrite is checked.

The rows come from any task source of the env (``env.tasks.source=jsonl|parquet|hf`` with
``env.tasks.fields`` mapping the row's names onto ``prompt``, ``answer`` and ``cot``). A rewrite is kept
only when the phases are present and in order, the env's own verifier accepts its final answer (so the
answer is unchanged), its Summary states no value that the phases above did not, and it is at least
``min_reduction`` times shorter than the original chain of thought. A failed rewrite is still written
(to the raw rollouts) with the reasons in ``meta.rewrite.problems``; curation drops it as ``format``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit.client import Completion, ModelClient, Sampling
from agentkit.errors import ConfigError
from agentkit.loop import run_episode
from agentkit.records import Message, Task, Trajectory
from agentkit.registry import STRATEGIES
from agentkit.synth.strategies import PHASES, Rollout, Strategy, phase_report
from agentkit.toolcalls import THINK_CLOSE, THINK_OPEN

PROMPT_FILE = "prompts/agentic_cot_rewrite.txt"
_LABEL = re.compile(r"^[ \t>#*]*(" + "|".join(PHASES) + r")\**[ \t]*:\**[ \t]*", re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:/\d+)?")
_CALL_BLOCK = re.compile(r"<tool_call>.*?</tool_call>", re.DOTALL)


def default_prompt_path() -> Path:
    from agentkit.cli import conf_dir

    return conf_dir() / PROMPT_FILE


def split_phases(text: str) -> list[tuple[str, str]]:
    """The labelled sections of a rewrite, in order: ``[(phase, body), ...]``; text before the first
    label is dropped (a preamble), ``<think>`` tags and tool-call blocks are ignored."""
    text = _CALL_BLOCK.sub("", text.replace(THINK_OPEN, "\n").replace(THINK_CLOSE, "\n"))
    matches = list(_LABEL.finditer(text))
    if not matches:
        return []
    sections = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        body = text[match.end() : following.start() if following else len(text)].strip()
        sections.append((match.group(1).lower(), body))
    return sections


def render_phases(sections: Sequence[tuple[str, str]]) -> str:
    """One assistant turn: every phase but the Summary inside ``<think>``, the Summary outside it."""
    cut = next((i for i, (phase, _) in enumerate(sections) if phase == "summary"), len(sections))
    thought = "\n".join(f"{phase.capitalize()}: {body}" for phase, body in sections[:cut])
    after = "\n".join(f"{phase.capitalize()}: {body}" for phase, body in sections[cut:])
    return (f"{THINK_OPEN}{thought}{THINK_CLOSE}\n" if thought else "") + after


def _numbers(text: str) -> set[str]:
    return {m.group(0).replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}


def summary_problems(sections: Sequence[tuple[str, str]], question: str, answer: str) -> list[str]:
    """No new facts in the Summary: every number it states, and the answer, appear earlier (in the
    question or in the phases before it)."""
    summary = " ".join(body for phase, body in sections if phase == "summary")
    earlier = question + "\n" + "\n".join(body for phase, body in sections if phase != "summary")
    problems = []
    new = sorted(_numbers(summary) - _numbers(earlier))
    if new:
        problems.append(f"the summary states values not derived earlier: {', '.join(new[:5])}")
    answer_numbers = _numbers(answer)
    if answer_numbers:
        missing = sorted(answer_numbers - _numbers(earlier))
        if missing:
            problems.append(f"the answer's values {', '.join(missing[:5])} do not appear before the summary")
    elif answer.strip() and answer.strip().lower() not in earlier.lower():
        problems.append("the answer does not appear before the summary")
    return problems


class RewriteClient:
    """A model client for one rewrite: asks the teacher to rewrite the task's chain of thought and answers
    with the rewrite as one five-phase assistant turn (the teacher's own text is kept in ``raw``)."""

    endpoint_kind = "teacher"

    def __init__(self, teacher: ModelClient, prompt: str, task: Task, cot: str, answer: str):
        self.name = teacher.name
        self._teacher, self._prompt, self._task, self._cot, self._answer = teacher, prompt, task, cot, answer
        self.raw: str | None = None
        self.sections: list[tuple[str, str]] = []

    def request(self) -> list[Message]:
        user = (
            f"Question:\n{self._task.prompt}\n\nOriginal reasoning:\n{self._cot}\n\n"
            f"Final answer: {self._answer}"
        )
        return [Message(role="system", content=self._prompt), Message(role="user", content=user)]

    async def complete(
        self, messages: Sequence[Message], tools: Any = None, sampling: Sampling | None = None
    ) -> Completion:
        completion = await self._teacher.complete(self.request(), None, sampling)
        self.raw = completion.raw_text
        self.sections = split_phases(completion.raw_text)
        text = render_phases(self.sections) if self.sections else completion.raw_text.strip()
        return Completion(
            message=Message(role="assistant", content=text),
            raw_text=text,
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            model=completion.model,
            latency=completion.latency,
        )

    async def aclose(self) -> None:
        return None


@STRATEGIES.register("agentic_cot_rewrite")
class AgenticCoTRewriteStrategy(Strategy):
    """A served teacher rewrites each row's long chain of thought into the five phases; checked rewrites
    are the trajectories (one assistant turn, verified by the env)."""

    name = "agentic_cot_rewrite"

    def __init__(
        self,
        cot_field: str = "cot",
        answer_field: str = "answer",
        min_reduction: float = 1.5,
        answer_format: str = "\\boxed{...}",
        prompt: str | None = None,
    ):
        super().__init__()
        if min_reduction <= 0:
            raise ConfigError(
                "strategy.options.min_reduction must be > 0 (1.5: the rewrite is at most 2/3 of the original)"
            )
        self.cot_field, self.answer_field = cot_field, answer_field
        self.min_reduction, self.answer_format = float(min_reduction), answer_format
        path = Path(prompt) if prompt else default_prompt_path()
        try:
            self.prompt_template = path.read_text()
        except OSError as exc:
            raise ConfigError(f"strategy.options.prompt: cannot read {path}: {exc.strerror}") from None

    def _field(self, task: Task, key: str) -> str:
        value = task.meta.get(key)
        if not isinstance(value, str | int | float) or not str(value).strip():
            raise ConfigError(
                f"strategy agentic_cot_rewrite: task '{task.id}' has no '{key}' in its row "
                f"(map the row's field with env.tasks.fields.{key}=<name>)"
            )
        return str(value)

    async def run(self, rollout: Rollout) -> Trajectory:
        task = rollout.task
        cot, answer = self._field(task, self.cot_field), self._field(task, self.answer_field)
        prompt = self.prompt_template.replace("{answer_format}", self.answer_format).replace(
            "{answer}", answer
        )
        async with rollout.policy(task) as teacher:
            client = RewriteClient(teacher, prompt, task, cot, answer)
            trajectory = await run_episode(
                rollout.env,
                task,
                client,
                messages=self.first_messages(rollout.env, task),
                **rollout.episode_args(self.name),
            )
        trajectory.meta["rewrite"] = self.check(trajectory, client, cot, answer)
        trajectory.meta["phases"] = phase_report(trajectory.messages)
        return trajectory

    def check(self, trajectory: Trajectory, client: RewriteClient, cot: str, answer: str) -> dict[str, Any]:
        """The rewrite's checks: phases, answer (the env's verdict), summary facts, length."""
        problems: list[str] = []
        final = next((m for m in reversed(trajectory.messages) if m.role == "assistant"), None)
        text = final.content if final is not None else ""
        phases = [phase for phase, _ in client.sections]
        if phases != list(PHASES):
            missing = [p for p in PHASES if p not in phases]
            problems.append(
                "phases: "
                + (
                    f"missing {', '.join(missing)}"
                    if missing
                    else f"expected {' -> '.join(PHASES)}, got {' -> '.join(phases)}"
                )
            )
        if trajectory.verdict is None or not trajectory.verdict.passed:
            reason = trajectory.verdict.reason if trajectory.verdict is not None else trajectory.status.value
            problems.append(f"answer: the env's verifier rejects the rewrite ({reason})")
        problems += [
            f"summary: {p}" for p in summary_problems(client.sections, trajectory.task.prompt, answer)
        ]
        reduction = len(cot) / max(1, len(text))
        if reduction < self.min_reduction:
            problems.append(
                f"length: {len(text)} chars from {len(cot)} is a reduction of {reduction:.2f}x "
                f"< {self.min_reduction}x"
            )
        return {
            "source_chars": len(cot),
            "rewrite_chars": len(text),
            "reduction": round(reduction, 3),
            "problems": problems,
            "passed": not problems,
            "teacher_text": client.raw,
        }

    def check_format(self, trajectory: Trajectory) -> str | None:
        rewrite = trajectory.meta.get("rewrite") or {}
        problems = rewrite.get("problems")
        if problems is None:
            return "rewrite: not checked"
        return "rewrite: " + "; ".join(problems) if problems else None
