"""Plain data records shared by every part of agentkit: messages, tools, tasks, trajectories.

They serialize to the one trajectory format (see ``agentkit/schemas/trajectory.schema.json``),
which TRL's SFTTrainer reads as conversational data without conversion.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1


class Record(BaseModel):
    """Base for records: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class FunctionCall(Record):
    name: str
    arguments: str = "{}"
    """JSON-encoded arguments, as in the OpenAI API (Arrow pads dict arguments with nulls)."""

    @field_validator("arguments", mode="before")
    @classmethod
    def _encode_arguments(cls, value: Any) -> str:
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        return value

    def parsed_arguments(self) -> Any:
        """The decoded arguments; raises ``json.JSONDecodeError`` when they are not JSON."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


class ToolCall(Record):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @classmethod
    def make(cls, id: str, name: str, arguments: dict[str, Any] | str) -> ToolCall:
        return cls(id=id, function=FunctionCall.model_validate({"name": name, "arguments": arguments}))

    @property
    def name(self) -> str:
        return self.function.name


class Message(Record):
    """One OpenAI-format chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionSpec(Record):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolSpec(Record):
    """An OpenAI tool schema as offered to the model."""

    type: Literal["function"] = "function"
    function: FunctionSpec

    @property
    def name(self) -> str:
        return self.function.name


class Task(Record):
    """A unit of work for an env. ``meta`` holds what is needed to re-verify; references stay out of messages."""

    id: str
    env: str
    prompt: str
    meta: dict[str, Any] = Field(default_factory=dict)
    abilities: list[str] = Field(default_factory=list)
    """The atomic abilities the task exercises (``complex_reasoning``, ``localisation``, ``function_calling``...),
    from its generator or template; training mixtures can weight by them."""


class Status(StrEnum):
    """How an episode ended. Only ``completed`` (and the limit statuses) are training data."""

    completed = "completed"
    max_turns = "max_turns"
    max_tokens = "max_tokens"
    timeout = "timeout"
    context_exceeded = "context_exceeded"
    model_error = "model_error"
    sandbox_error = "sandbox_error"
    verifier_error = "verifier_error"
    parse_error = "parse_error"

    @property
    def is_infrastructure(self) -> bool:
        """Failures of the machinery rather than the agent: retried, never written with a reward."""
        return self in (Status.model_error, Status.sandbox_error, Status.verifier_error)


class Verdict(Record):
    passed: bool
    reward: float = 0.0
    reason: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class Seconds(Record):
    model: float = 0.0
    tools: float = 0.0
    verify: float = 0.0
    total: float = 0.0


class Stats(Record):
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    parse_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: Seconds = Field(default_factory=Seconds)
    tool_call_checks: int = 0
    """Turns whose raw generated text was known, so the server's parsed tool calls could be checked against agentkit's."""
    tool_call_disagreements: int = 0
    """Of those, turns where the server's tool calls differ from agentkit's parse of the same text."""


class Provenance(Record):
    model: str = ""
    endpoint: str = ""
    sampling: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    strategy: str = ""
    chat_template_sha256: str | None = None
    env_version: str = ""
    verifier: str = ""
    agentkit: str = ""
    config_sha256: str | None = None


class Trajectory(Record):
    """One episode: the conversation plus everything needed to trust, filter and reproduce it."""

    id: str
    schema_version: int = SCHEMA_VERSION
    task: Task
    tools: list[ToolSpec] = Field(default_factory=list)
    messages: list[Message]
    status: Status
    reward: float | None = None
    verdict: Verdict | None = None
    error: str | None = None
    stats: Stats = Field(default_factory=Stats)
    provenance: Provenance = Field(default_factory=Provenance)
    meta: dict[str, Any] = Field(default_factory=dict)
    abilities: list[str] = Field(default_factory=list)
    """The task's abilities plus those the episode shows (a reflected mistake adds ``self_correction`` or
    ``metacognition``)."""
    completion_token_ids: list[list[int]] | None = None
    logprobs: list[list[float]] | None = None
    raw_completions: list[str] | None = None
    """Token-faithful records (``record.tokens``): per assistant turn, the text exactly as generated (its tokens
    decoded), alongside ``completion_token_ids``/``logprobs``; ``prompt_token_counts`` the prompt it saw."""
    prompt_token_counts: list[int] | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is not None and self.verdict.passed
