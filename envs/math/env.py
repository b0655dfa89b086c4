"""The math env: a ``python`` tool backed by a warm sandboxed session, answers checked with math-verify."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

from agentkit.client import GeneratorClient, ModelClient
from agentkit.config import SandboxConfig, TaskSourceConfig
from agentkit.env import Env, Tool, ToolOutput
from agentkit.envs.episode import SandboxEpisode
from agentkit.envs.math.generator import kinds_for, make_task
from agentkit.envs.math.verify import CONVENTIONS, MathVerifier
from agentkit.envs.prompts import agent_prompt
from agentkit.envs.tasks import FILE_SOURCES, generate, load_task_rows
from agentkit.errors import ConfigError, VerifierError
from agentkit.records import Message, Task, ToolSpec, Verdict
from agentkit.toolcalls import render_tool_call
from agentkit.tools import as_tool, spec_of, tool

_FORMATS = {
    "boxed": "Put the final answer in \\boxed{...} in your last message.",
    "answer_tag": "Put the final answer inside <answer>...</answer> in your last message.",
    "final_line": "End your last message with a line 'Final answer: ...'.",
    "last_number": "End your last message with the final number.",
}


def sandbox_pool(config: SandboxConfig | None, *, warm_python: bool) -> Any:
    """A sandbox pool built from an env's sandbox config (``agentkit.envs.sandbox`` is imported on first use)."""
    from agentkit.envs.sandbox import SandboxPool

    return SandboxPool.from_config(config or SandboxConfig(), warm_python=warm_python)


class MathEpisode(SandboxEpisode):
    """One math task: a sandbox (taken from the pool at the first ``python`` call) and the verifier."""

    def __init__(self, task: Task, env: MathEnv):
        super().__init__(task)
        self._env = env
        self._session: Any = None

    def _pool(self) -> Any:
        return self._env.pool()

    @property
    def tools(self) -> list[Tool]:
        return [as_tool(self.python)] if self._env.python_tool else []

    @tool
    async def python(self, code: str) -> ToolOutput:
        """Run Python code in a persistent session (variables and imports are kept between calls; sympy and
        numpy are installed). Returns what the code prints, or the error.

        Args:
            code: Python code
        """
        async with self._lock:
            sandbox = await self._workspace()
            if self._session is None:
                self._session = await sandbox.python()
            result = await self._session.run(code)
        return ToolOutput(content=result.observation(), error=not result.ok)

    async def verify(self, messages: Sequence[Message]) -> Verdict:
        final = next((m for m in reversed(messages) if m.role == "assistant"), None)
        if final is None or final.tool_calls:
            return Verdict(passed=False, reward=0.0, reason="the conversation has no final answer message")
        gold = self.task.meta.get("answer")
        if gold is None or str(gold).strip() == "":
            raise VerifierError(f"task {self.task.id} has no reference answer in meta.answer")
        check = await self._env.verifier().check(
            final.content, str(gold), variables=self.task.meta.get("variables")
        )
        return Verdict(
            passed=check.passed,
            reward=1.0 if check.passed else 0.0,
            reason=check.reason,
            details=check.details,
        )

    def feedback(self, verdict: Verdict) -> str:
        extracted = verdict.details.get("extracted")
        if extracted is None:
            return f"I could not find your final answer: {verdict.reason}. Try again."
        return f"Your final answer {extracted} is not correct. Check your work and try again."


PYTHON_TOOL = spec_of(MathEpisode.python)


