"""``@tool`` derives a tool's JSON schema from the function's signature and docstring."""

import asyncio
from typing import Literal

import pytest

from agentkit.tools import as_tool, function_schema, parse_docstring, spec_of, specs, tool, tools


@tool
def search(
    query: str,
    k: int = 5,
    exact: bool = False,
    tags: list[str] | None = None,
    order: Literal["score", "date"] | None = None,
    weight: float = 1.0,
) -> str:
    """Search the collection and return the best
    matching documents.

    Args:
        query: Keywords to look for; a longer description
            that wraps onto a second line.
        k: How many documents to return.
        tags (list[str]): Only documents with these tags.
        order: How to sort the results.

    Returns:
        The hits, one a line.
    """
    return f"{query}:{k}"


class Shelf:
    def __init__(self):
        self.items: list[str] = []

    @property
    def size(self) -> int:
        raise AssertionError("declared tools are found without running properties")

    @tool(name="put", params={"item": {"type": "string", "minLength": 1}})
    def add(self, item: str) -> str:
        """Put an item on the shelf."""
        self.items.append(item)
        return f"{len(self.items)} items"

    @tool
    def take(self) -> str:
        """Take the last item."""
        return self.items.pop()


def test_schema_from_signature_and_docstring():
    spec = spec_of(search)
    assert spec.name == "search"
    assert spec.function.description == "Search the collection and return the best matching documents."
    assert spec.function.parameters == {
        "type": "object",
        "properties": {
            "query": {
                "type": "string",
                "description": "Keywords to look for; a longer description that wraps onto a second line.",
            },
            "k": {"type": "integer", "description": "How many documents to return.", "default": 5},
            "exact": {"type": "boolean", "default": False},
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Only documents with these tags.",
            },
            "order": {"type": "string", "description": "How to sort the results.", "enum": ["score", "date"]},
            "weight": {"type": "number", "default": 1.0},
        },
        "required": ["query"],
        "additionalProperties": False,
    }


def test_methods_name_override_and_given_schemas():
    shelf = Shelf()
    assert [s.name for s in specs(Shelf)] == ["put", "take"]
    by_name = {t.name: t for t in tools(shelf)}
    assert by_name["put"].parameters["properties"] == {"item": {"type": "string", "minLength": 1}}
    assert by_name["take"].parameters == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }
    assert asyncio.run(by_name["put"](item="book")).content == "1 items"
    assert asyncio.run(as_tool(shelf.take)()).content == "book"


def test_declaration_errors_are_caught_at_import_time():
    with pytest.raises(TypeError, match="needs a docstring"):
        tool(lambda x: x)
    with pytest.raises(TypeError, match="unknown parameters"):
        function_schema(search, params={"nope": {}})
    with pytest.raises(TypeError, match="not declared with @tool"):
        spec_of(print)


def test_docstring_sections():
    assert parse_docstring("One line.\n\nArgs:\n    a: first\n    b: second\n") == (
        "One line.",
        {"a": "first", "b": "second"},
    )
