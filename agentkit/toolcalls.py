"""Youtu/Hermes tool-call format: render, parse and validate.

An assistant turn is free text with optional ``<think>...</think>`` reasoning and any number of
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks. Parsing never raises: it returns
the calls it could read and one error per block it could not, and every error is meant to become an
observation the model sees on its next turn.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema
import jsonschema.protocols
import jsonschema.validators

from agentkit.records import ToolCall, ToolSpec

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"

_BLOCK = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class CallError:
    """A tool-call block the parser or validator rejected, with the text the model wrote."""

    message: str
    raw: str = ""
    call_id: str | None = None


@dataclass
class ParsedTurn:
    content: str
    """The text with the well-formed call blocks taken out (they live on in ``tool_calls``)."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[CallError] = field(default_factory=list)


def render_tool_call(name: str, arguments: dict[str, Any] | str) -> str:
    """The exact text the chat template renders for one call; ``parse_tool_calls`` inverts it."""
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}{body}{CALL_CLOSE}"


def split_reasoning(text: str) -> tuple[str, str]:
    """Split ``text`` into (reasoning inside ``<think>``, the rest). Unclosed think = all reasoning."""
    start = text.find(THINK_OPEN)
    if start < 0:
        return "", text
    end = text.find(THINK_CLOSE, start)
    if end < 0:
        return text[start + len(THINK_OPEN) :].strip(), text[:start].strip()
    reasoning = text[start + len(THINK_OPEN) : end].strip()
    return reasoning, (text[:start] + text[end + len(THINK_CLOSE) :]).strip()


def _decode_call(body: str) -> tuple[str, Any]:
    """Return (name, arguments) from a block body or raise ValueError with a message for the model."""
    body = body.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool call is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("tool call must be a JSON object with 'name' and 'arguments'")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("tool call has no 'name' string")
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"arguments of '{name}' are a string that is not JSON") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"arguments of '{name}' must be a JSON object")
    return name, arguments


def parse_tool_calls(text: str, *, id_prefix: str = "call", start: int = 0) -> ParsedTurn:
    """Parse every ``<tool_call>`` block in ``text``. Never raises."""
    calls: list[ToolCall] = []
    errors: list[CallError] = []
    kept: list[str] = []
    cursor = 0
    for match in _BLOCK.finditer(text):
        kept.append(text[cursor : match.start()])
        cursor = match.end()
        call_id = f"{id_prefix}_{start + len(calls) + len(errors)}"
        try:
            name, arguments = _decode_call(match.group(1))
        except ValueError as exc:
            errors.append(CallError(str(exc), match.group(0), call_id))
            kept.append(match.group(0))  # the model keeps seeing what it wrote
            continue
        calls.append(ToolCall.make(call_id, name, arguments))
    tail = text[cursor:]
    dangling = tail.find(CALL_OPEN)
    if dangling >= 0:
        errors.append(
            CallError(
                "unterminated <tool_call> block (missing </tool_call>)",
                tail[dangling:],
                f"{id_prefix}_{start + len(calls) + len(errors)}",
            )
        )
    kept.append(tail)
    content = "".join(kept).strip()
    return ParsedTurn(content=content, tool_calls=calls, errors=errors)


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def validate_call(call: ToolCall, tools: dict[str, ToolSpec] | list[ToolSpec]) -> str | None:
    """Check a call against the offered tools; return an error message for the model, or None."""
    if isinstance(tools, list):
        tools = {spec.name: spec for spec in tools}
    spec = tools.get(call.name)
    if spec is None:
        offered = ", ".join(sorted(tools)) or "none"
        return f"unknown tool '{call.name}'; available tools: {offered}"
    try:
        arguments = call.function.parsed_arguments()
    except json.JSONDecodeError as exc:
        return f"arguments of '{call.name}' are not valid JSON ({exc.msg})"
    if not isinstance(arguments, dict):
        return f"arguments of '{call.name}' must be a JSON object"
    validator = _validator(json.dumps(spec.function.parameters, sort_keys=True))
    problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if problems:
        first = problems[0]
        where = ".".join(str(p) for p in first.path)
        return (
            f"invalid arguments for '{call.name}'"
            + (f" at '{where}'" if where else "")
            + f": {first.message}"
        )
    return None