class MathEnv(Env):
    """Math problems with a sandboxed Python tool; the verdict is math-verify on the final answer."""

    name = "math"
    version = "1"

    def __init__(
        self,
        sandbox: SandboxConfig | None = None,
        *,
        answer_format: Sequence[str] = ("boxed",),
        include_think: bool = False,
        max_answer_chars: int = 300,
        verify_timeout: int = 5,
        verify_hard_timeout: float = 30.0,
        verify_workers: int = 1,
        python_tool: bool = True,
        system_prompt: str | None = None,
    ):
        super().__init__(sandbox)
        formats = [answer_format] if isinstance(answer_format, str) else list(answer_format)
        for name in formats:
            if name not in CONVENTIONS:
                raise ConfigError(
                    f"env.options.answer_format: unknown convention '{name}'; known: {', '.join(CONVENTIONS)}"
                )
        self.answer_format = tuple(formats)
        self.python_tool = python_tool
        self._new_verifier = partial(
            MathVerifier,
            self.answer_format,
            include_think=include_think,
            max_chars=max_answer_chars,
            timeout=verify_timeout,
            hard_timeout=verify_hard_timeout,
            workers=verify_workers,
        )
        self._verifier: MathVerifier | None = None
        self._pool: Any = None
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigError("env.options.system_prompt must be a string (or null for the default prompt)")
        tool_line = "Use the python tool to compute and to check your work. " if python_tool else ""
        self.system_prompt = (
            agent_prompt(tool_line + _FORMATS[self.answer_format[0]])
            if system_prompt is None
            else system_prompt
        )

    def pool(self) -> Any:
        if self._pool is None:
            self._pool = sandbox_pool(self.sandbox_config, warm_python=True)
        return self._pool

    def verifier(self) -> MathVerifier:
        if self._verifier is None:
            self._verifier = self._new_verifier()
        return self._verifier

    def tools(self, task: Task) -> list[ToolSpec]:
        return [PYTHON_TOOL] if self.python_tool else []

    async def open(self, task: Task) -> MathEpisode:
        return MathEpisode(task, self)

    def reference_solver(self, task: Task) -> ModelClient | None:
        program = task.meta.get("solution")
        if not program or not self.python_tool:
            return None
        call = render_tool_call("python", {"code": program})

        symbolic = "sympy" in program
        plan = (
            "<think>Analysis: the task asks for an exact value, so floating point is not enough.\n"
            "Plan: compute it symbolically with sympy in the python tool and print it as LaTeX.</think>\n"
            if symbolic
            else "<think>Analysis: one exact value is asked.\n"
            "Plan: evaluate it exactly in the python tool.</think>\n"
        )

        def solve():
            observations = yield plan + call
            printed = observations[-1].content.strip() if observations else ""
            if symbolic:
                yield (
                    "<think>Reflection: the tool printed the exact result without errors, so I can report "
                    "it as it is.</think>\n"
                    f"Summary: computed exactly with sympy. The answer is $\\boxed{{{printed}}}$."
                )
            else:
                yield (
                    "<think>Reflection: the tool printed it without errors.</think>\n"
                    f"Summary: the answer is $\\boxed{{{printed}}}$."
                )

        return GeneratorClient(solve, name="reference")

    def load_tasks(self, source: TaskSourceConfig) -> list[Task]:
        if source.source == "generated":
            options = dict(source.options)
            kinds = kinds_for(options)
            check = bool(options.get("check", False))
            return generate(
                lambda i: make_task(i, source.seed, kinds, check=check, env_name=self.name), source
            )
        if source.source in FILE_SOURCES:
            return load_task_rows(source, self.name, required=("prompt", "answer"), check=_check_math_row)
        raise ConfigError(
            f"tasks.source '{source.source}' is not known to the math env; "
            f"use generated, {', '.join(FILE_SOURCES)}"
        )

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        verifier, self._verifier = self._verifier, None
        try:
            if pool is not None:
                await pool.close()
        finally:
            if verifier is not None:
                await asyncio.to_thread(verifier.close)


def _check_math_row(task: Task) -> None:
    answer = task.meta["answer"]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise ValueError(f"field 'answer' must be a string or a number, not {type(answer).__name__}")
    task.meta["answer"] = str(answer)
    variables = task.meta.get("variables")
    if variables is not None and not (
        isinstance(variables, list) and all(isinstance(v, str) for v in variables)
    ):
        raise ValueError("field 'variables' must be a list of variable names")
    solution = task.meta.get("solution")
    if solution is not None and not isinstance(solution, str):
        raise ValueError("field 'solution' must be a Python program (a string)")
