"""The research tools: ``search(query, k)``, ``open(id, offset)`` and ``find(id, pattern)``.

Every output is deterministic (same index, same call, same text) and bounded: at most ``max_results``
hits with snippets of at most ``snippet_chars``; one page of at most ``page_chars``; at most
``max_matches`` matches with a short context each. A call the model got wrong (unknown id, offset
past the end) raises ``ToolError``, which the model sees as an observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentkit.env import Tool
from agentkit.envs.research.corpus import Document
from agentkit.envs.research.index import SearchIndex, tokenize
from agentkit.envs.research.verify import DOC_HEADER
from agentkit.errors import ToolError


@dataclass(frozen=True)
class ToolLimits:
    page_chars: int = 1500
    snippet_chars: int = 240
    max_results: int = 10
    default_results: int = 5
    max_matches: int = 10
    context_chars: int = 80


def tool_parameters(limits: ToolLimits) -> dict[str, dict[str, Any]]:
    return {
        "search": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 500,
                    "description": "Keywords: names, places, dates, facts to look for.",
                },
                "k": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": limits.max_results,
                    "description": f"How many documents to return (default {limits.default_results}).",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "open": {
            "type": "object",
            "properties": {
                "id": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A document id from the search results.",
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Character offset to start reading at (default 0; search and find "
                    "results give offsets).",
                },
            },
            "required": ["id"],
            "additionalProperties": False,
        },
        "find": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "minLength": 1, "description": "A document id."},
                "pattern": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 200,
                    "description": "Text to look for in the document (case-insensitive, literal).",
                },
            },
            "required": ["id", "pattern"],
            "additionalProperties": False,
        },
    }


DESCRIPTIONS = {
    "search": "Search the document collection. Returns ranked documents with their ids, titles, the offset of "
    "the best matching passage and a snippet of it.",
    "open": "Read one page of a document, starting at a character offset. Says where the next page starts.",
    "find": "Find every occurrence of a text in a document; returns the offsets with a little context.",
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ResearchTools:
    """The three tools over one index."""

    def __init__(self, index: SearchIndex, limits: ToolLimits | None = None):
        self.index = index
        self.limits = limits or ToolLimits()

    def as_tools(self) -> list[Tool]:
        parameters = tool_parameters(self.limits)
        return [
            Tool(name, DESCRIPTIONS[name], parameters[name], fn)
            for name, fn in (("search", self.search), ("open", self.open), ("find", self.find))
        ]

    def _document(self, key: str) -> Document:
        doc = self.index.get(key)
        if doc is None:
            raise ToolError(f"no document with id '{key}'; use an id from the search results")
        return doc

    def search(self, query: str, k: int | None = None) -> str:
        limits = self.limits
        k = limits.default_results if k is None else max(1, min(int(k), limits.max_results))
        if not tokenize(query):
            raise ToolError("the query has no searchable words; use names, places, dates or other keywords")
        hits = self.index.search(query, k, limits.snippet_chars)
        shown = _one_line(query)[:100]
        if not hits:
            return f'No documents match "{shown}". Try other keywords (names, places, dates).'
        lines = [f'Results for "{shown}":']
        for rank, hit in enumerate(hits, start=1):
            lines.append(f"{rank}. {hit.title}\n   id: {hit.doc_id} | offset: {hit.offset}\n   {hit.snippet}")
        return "\n".join(lines)

    def open(self, id: str, offset: int = 0) -> str:
        doc = self._document(id)
        text, size = doc.text, len(doc.text)
        offset = int(offset)
        if offset < 0:
            raise ToolError(f"offset must be >= 0, not {offset}")
        if offset >= size:
            raise ToolError(f"offset {offset} is past the end of '{doc.id}' ({size} characters)")
        start = offset
        if 0 < start and not text[start - 1].isspace():
            back = max(
                text.rfind(" ", max(0, start - 40), start), text.rfind("\n", max(0, start - 40), start)
            )
            if back >= 0:
                start = back + 1
        end = min(size, start + self.limits.page_chars)
        if end < size:
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start + self.limits.page_chars // 2:
                end = cut
        following = end
        while following < size and text[following].isspace():
            following += 1
        where = (
            f"characters {start}-{end} of {size}; next page: offset={following}"
            if following < size
            else f"characters {start}-{end} of {size}; end of document"
        )
        header = [f"{DOC_HEADER}{doc.id}", f"title: {doc.title}"]
        if doc.url:
            header.append(f"url: {doc.url}")
        header.append(where)
        return "\n".join(header) + "\n---\n" + text[start:end]

    def find(self, id: str, pattern: str) -> str:
        doc = self._document(id)
        needle = pattern.strip().lower()
        if not needle:
            raise ToolError("the pattern is empty")
        haystack = doc.text.lower()
        positions = []
        at = haystack.find(needle)
        while at >= 0:
            positions.append(at)
            at = haystack.find(needle, at + max(1, len(needle)))
        header = f"{DOC_HEADER}{doc.id}\ntitle: {doc.title}\n"
        shown = _one_line(pattern)[:100]
        if not positions:
            return header + f'No matches for "{shown}" in this document ({len(doc.text)} characters).'
        limit, context = self.limits.max_matches, self.limits.context_chars
        lines = [
            f'{len(positions)} match{"es" if len(positions) > 1 else ""} for "{shown}"'
            + (f" (showing the first {limit})" if len(positions) > limit else "")
            + ":"
        ]
        for position in positions[:limit]:
            left, right = max(0, position - context), min(len(doc.text), position + len(needle) + context)
            snippet = _one_line(doc.text[left:right])
            lines.append(
                f"- offset {position}: {'…' if left else ''}{snippet}{'…' if right < len(doc.text) else ''}"
            )
        return header + "\n".join(lines)
