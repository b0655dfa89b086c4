"""The reference policy: follows a question's recorded evidence chain with real tool calls.

For each fact it searches (the entity and a cue word), checks that the evidence document is among
the results, opens it (or, when the fact is beyond the first page, ``find``s the cue and opens the
page there), and quotes the sentence that states the fact from the observation. Bridge entities,
comparison winners and differences are taken from what it read, and the final answer is checked
against the reference before it is given: a chain that cannot be followed is a ``ModelError``
(the trajectory is not written as data), never a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from agentkit.client import GeneratorClient
from agentkit.envs.research.questions import LABEL
from agentkit.envs.research.verify import normalize
from agentkit.errors import ModelError
from agentkit.records import Message, Task
from agentkit.toolcalls import render_tool_call

Turn = Generator[str, list[Message], Any]

_MATCH_OFFSET = re.compile(r"^- offset (\d+):", re.MULTILINE)
_SENTENCE_BREAK = re.compile(r"[.!?](?:\s+|$)")


def _hit_offset(doc: str, results: str) -> int | None:
    match = re.search(rf"^   id: {re.escape(doc)} \| offset: (\d+)$", results, re.MULTILINE)
    return int(match.group(1)) if match else None


def _call(name: str, **arguments: Any) -> str:
    return render_tool_call(name, arguments)


def _page_text(observation: str) -> str:
    return observation.split("\n---\n", 1)[1] if "\n---\n" in observation else ""


def _quote(page: str, value: str) -> str:
    """The sentence of ``page`` that contains ``value``."""
    at = page.find(value)
    starts = [m.end() for m in _SENTENCE_BREAK.finditer(page, 0, at)]
    end = _SENTENCE_BREAK.search(page, at + len(value))
    return " ".join(page[starts[-1] if starts else 0 : end.start() + 1 if end else len(page)].split())


def _number(value: str) -> int:
    return int(value.replace(",", ""))


class _Reader:
    """Reads facts through tool calls and remembers the pages it has seen."""

    def __init__(self, page_chars: int):
        self.page_chars = page_chars
        self.pages: dict[str, list[str]] = {}

    def seen(self, step: dict[str, Any]) -> str | None:
        """The sentence stating the step's fact, if a page read so far shows it whole."""
        for page in self.pages.get(step["doc"], []):
            if step["sentence"] in page and step["value"] in step["sentence"]:
                return _quote(page[page.index(step["sentence"]) :], step["value"])
        return None

    def search_calls(self, steps: list[dict[str, Any]]) -> str:
        return "\n".join(_call("search", query=s["query"], k=5) for s in steps)

    def locate(self, steps: list[dict[str, Any]], observations: list[Message]) -> Turn:
        """The search-result offset of each step's document; searches its exact title when missing."""
        offsets: dict[int, int | None] = {}
        missing = []
        for step, obs in zip(steps, observations, strict=False):
            offsets[id(step)] = _hit_offset(step["doc"], obs.content)
            if offsets[id(step)] is None:
                missing.append(step)
        if missing:
            titles = ", ".join(f'"{s["title"]}"' for s in missing)
            retry = yield (
                f"<think>Search: the results do not show the article I need for {titles}; "
                "I search its title instead.</think>\n"
                + "\n".join(_call("search", query=s["title"], k=5) for s in missing)
            )
            for step, obs in zip(missing, retry, strict=False):
                offsets[id(step)] = _hit_offset(step["doc"], obs.content)
                if offsets[id(step)] is None:
                    raise ModelError(
                        f"reference solver: document '{step['doc']}' not found by search "
                        f"('{step['query']}', then '{step['title']}')"
                    )
        return offsets

    def page_start(self, step: dict[str, Any], hit_offset: int) -> int | None:
        """Where to open so the fact is on the page: the top, or the passage search pointed at."""
        end = step["offset"] + len(step["sentence"]) + 50
        if end < self.page_chars:
            return 0
        if hit_offset <= step["offset"] and end < hit_offset + self.page_chars:
            return hit_offset
        return None

    def read(self, steps: list[dict[str, Any]], intro: str) -> Turn:
        """Search, locate, open and quote each step's fact (several steps share turns). Returns quotes."""
        observations = yield intro + "\n" + self.search_calls(steps)
        offsets = yield from self.locate(steps, observations)
        direct = [(s, self.page_start(s, offsets[id(s)])) for s in steps]
        direct = [(s, start) for s, start in direct if start is not None]
        if direct:
            names = ", ".join(
                f"[{s['doc']}]" + (f" at offset {start}" if start else "") for s, start in direct
            )
            pronoun = "them" if len(direct) > 1 else "it"
            observations = yield (
                f"<think>Read: the search found {names}; I open {pronoun} to read the passage."
                "</think>\n" + "\n".join(_call("open", id=s["doc"], offset=start) for s, start in direct)
            )
            for (step, _), obs in zip(direct, observations, strict=False):
                self.pages.setdefault(step["doc"], []).append(_page_text(obs.content))
        quotes = []
        for step in steps:
            quote = self.seen(step)
            if quote is None:
                quote = yield from self.read_far(step)
            quotes.append(quote)
        return quotes

    def read_far(self, step: dict[str, Any]) -> Turn:
        """Find the cue in a long document and open the page where the fact is."""
        found = yield (
            f'<think>Read: [{step["doc"]}] is long; I look for "{step["cue"]}" in it to find the '
            f"{LABEL[step['fact']]}.</think>\n" + _call("find", id=step["doc"], pattern=step["cue"])
        )
        offsets = [int(x) for x in _MATCH_OFFSET.findall(found[0].content)]
        near = [o for o in offsets if step["offset"] <= o < step["offset"] + len(step["sentence"])]
        if not near:
            raise ModelError(
                f"reference solver: '{step['cue']}' not found near offset {step['offset']} of '{step['doc']}'"
            )
        start = max(0, near[0] - 120)
        page = yield (
            f"<think>Read: there is a match at offset {near[0]}; I open the page there.</think>\n"
            + _call("open", id=step["doc"], offset=start)
        )
        self.pages.setdefault(step["doc"], []).append(_page_text(page[0].content))
        quote = self.seen(step)
        if quote is None:
            raise ModelError(
                f"reference solver: '{step['value']}' is not on the page of '{step['doc']}' at offset {start}"
            )
        return quote


