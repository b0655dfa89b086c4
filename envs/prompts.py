"""System prompts in the Youtu agent format: ``<think>`` reasoning, ``<tool_call>`` blocks, and the
five phases of the paper's agentic trajectories (Analysis -> Plan -> Action -> Reflection -> Summary)."""

from __future__ import annotations

from agentkit.env import YOUTU_AGENT_PROMPT

PHASES = """Work in five phases:
- Analysis: restate what is asked and what is known, inside <think>.
- Plan: decide the steps and which tools to use, inside <think>.
- Action: call the tools; one or several <tool_call> blocks per turn.
- Reflection: after each result, check it against the plan, inside <think>; fix mistakes before going on.
- Summary: end with a short summary and the final answer, without any tool call."""


def agent_prompt(guidance: str) -> str:
    """The shared agent prompt, the phase guidance, then the env's own rules (answer format...)."""
    return f"{YOUTU_AGENT_PROMPT}\n\n{PHASES}\n\n{guidance.strip()}"
