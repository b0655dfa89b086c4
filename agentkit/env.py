"""The environment protocol: tools for a task, first messages, tool calls against episode state, verify.

An ``Env`` is configuration plus behaviour shared across tasks; ``Env.open(task)`` starts an
``Episode`` holding that task's state (a sandbox, a simulator). The agent loop drives an episode;
reference solvers and strategies reach it only through the same tool calls a model makes.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from agentkit.client import ModelClient
from agentkit.errors import ToolError
from agentkit.records import FunctionSpec, Message, Task, ToolCall, ToolSpec, Verdict

if TYPE_CHECKING:
    from agentkit.config import EnvConfig, SandboxConfig, TaskSourceConfig

YOUTU_AGENT_PROMPT = """You are a careful agent that solves tasks with tools.
Think inside <think>...</think>: analyse the task, make a plan, act, then reflect on each result.
To use a tool, write <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>; you may write several.
Each result comes back inside <tool_response>...</tool_response>.
When you are done, give the final answer without any tool call."""


@dataclass
class ToolOutput:
    """What one tool call returned: the observation text and whether it was an error."""

    content: str
    error: bool = False


class Tool:
    """A named function the model can call: JSON-schema parameters plus an implementation.

    Arguments are validated against the schema by the agent loop before ``fn`` runs; ``fn`` raises
    ``ToolError`` for a call the model got wrong, and that message is what the model sees.
    """

    def __init__(
        self, name: str, description: str, parameters: dict[str, Any], fn: Callable[..., Any | Awaitable[Any]]
    ):
        self.name, self.description, self.parameters, self.fn = name, description, parameters, fn

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(name=self.name, description=self.description, parameters=self.parameters)
        )

    async def __call__(self, **arguments: Any) -> ToolOutput:
        result = self.fn(**arguments)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, ToolOutput):
            return result
        return ToolOutput(content=result if isinstance(result, str) else str(result))


class Episode(ABC):
    """One task's live state. Use as ``async with env.open(task) as episode``; ``close`` always runs."""

    def __init__(self, task: Task):
        self.task = task

    @property
    def tools(self) -> list[Tool]:
        """The tools of this episode; envs with plain function tools only override this."""
        return []

    async def call(self, call: ToolCall) -> ToolOutput:
        """Run one (already schema-validated) tool call. ``ToolError`` becomes an error observation."""
        for tool in self.tools:
            if tool.name == call.name:
                try:
                    return await tool(**call.function.parsed_arguments())
                except ToolError as exc:
                    return ToolOutput(content=f"error: {exc}", error=True)
        return ToolOutput(content=f"error: unknown tool '{call.name}'", error=True)

    @abstractmethod
    async def verify(self, messages: Sequence[Message]) -> Verdict:
        """Score the finished conversation against this task (and the episode's final state)."""

    async def next_user_message(self, messages: Sequence[Message]) -> Message | None:
        """The user's next turn after the agent answered without a tool call (multi-turn tasks such as
        BFCL multi-turn); None ends the episode."""
        return None

    def feedback(self, verdict: Verdict) -> str:
        """What a retrying agent is told after a failed verification (used by the ``reflect`` strategy)."""
        return f"Your answer was checked and it is not correct: {verdict.reason}. Try again."

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Episode:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Env(ABC):
    """An environment family (math, code, tool use, research), registered by a stable name."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    system_prompt: str = YOUTU_AGENT_PROMPT

    def __init__(self, sandbox: SandboxConfig | None = None, **options: Any):
        """Subclasses take their own keyword options; ``sandbox`` configures their sandbox pool."""
        if options:
            raise TypeError(f"unexpected options: {', '.join(sorted(options))}")
        self.sandbox_config = sandbox

    @abstractmethod
    def tools(self, task: Task) -> list[ToolSpec]:
        """The tool schemas offered to the model for ``task``."""

    def initial_messages(self, task: Task) -> list[Message]:
        return [Message(role="system", content=self.system_prompt), Message(role="user", content=task.prompt)]

    @abstractmethod
    async def open(self, task: Task) -> Episode:
        """Start an episode for ``task`` (acquire a sandbox, build a simulator...)."""

    def reference_solver(self, task: Task) -> ModelClient | None:
        """A client that solves ``task`` correctly by calling the real tools, or None if there is none."""
        return None

    def load_tasks(self, source: TaskSourceConfig) -> list[Task]:
        """Tasks from a source (generated, a file, a package's data). Bad rows fail here, at load time."""
        raise NotImplementedError(f"env '{self.name}' has no task loader")

    async def aclose(self) -> None:
        """Release env-wide resources (sandbox pools, process pools)."""
        return None


def build_env(cfg: EnvConfig) -> Env:
    """Build the env named by ``cfg.name`` with its options; an unknown option (of the env, or of its sandbox
    backend) is a ConfigError naming it and the nearest valid one, before anything is built or started, so
    a typo never surfaces later as a sandbox failure that is retried as infrastructure."""
    from agentkit.registry import ENVS, SANDBOXES, check_options

    if cfg.sandbox is not None:
        backend = cfg.sandbox.backend
        check_options(
            SANDBOXES.get(backend),
            cfg.sandbox.options,
            where=f"env.sandbox.options for '{backend}'",
            fixed={"limits": None},
        )
    return ENVS.build(cfg.name, cfg.options, where="env.options", sandbox=cfg.sandbox)
