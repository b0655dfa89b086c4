"""Answer checking: normalized exact match and token F1 against the answer and its aliases, plus a
record of which evidence documents the trajectory actually opened.

The reward is the exact match (1 or 0); token F1 against the closest reference is kept in the
verdict's details for analysis and for partial-credit rewards downstream.

Normalization is SQuAD's (lowercase, no punctuation, no articles, single spaces) with one addition:
thousands separators inside numbers are dropped first, so ``1,240`` and ``1240`` match.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agentkit.records import Message, Verdict
from agentkit.toolcalls import split_reasoning

VERIFIER = "research-em-f1/1"

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "\u2013\u2014\u2018\u2019\u201c\u201d"})
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:final answer|answer)\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?)\s*(?:\*\*)?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
DOC_HEADER = "document: "


def normalize(text: str) -> str:
    text = _THOUSANDS.sub("", str(text).lower())
    text = text.translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def extract_answer(text: str) -> str | None:
    """The final answer of an assistant turn: ``<answer>...</answer>``, else an ``Answer:`` line,
    else ``\\boxed{...}``, else the visible text after the reasoning; None when there is nothing."""
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return tags[-1].strip()
    _, visible = split_reasoning(text)
    lines = _ANSWER_LINE.findall(visible)
    if lines:
        return lines[-1].strip()
    boxed = _BOXED.findall(visible)
    if boxed:
        return boxed[-1].strip()
    visible = visible.strip()
    return visible or None


def score(prediction: str, answers: Sequence[str]) -> tuple[bool, float, str]:
    """(exact match, best token F1, the reference that matched best) over the answer and its aliases."""
    target = normalize(prediction)
    best_f1, best = 0.0, answers[0]
    for reference in answers:
        if target == normalize(reference):
            return True, 1.0, reference
        f1 = token_f1(prediction, reference)
        if f1 > best_f1:
            best_f1, best = f1, reference
    return False, best_f1, best


def opened_documents(messages: Sequence[Message], tool: str = "open") -> list[str]:
    """Ids of the documents the conversation opened successfully with ``tool``, in first-open order.

    The id is read from the observation's header line, so an ``open`` by title counts as its document.
    """
    results = {m.tool_call_id: m.content for m in messages if m.role == "tool" and m.tool_call_id}
    opened: list[str] = []
    for message in messages:
        if message.role != "assistant":
            continue
        for call in message.tool_calls or []:
            if call.name != tool:
                continue
            content = results.get(call.id, "")
            first = content.split("\n", 1)[0]
            if not first.startswith(DOC_HEADER):
                continue
            doc_id = first[len(DOC_HEADER) :].strip()
            if doc_id not in opened:
                opened.append(doc_id)
    return opened


def final_text(messages: Sequence[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "assistant":
            return message.content if not message.tool_calls else None
    return None


def verify_answer(
    messages: Sequence[Message], meta: dict[str, Any], *, require_evidence: bool = False
) -> Verdict:
    """The verdict of a finished research conversation against ``meta`` (answer, aliases, evidence)."""
    answers = [str(meta["answer"]), *(str(a) for a in meta.get("aliases") or [])]
    evidence = []
    for step in meta.get("evidence") or []:
        doc = step["doc"] if isinstance(step, dict) else str(step)
        if doc not in evidence:
            evidence.append(doc)
    opened = opened_documents(messages)
    found = set(opened) | set(opened_documents(messages, "find"))
    details: dict[str, Any] = {
        "evidence": evidence,
        "evidence_opened": [d for d in evidence if d in opened],
        "evidence_unread": [d for d in evidence if d not in found],
        "opened": opened,
        "searches": sum(
            1 for m in messages if m.role == "assistant" for c in m.tool_calls or [] if c.name == "search"
        ),
    }
    text = final_text(messages)
    prediction = extract_answer(text) if text else None
    if prediction is None:
        return Verdict(passed=False, reward=0.0, reason="no final answer", details=details)
    exact, f1, matched = score(prediction, answers)
    details.update(prediction=prediction, exact_match=exact, f1=round(f1, 4))
    unread = details["evidence_unread"]
    if exact and require_evidence and unread:
        return Verdict(
            passed=False,
            reward=0.0,
            details=details,
            reason=f"answer {json.dumps(prediction)} matches but evidence was not read: {', '.join(unread)}",
        )
    if exact:
        reason = f"exact match: {json.dumps(prediction)} == {json.dumps(matched)}"
        if evidence:
            reason += f"; opened {len(details['evidence_opened'])}/{len(evidence)} evidence documents"
        return Verdict(passed=True, reward=1.0, reason=reason, details=details)
    return Verdict(
        passed=False,
        reward=0.0,
        details=details,
        reason=f"{json.dumps(prediction)} does not match the answer (token F1 {f1:.2f})",
    )
