"""The model-client protocol, its data, and the in-library fakes used by tests and reference solvers.

``OpenAIClient`` (``agentkit.openai_client``) talks to vLLM or the embedded server;
``TransformersClient`` (``agentkit.server.engine``) runs an HF model in process.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentkit.errors import ModelError
from agentkit.records import Message, ToolCall, ToolSpec
from agentkit.toolcalls import CallError, parse_tool_calls


@dataclass
class Sampling:
    """Sampling parameters. Defaults are Youtu's normal mode; ``Sampling.reasoning()`` its thinking mode."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int | None = 20
    max_tokens: int = 1024
    repetition_penalty: float | None = None
    stop: list[str] | None = None
    seed: int | None = None

    @classmethod
    def reasoning(cls, **overrides: Any) -> Sampling:
        return cls(**{"temperature": 1.0, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.05} | overrides)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Completion:
    message: Message
    """The assistant message: content without the well-formed call blocks, plus parsed tool calls."""
    raw_text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    parse_errors: list[CallError] = field(default_factory=list)
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    model: str = ""
    latency: float = 0.0
    generated_text: str | None = None
    """The text exactly as generated (the completion's tokens decoded), when the server returned them."""
    tool_call_agreement: bool | None = None
    """Whether the server's parsed tool calls equal agentkit's parse of ``generated_text`` (None: not checked)."""


@runtime_checkable
class ModelClient(Protocol):
    name: str
    endpoint_kind: str

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        sampling: Sampling | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


def completion_from_text(
    text: str, *, finish_reason: str = "stop", id_prefix: str = "call", start: int = 0, **extra: Any
) -> Completion:
    """Build a completion from raw model text by parsing its ``<tool_call>`` blocks."""
    parsed = parse_tool_calls(text, id_prefix=id_prefix, start=start)
    message = Message(role="assistant", content=parsed.content, tool_calls=parsed.tool_calls or None)
    return Completion(
        message=message, raw_text=text, finish_reason=finish_reason, parse_errors=parsed.errors, **extra
    )


def _count_calls(messages: Sequence[Message]) -> int:
    return sum(len(m.tool_calls or []) for m in messages if m.role == "assistant")


def _rough_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class ScriptedClient:
    """Plays back a script: each item is raw text (parsed like model output), a ``Message``, an
    exception (raised, as a failing server would), or a callable ``messages -> item``."""

    endpoint_kind = "scripted"

    def __init__(self, script: Sequence[Any], name: str = "scripted"):
        self.name = name
        self._script = list(script)
        self.calls: list[list[Message]] = []

    async def complete(self, messages, tools=None, sampling=None) -> Completion:
        self.calls.append(list(messages))
        if not self._script:
            raise ModelError("scripted client has no more completions")
        item = self._script.pop(0)
        if callable(item) and not isinstance(item, type):
            item = item(list(messages))
        if isinstance(item, BaseException):
            raise item
        prompt_tokens = sum(_rough_tokens(m.content) for m in messages)
        if isinstance(item, Message):
            return Completion(
                message=item,
                raw_text=item.content,
                prompt_tokens=prompt_tokens,
                completion_tokens=_rough_tokens(item.content),
                model=self.name,
            )
        return completion_from_text(
            str(item),
            start=_count_calls(messages),
            prompt_tokens=prompt_tokens,
            completion_tokens=_rough_tokens(str(item)),
            model=self.name,
        )

    async def aclose(self) -> None:
        return None


Solver = Callable[[], Generator[Any, list[Message], None] | AsyncGenerator[Any, list[Message]]]


class GeneratorClient:
    """Turns a solver generator into a model client: the generator yields assistant turns (raw text,
    ``Message`` or a list of ``ToolCall`` to render) and receives the messages added since its last
    turn (tool observations). Reference solvers are written this way, so they run through the same
    agent loop, tools and sandboxes as a model."""

    endpoint_kind = "reference"

    def __init__(self, solver: Solver, name: str = "reference"):
        self.name = name
        self._gen: Any = solver()  # a generator or an async generator; ``_async`` says which
        self._async = inspect.isasyncgen(self._gen)
        self._started = False

    async def _next(self, new_messages: list[Message]) -> Any:
        try:
            if self._async:
                return await (self._gen.asend(new_messages) if self._started else self._gen.__anext__())
            return self._gen.send(new_messages) if self._started else next(self._gen)
        except (StopIteration, StopAsyncIteration):
            raise ModelError("reference solver ended without a final answer") from None
        finally:
            self._started = True

    async def complete(self, messages, tools=None, sampling=None) -> Completion:
        messages = list(messages)
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=len(messages))
        item = await self._next([m for m in messages[last + 1 :] if m.role in ("tool", "user")])
        start = _count_calls(messages)
        if isinstance(item, Message):
            return Completion(message=item, raw_text=item.content, model=self.name)
        if isinstance(item, list) and all(isinstance(c, ToolCall) for c in item):
            from agentkit.toolcalls import render_tool_call

            item = "\n".join(render_tool_call(c.name, c.function.arguments) for c in item)
        return completion_from_text(str(item), start=start, model=self.name)

    async def aclose(self) -> None:
        if self._async:
            await self._gen.aclose()
        else:
            self._gen.close()


async def gather_bounded(coros: Sequence[Any], limit: int) -> list[Any]:
    """Run awaitables with at most ``limit`` in flight, keeping order."""
    semaphore = asyncio.Semaphore(max(1, limit))

    async def guarded(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(guarded(c) for c in coros))
