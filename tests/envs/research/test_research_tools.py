"""search / open / find: deterministic, bounded, and wrong calls are errors the model can read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentkit.envs.research.corpus import Document
from agentkit.envs.research.index import SearchIndex, build_index
from agentkit.envs.research.tools import ResearchTools, ToolLimits
from agentkit.errors import ToolError

TEXT = " ".join(f"Sentence {i} mentions the harbour of Kelvaro and item{i}." for i in range(120))


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> ResearchTools:
    out = tmp_path_factory.mktemp("tools") / "idx"
    docs = [Document("kelvaro", "Kelvaro", TEXT, "https://example.org/Kelvaro")]
    docs += [
        Document(f"other-{i}", f"Other {i}", f"Kelvaro is mentioned in other document {i}.")
        for i in range(30)
    ]
    build_index(docs, out)
    return ResearchTools(
        SearchIndex(out),
        ToolLimits(page_chars=500, snippet_chars=120, max_results=10, default_results=5, max_matches=4),
    )


def test_search_lists_ranked_ids_offsets_and_bounded_snippets(tools: ResearchTools) -> None:
    out = tools.search("item57 harbour")
    assert out.startswith('Results for "item57 harbour":\n1. Kelvaro\n   id: kelvaro | offset: ')
    offset = int(re.search(r"offset: (\d+)", out).group(1))
    assert "item57" in TEXT[offset : offset + 200]
    assert out == tools.search("item57 harbour")
    many = tools.search("Kelvaro", k=50)
    assert len(re.findall(r"^\d+\. ", many, re.MULTILINE)) == 10
    assert all(len(line) <= 125 for line in many.splitlines())
    assert len(re.findall(r"^\d+\. ", tools.search("Kelvaro"), re.MULTILINE)) == 5
    assert tools.search("nothingmatcheszz").startswith("No documents match")
    with pytest.raises(ToolError, match="no searchable words"):
        tools.search("  the  ")


def test_open_pages_tile_the_document(tools: ResearchTools) -> None:
    offset, pages = 0, []
    while True:
        page = tools.open("kelvaro", offset)
        header, body = page.split("\n---\n", 1)
        assert header.startswith("document: kelvaro\ntitle: Kelvaro\nurl: https://example.org/Kelvaro\n")
        assert len(body) <= 500
        pages.append(body)
        following = re.search(r"next page: offset=(\d+)", header)
        if not following:
            assert "end of document" in header
            break
        offset = int(following.group(1))
    assert len(pages) > 5
    assert " ".join(pages).split() == TEXT.split()
    assert tools.open("Kelvaro", 0) == tools.open("kelvaro")  # by exact title too


def test_open_starts_at_a_word_boundary_and_rejects_bad_calls(tools: ResearchTools) -> None:
    body = tools.open("kelvaro", 1003).split("\n---\n", 1)[1]
    assert TEXT[1003 - 40 : 1003 + 40].find(body[:10]) >= 0 and TEXT[TEXT.find(body[:30]) - 1] == " "
    with pytest.raises(ToolError, match="past the end"):
        tools.open("kelvaro", len(TEXT))
    with pytest.raises(ToolError, match=">= 0"):
        tools.open("kelvaro", -1)
    with pytest.raises(ToolError, match="no document with id 'missing'"):
        tools.open("missing")
    with pytest.raises(ToolError, match="no document"):
        tools.find("missing", "x")


def test_find_reports_offsets_with_context_and_is_capped(tools: ResearchTools) -> None:
    out = tools.find("kelvaro", "ITEM7.")
    assert '1 match for "ITEM7."' in out
    (offset,) = map(int, re.findall(r"- offset (\d+):", out))
    assert TEXT[offset : offset + 6] == "item7."
    many = tools.find("kelvaro", "harbour")
    assert "120 matches" in many and "showing the first 4" in many
    assert len(re.findall(r"^- offset", many, re.MULTILINE)) == 4
    assert "No matches" in tools.find("kelvaro", "zzz")


def test_tool_schemas_bound_the_arguments(tools: ResearchTools) -> None:
    by_name = {t.name: t for t in tools.as_tools()}
    assert sorted(by_name) == ["find", "open", "search"]
    assert by_name["search"].parameters["properties"]["k"]["maximum"] == 10
    assert by_name["open"].parameters["required"] == ["id"]
    assert by_name["find"].parameters["properties"]["pattern"]["maxLength"] == 200


def test_tools_over_a_large_generated_index_stay_bounded(index_path: Path, encyclopedia) -> None:
    tools = ResearchTools(SearchIndex(index_path))
    for entity in encyclopedia.entities[:30]:
        assert len(tools.search(entity.name, k=10)) < 10 * 400
        doc = tools.index.get(entity.name)
        assert len(tools.open(doc.id)) < 1500 + 300