def _describe(step: dict[str, Any], first: bool) -> str:
    subject = step["entity"] if first else f"that {step['kind']}"
    return f"the {LABEL[step['fact']]} of {subject}"


def _check(answer: str, task: Task) -> None:
    references = [str(task.meta["answer"]), *map(str, task.meta.get("aliases") or [])]
    if normalize(answer) not in {normalize(r) for r in references}:
        raise ModelError(f"reference solver derived '{answer}' but the reference is '{task.meta['answer']}'")


def chain_solver(task: Task, page_chars: int) -> GeneratorClient:
    """A client that solves a generated question by following ``task.meta['evidence']``."""
    steps: list[dict[str, Any]] = [dict(s) for s in task.meta["evidence"]]
    operation = task.meta.get("operation", {}).get("op", "chain")

    def solve() -> Turn:
        reader = _Reader(page_chars)
        facts: list[str] = []
        if operation == "chain":
            plan = "; ".join(f"{i + 1}) {_describe(s, i == 0)}" for i, s in enumerate(steps))
            intro = (
                f"<think>Analysis: the question asks for {_describe(steps[-1], len(steps) == 1)}, "
                f"reached in {len(steps)} hop{'s' if len(steps) > 1 else ''}.\nPlan: {plan}, each from a "
                f"document. Search: I start with {steps[0]['entity']}.</think>"
            )
            for i, step in enumerate(steps):
                if i:
                    intro = (
                        f"<think>Read: so the {LABEL[steps[i - 1]['fact']]} is {step['entity']}. "
                        f"Search: next, {_describe(step, True)}.</think>"
                    )
                (quote,) = yield from reader.read([step], intro)
                facts.append(f"{quote} [{step['doc']}]")
            answer = steps[-1]["value"]
            summary = f"so the answer is {answer}"
        else:
            a, b = steps[0], steps[1]
            label = LABEL[a["fact"]]
            then = (
                "subtract"
                if operation == "difference"
                else f"pick the one with the {'smaller' if task.meta['operation']['direction'] == 'min' else 'larger'} "
                f"value and follow " + "; then ".join(_describe(s, False) for s in steps[2:])
            )
            intro = (
                f"<think>Analysis: the question compares {a['entity']} and {b['entity']} by their {label}. "
                f"\nPlan: read both {label}s, then {then}. Search: both at once.</think>"
            )
            quotes = yield from reader.read([a, b], intro)
            facts += [f"{q} [{s['doc']}]" for q, s in zip(quotes, (a, b), strict=True)]
            x, y = _number(a["value"]), _number(b["value"])
            if operation == "difference":
                answer = str(abs(x - y))
                summary = f"{a['value']} and {b['value']} differ by {answer}"
            else:
                direction = task.meta["operation"]["direction"]
                winner = a if (x < y) == (direction == "min") else b
                summary = (
                    f"{winner['entity']} has the {'smaller' if direction == 'min' else 'larger'} {label} "
                    f"({winner['value']})"
                )
                if steps[2]["entity"] != winner["entity"]:
                    raise ModelError(
                        f"reference solver picked {winner['entity']}, the chain continues from "
                        f"{steps[2]['entity']}"
                    )
                for i, step in enumerate(steps[2:]):
                    quote = reader.seen(step)
                    if quote is None:
                        intro = (
                            f"<think>Cross-check: {summary}. Search: next, {_describe(step, True)}.</think>"
                            if i == 0
                            else f"<think>Read: that is {step['entity']}. Search: next, {_describe(step, True)}."
                            "</think>"
                        )
                        (quote,) = yield from reader.read([step], intro)
                    facts.append(f"{quote} [{step['doc']}]")
                answer = steps[-1]["value"]
                summary += f"; following the chain, the answer is {answer}"
        _check(answer, task)
        evidence = " ".join(facts)
        yield (
            f"<think>Cross-check: {evidence} Every step is supported by a document I read; {summary}."
            f"</think>\nSummary: {summary}.\n<answer>{answer}</answer>"
        )

    return GeneratorClient(solve, name="research-reference")


def evidence_solver(task: Task, titles: dict[str, str]) -> GeneratorClient:
    """For user questions that list evidence document ids only: search and open each, then answer."""
    docs = [s["doc"] if isinstance(s, dict) else str(s) for s in task.meta["evidence"]]

    def solve() -> Turn:
        for i, doc in enumerate(docs):
            title = titles[doc]
            lead = (
                f"Analysis: the answer must be supported by {len(docs)} evidence document(s).\n"
                "Plan: read each evidence document, then answer.\n"
                if i == 0
                else ""
            )
            results = yield f"<think>{lead}Search: {title}.</think>\n" + _call("search", query=title, k=5)
            if f"id: {doc} |" not in results[0].content:
                raise ModelError(f"reference solver: document '{doc}' not found by searching its title")
            yield f"<think>Read: open [{doc}].</think>\n" + _call("open", id=doc, offset=0)
        yield (
            f"<think>Cross-check: the documents support the answer.</think>\n"
            f"Summary: I read {', '.join(docs)}; the answer is {task.meta['answer']}.\n"
            f"<answer>{task.meta['answer']}</answer>"
        )

    return GeneratorClient(solve, name="research-reference")
