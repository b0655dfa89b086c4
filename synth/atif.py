"""ATIF (Agent Trajectory Interchange Format, Harbor's trajectory format): convert and validate.

The schema below is the ATIF v1.4 specification as Harbor publishes it (RFC 0001, "trajectory
format", and the pydantic models it describes in ``harbor.models.trajectories``), written out as a
JSON Schema: required fields, types, ``source`` in {system, user, agent}, no unknown fields outside
the ``extra`` objects. ``validate_atif`` adds the rules Harbor's validators check in code: step ids
sequential from 1, ISO 8601 timestamps, agent-only fields only on agent steps, and every
``source_call_id`` naming a tool call of its step. (Harbor's own package needs Python >= 3.12, so it
is not what validates here.)

Mapping from an agentkit trajectory: ``system``/``user`` messages are system/user steps; an
assistant message is an agent step (``<think>`` text -> ``reasoning_content``, the rest ->
``message``, calls -> ``tool_calls`` with parsed arguments) whose ``observation`` holds the tool
messages that answer it; reward, verdict, status, task and provenance go to the root ``extra``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from agentkit.toolcalls import split_reasoning

ATIF_VERSION = "ATIF-v1.4"

_EXTRA = {"type": ["object", "null"]}
_INT = {"type": ["integer", "null"], "minimum": 0}

ATIF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ATIF trajectory (v1.4)",
    "type": "object",
    "required": ["schema_version", "session_id", "agent", "steps"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"type": "string", "pattern": r"^ATIF-v1\.[0-9]+$"},
        "session_id": {"type": "string", "minLength": 1},
        "agent": {
            "type": "object",
            "required": ["name", "version"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "model_name": {"type": ["string", "null"]},
                "extra": _EXTRA,
            },
        },
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
        "notes": {"type": ["string", "null"]},
        "final_metrics": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "total_prompt_tokens": _INT,
                "total_completion_tokens": _INT,
                "total_cached_tokens": _INT,
                "total_cost_usd": {"type": ["number", "null"]},
                "total_steps": _INT,
                "extra": _EXTRA,
            },
        },
        "extra": _EXTRA,
    },
    "$defs": {
        "step": {
            "type": "object",
            "required": ["step_id", "source", "message"],
            "additionalProperties": False,
            "properties": {
                "step_id": {"type": "integer", "minimum": 1},
                "timestamp": {"type": ["string", "null"]},
                "source": {"enum": ["system", "user", "agent"]},
                "model_name": {"type": ["string", "null"]},
                "reasoning_effort": {"type": ["string", "number", "null"]},
                "message": {"type": "string"},
                "reasoning_content": {"type": ["string", "null"]},
                "tool_calls": {"type": ["array", "null"], "items": {"$ref": "#/$defs/tool_call"}},
                "observation": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/observation"}]},
                "metrics": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/metrics"}]},
                "extra": _EXTRA,
            },
        },
        "tool_call": {
            "type": "object",
            "required": ["tool_call_id", "function_name", "arguments"],
            "additionalProperties": False,
            "properties": {
                "tool_call_id": {"type": "string"},
                "function_name": {"type": "string"},
                "arguments": {"type": "object"},
            },
        },
        "observation": {
            "type": "object",
            "required": ["results"],
            "additionalProperties": False,
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "source_call_id": {"type": ["string", "null"]},
                            "content": {"type": ["string", "null"]},
                            "subagent_trajectory_ref": {
                                "type": ["array", "null"],
                                "items": {
                                    "type": "object",
                                    "required": ["session_id"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "session_id": {"type": "string"},
                                        "trajectory_path": {"type": ["string", "null"]},
                                        "extra": _EXTRA,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
        "metrics": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "prompt_tokens": _INT,
                "completion_tokens": _INT,
                "cached_tokens": _INT,
                "cost_usd": {"type": ["number", "null"]},
                "prompt_token_ids": {"type": ["array", "null"], "items": {"type": "integer"}},
                "completion_token_ids": {"type": ["array", "null"], "items": {"type": "integer"}},
                "logprobs": {"type": ["array", "null"], "items": {"type": "number"}},
                "extra": _EXTRA,
            },
        },
    },
}

_AGENT_ONLY = ("model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics")


def validate_atif(obj: Any) -> list[str]:
    """Every way ``obj`` breaks ATIF v1.4, as ``path: message`` lines (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(ATIF_SCHEMA)
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if errors or not isinstance(obj, dict):
        return errors
    for index, step in enumerate(obj["steps"]):
        where = f"steps.{index}"
        if step["step_id"] != index + 1:
            errors.append(f"{where}.step_id: expected {index + 1} (sequential from 1), got {step['step_id']}")
        if step.get("timestamp"):
            try:
                datetime.fromisoformat(step["timestamp"].replace("Z", "+00:00"))
            except ValueError:
                errors.append(f"{where}.timestamp: not ISO 8601: {step['timestamp']!r}")
        if step["source"] != "agent":
            errors += [
                f"{where}.{key}: only agent steps may carry it"
                for key in _AGENT_ONLY
                if step.get(key) is not None
            ]
        call_ids = {call["tool_call_id"] for call in step.get("tool_calls") or []}
        for number, result in enumerate((step.get("observation") or {}).get("results", [])):
            source = result.get("source_call_id")
            if source is not None and source not in call_ids:
                errors.append(
                    f"{where}.observation.results.{number}.source_call_id: '{source}' is not a "
                    "tool_call_id of this step"
                )
    return errors


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text and text.strip() else {}
    except json.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def to_atif(record: dict[str, Any]) -> dict[str, Any]:
    """One agentkit trajectory record (a dict, as read from JSONL) as an ATIF v1.4 trajectory."""
    provenance = record.get("provenance") or {}
    stats = record.get("stats") or {}
    token_ids = record.get("completion_token_ids") or []
    logprobs = record.get("logprobs") or []
    prompt_counts = record.get("prompt_token_counts") or []
    steps: list[dict[str, Any]] = []
    agent_turn = 0
    for message in record["messages"]:
        role = message["role"]
        if role == "tool":
            owner = steps[-1] if steps and steps[-1]["source"] == "agent" else None
            result = {"source_call_id": message.get("tool_call_id"), "content": message.get("content", "")}
            if owner is None or result["source_call_id"] not in {
                c["tool_call_id"] for c in owner.get("tool_calls") or []
            }:
                # A tool message no call of the previous step asked for: keep it, unattributed.
                result["source_call_id"] = None
                if owner is None:
                    steps.append(
                        {
                            "step_id": len(steps) + 1,
                            "source": "system",
                            "message": "",
                            "observation": {"results": [result]},
                        }
                    )
                    continue
            owner.setdefault("observation", {"results": []})["results"].append(result)
            continue
        step: dict[str, Any] = {
            "step_id": len(steps) + 1,
            "source": {"assistant": "agent"}.get(role, role),
            "message": message.get("content", ""),
        }
        if role == "assistant":
            reasoning, visible = split_reasoning(message.get("content") or "")
            step["message"] = visible
            if reasoning:
                step["reasoning_content"] = reasoning
            if provenance.get("model"):
                step["model_name"] = provenance["model"]
            calls = message.get("tool_calls") or []
            if calls:
                step["tool_calls"] = [
                    {
                        "tool_call_id": c["id"],
                        "function_name": c["function"]["name"],
                        "arguments": _arguments(c["function"].get("arguments", "{}")),
                    }
                    for c in calls
                ]
            metrics: dict[str, Any] = {}
            if agent_turn < len(token_ids) and token_ids[agent_turn] is not None:
                metrics["completion_token_ids"] = token_ids[agent_turn]
                metrics["completion_tokens"] = len(token_ids[agent_turn])
            if agent_turn < len(logprobs) and logprobs[agent_turn] is not None:
                metrics["logprobs"] = logprobs[agent_turn]
            if agent_turn < len(prompt_counts) and prompt_counts[agent_turn] is not None:
                metrics["prompt_tokens"] = prompt_counts[agent_turn]
            if metrics:
                step["metrics"] = metrics
            step["extra"] = {"content": message.get("content") or ""}  # as generated, <think> included
            agent_turn += 1
        steps.append(step)
    verdict = record.get("verdict") or {}
    return {
        "schema_version": ATIF_VERSION,
        "session_id": record["id"],
        "agent": {
            "name": "agentkit",
            "version": provenance.get("agentkit") or "unknown",
            "model_name": provenance.get("model") or None,
            "extra": {
                "strategy": provenance.get("strategy", ""),
                "endpoint": provenance.get("endpoint", ""),
                "sampling": provenance.get("sampling") or {},
                "chat_template_sha256": provenance.get("chat_template_sha256"),
            },
        },
        "steps": steps,
        "notes": "exported by agentkit export; tool results of an agent step are its observation",
        "final_metrics": {
            "total_prompt_tokens": stats.get("prompt_tokens"),
            "total_completion_tokens": stats.get("completion_tokens"),
            "total_steps": len(steps),
            "extra": {
                "turns": stats.get("turns"),
                "tool_calls": stats.get("tool_calls"),
                "tool_errors": stats.get("tool_errors"),
                "seconds": stats.get("seconds"),
            },
        },
        "extra": {
            "task": record.get("task"),
            "tools": record.get("tools") or [],
            "status": record.get("status"),
            "reward": record.get("reward"),
            "verdict": verdict or None,
            "error": record.get("error"),
            "abilities": record.get("abilities") or [],
            "provenance": provenance,
            "agentkit_schema_version": record.get("schema_version"),
        },
    }


def atif_messages(trajectory: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-format messages rebuilt from an ATIF trajectory (the inverse of ``to_atif``'s steps)."""
    messages: list[dict[str, Any]] = []
    for step in trajectory["steps"]:
        if step["source"] == "agent":
            text = (step.get("extra") or {}).get("content")  # the text as generated, when agentkit wrote it
            if not isinstance(text, str):
                text = step["message"]
                if step.get("reasoning_content"):
                    text = f"<think>{step['reasoning_content']}</think>{text}"
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if step.get("tool_calls"):
                message["tool_calls"] = [
                    {
                        "id": c["tool_call_id"],
                        "type": "function",
                        "function": {
                            "name": c["function_name"],
                            "arguments": json.dumps(c["arguments"], ensure_ascii=False),
                        },
                    }
                    for c in step["tool_calls"]
                ]
            messages.append(message)
        elif step["message"] or not step.get("observation"):
            messages.append({"role": step["source"], "content": step["message"]})
        for result in (step.get("observation") or {}).get("results", []):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": result.get("source_call_id"),
                    "content": result.get("content") or "",
                }
            )
    return messages


__all__ = ["ATIF_SCHEMA", "ATIF_VERSION", "atif_messages", "to_atif", "validate_atif"]
