"""Server-sent events for ``stream=true``: OpenAI ``chat.completion.chunk`` deltas built token by token.

Content is sent as soon as it cannot turn out to be the start of a ``<tool_call>`` block or of a stop
string; each tool call is sent (id and name, then its arguments) as soon as its block closes. When a
row finishes, its ``GenerationResult`` is parsed exactly as the non-streamed response is, and whatever
that final parse holds beyond what was already sent is sent then, so the concatenated deltas equal the
non-streamed message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from agentkit.toolcalls import CALL_CLOSE, CALL_OPEN, parse_tool_calls


def sse(payload: dict[str, Any] | str) -> str:
    """One server-sent event line pair (``data: ...``)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _held_suffix(text: str, markers: list[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of one of ``markers``."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if text.endswith(marker[:size]):
                longest = size
                break
    return longest


class ChoiceStream:
    """The deltas of one choice: feed it token ids as they come, then the final parsed message."""

    def __init__(
        self,
        index: int,
        decode: Callable[[list[int]], str],
        *,
        prefix: str = "",
        parse_tools: bool,
        stops: tuple[str, ...] = (),
        eos_ids: set[int] | frozenset[int] = frozenset(),
        id_prefix: str = "call",
    ):
        self.index = index
        self.decode = decode
        self.prefix = prefix
        self.parse_tools = parse_tools
        self.stops = tuple(stops)
        self.eos_ids = eos_ids
        self.id_prefix = id_prefix
        self.ids: list[int] = []
        self.sent_content = ""
        self.sent_calls = 0
        self.in_calls = False
        """True once a ``<tool_call>`` opened: later content waits for the final parse."""

    def _text(self) -> str:
        return self.prefix + self.decode(self.ids)

    def feed(self, token_id: int) -> list[dict[str, Any]]:
        """The deltas this new token makes safe to send."""
        if token_id in self.eos_ids:
            return []
        self.ids.append(token_id)
        text = self._text()
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return []
        for stop in self.stops:
            at = text.find(stop)
            if at >= 0:
                text = text[:at]
        deltas: list[dict[str, Any]] = []
        if self.parse_tools:
            opened = text.find(CALL_OPEN)
            if opened >= 0:
                self.in_calls = True
                closed = text.rfind(CALL_CLOSE)
                if closed > opened:
                    parsed = parse_tool_calls(text[: closed + len(CALL_CLOSE)], id_prefix=self.id_prefix)
                    deltas.extend(self.call_deltas(parsed.tool_calls))
                text = text[:opened]
        if not self.in_calls or len(text) > len(self.sent_content):
            markers = list(self.stops) + ([CALL_OPEN] if self.parse_tools else [])
            safe = text[: len(text) - _held_suffix(text, markers)]
            if self.parse_tools:
                safe = safe.rstrip()  # trailing space before a call block is dropped by the final parse
            if safe.startswith(self.sent_content) and len(safe) > len(self.sent_content):
                deltas.insert(0, {"content": safe[len(self.sent_content) :]})
                self.sent_content = safe
        return deltas

    def call_deltas(self, calls: list[Any]) -> list[dict[str, Any]]:
        """OpenAI tool-call deltas for the calls past those already sent: id + name, then arguments."""
        deltas = []
        for position, call in enumerate(calls[self.sent_calls :], start=self.sent_calls):
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": position,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.function.name, "arguments": ""},
                        }
                    ]
                }
            )
            deltas.append(
                {"tool_calls": [{"index": position, "function": {"arguments": call.function.arguments}}]}
            )
        self.sent_calls = max(self.sent_calls, len(calls))
        return deltas

    def finish(self, message: dict[str, Any], calls: list[Any]) -> list[dict[str, Any]]:
        """The deltas still owed once the final message (``content``, parsed ``calls``) is known."""
        deltas: list[dict[str, Any]] = []
        content = message.get("content") or ""
        if content.startswith(self.sent_content) and len(content) > len(self.sent_content):
            deltas.append({"content": content[len(self.sent_content) :]})
            self.sent_content = content
        deltas.extend(self.call_deltas(calls))
        return deltas


async def merge_rows(futures: list[Any], queue: asyncio.Queue) -> AsyncIterator[tuple[int, int | None, Any]]:
    """Yield ``(choice, token_id, None)`` per token and ``(choice, None, future)`` when a row ends.

    Token callbacks and done callbacks are put on ``queue`` from the generation thread in order, so a
    row's end always comes after its last token.
    """
    remaining = len(futures)
    while remaining:
        index, token, future = await queue.get()
        if token is None:
            remaining -= 1
        yield index, token, future


__all__ = ["ChoiceStream", "merge_rows", "sse"]
