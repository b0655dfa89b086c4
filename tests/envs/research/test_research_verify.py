"""Normalized exact match, token F1, answer extraction, and which evidence the conversation opened."""

from __future__ import annotations

import pytest

from agentkit.envs.research.verify import (
    extract_answer,
    normalize,
    opened_documents,
    score,
    token_f1,
    verify_answer,
)
from agentkit.records import Message, ToolCall


def test_normalize() -> None:
    assert normalize("The Oskar  River.") == "oskar river"
    assert normalize("1,240 km") == normalize("1240 km") == "1240 km"
    assert normalize("A, B and C!") == "b and c"
    assert normalize("12,34") == "12 34"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("<think>I read it.</think>\n<answer>Varnholm</answer>", "Varnholm"),
        ("<think>x</think>The answer is below.\nAnswer: 1887", "1887"),
        ("**Final answer:** Oskar River", "Oskar River"),
        ("so \\boxed{42}", "42"),
        ("<think>hmm</think> Varnholm", "Varnholm"),
        ("<think>only thinking</think>", None),
        ("<answer>first</answer> then <answer>second</answer>", "second"),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_score_uses_aliases_and_f1() -> None:
    assert score("the Oskar River", ["Oskar River", "Oskar"]) == (True, 1.0, "Oskar River")
    assert score("oskar", ["Oskar River", "Oskar"])[0]
    exact, f1, best = score("Oskar Lake", ["Oskar River"])
    assert not exact and f1 == pytest.approx(0.5) and best == "Oskar River"
    assert token_f1("", "x") == 0.0 and token_f1("a b c", "c b a") == 1.0


def _conversation(answer: str) -> list[Message]:
    calls = [
        ToolCall.make("c0", "open", {"id": "doc-a"}),
        ToolCall.make("c1", "open", {"id": "nope"}),
        ToolCall.make("c2", "find", {"id": "doc-b", "pattern": "born"}),
        ToolCall.make("c3", "open", {"id": "Title C"}),
    ]
    return [
        Message(role="user", content="Q?"),
        Message(role="assistant", content="<think>search</think>", tool_calls=calls),
        Message(role="tool", tool_call_id="c0", name="open", content="document: doc-a\ntitle: A\n---\ntext"),
        Message(role="tool", tool_call_id="c1", name="open", content="error: no document with id 'nope'"),
        Message(role="tool", tool_call_id="c2", name="find", content="document: doc-b\ntitle: B\n1 match"),
        Message(
            role="tool", tool_call_id="c3", name="open", content="document: doc-c\ntitle: Title C\n---\nx"
        ),
        Message(role="assistant", content=f"<think>done</think><answer>{answer}</answer>"),
    ]


def test_opened_documents_counts_successful_opens_by_their_header() -> None:
    messages = _conversation("x")
    assert opened_documents(messages) == ["doc-a", "doc-c"]
    assert opened_documents(messages, "find") == ["doc-b"]


def test_verdict_records_the_evidence_read() -> None:
    meta = {
        "answer": "1,887",
        "aliases": [],
        "evidence": [{"doc": "doc-a"}, {"doc": "doc-b"}, {"doc": "doc-z"}],
    }
    verdict = verify_answer(_conversation("1887"), meta)
    assert verdict.passed and verdict.reward == 1.0
    assert verdict.details["evidence_opened"] == ["doc-a"]
    assert verdict.details["evidence_unread"] == ["doc-z"]
    strict = verify_answer(_conversation("1887"), meta, require_evidence=True)
    assert not strict.passed and "doc-z" in strict.reason
    wrong = verify_answer(_conversation("1888"), meta)
    assert not wrong.passed and wrong.reward == 0.0 and wrong.details["f1"] == 0.0 and "1888" in wrong.reason
    silent = verify_answer(
        _conversation("x")[:-1] + [Message(role="assistant", content="<think>?</think>")], meta
    )
    assert not silent.passed and silent.reason == "no final answer"
