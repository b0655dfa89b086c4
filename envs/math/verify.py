"""Final-answer extraction and math-verify checking in killable worker processes.

Extraction rules, chosen against answer-gaming:
- only the final assistant message counts: answers inside tool outputs or earlier turns do not;
- ``<think>`` reasoning, code (fenced or inline) and raw tool-call/response blocks are cut first, so a
  ``\\boxed{}`` printed by code or muttered while thinking is not an answer;
- conventions are tried in the configured order (``boxed``, ``answer_tag``, ``final_line``,
  ``last_number``); within one, the LAST occurrence wins (a hedge of several boxes is judged on its last);
- an answer longer than ``max_chars`` is rejected, not parsed.

math-verify's own timeout uses ``signal.alarm``, which only works on a main thread; so checks run in
spawned worker processes (each on its own main thread), and a worker that overruns the hard timeout
is killed and replaced.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import VerifierError

CONVENTIONS = ("boxed", "answer_tag", "final_line", "last_number")

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_FENCED = re.compile(r"```.*?(```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_BLOCKS = re.compile(r"<(tool_call|tool_response)>.*?(</\1>|$)", re.DOTALL)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FINAL_LINE = re.compile(r"(?im)^[^\n]*?\b(?:final answer|the answer is)\b\s*(?:is)?\s*[:：]?\s*(.+?)\s*$")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:/\d+)?")


def visible_text(text: str, *, include_think: bool = False) -> str:
    """The part of an assistant message that can hold an answer (no reasoning, code or call blocks)."""
    if not include_think:
        text = _THINK.sub(" ", text)
    text = _BLOCKS.sub(" ", text)
    text = _FENCED.sub(" ", text)
    return _INLINE_CODE.sub(" ", text)


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the balanced ``{...}`` group opening at ``text[start]``, and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index], index + 1
        index += 1
    return None


def boxed_answers(text: str) -> list[str]:
    """Every ``\\boxed{...}`` / ``\\fbox{...}`` content in order (``\\boxed 5`` form too); unbalanced boxes are skipped."""
    found = []
    for match in _BOX.finditer(text):
        after = match.end()
        group = _braced(text, after)
        if group is not None:
            found.append(group[0])
        elif match.group(0).endswith((" ", "\t")) or text[after : after + 1].isalnum():
            token = re.match(r"[^\s$]+", text[after:])
            if token:
                found.append(token.group(0))
    return found


def extract_answer(
    text: str, conventions: Sequence[str] = ("boxed",), *, include_think: bool = False
) -> str | None:
    """The final answer in ``text`` by the first convention that finds one (its last occurrence)."""
    for name in conventions:
        if name not in CONVENTIONS:
            raise ValueError(f"unknown answer convention '{name}'; known: {', '.join(CONVENTIONS)}")
    visible = visible_text(text, include_think=include_think)
    for name in conventions:
        if name == "boxed":
            found = boxed_answers(visible)
        elif name == "answer_tag":
            found = _ANSWER_TAG.findall(visible)
        elif name == "final_line":
            found = [m.group(1).rstrip(".") for m in _FINAL_LINE.finditer(visible)]
        else:
            found = _NUMBER.findall(visible)
        found = [f.strip().strip("$").strip() for f in found]
        found = [f for f in found if f]
        if found:
            return found[-1]
    return None


_ASSIGN_SPLIT = re.compile(r",|;|\\text\{\s*and\s*\}|\\quad|\band\b")
_ASSIGN = re.compile(r"^\s*([A-Za-z])\s*=\s*(.+?)\s*$", re.DOTALL)
_PAIR = re.compile(r"^\s*(?:\\left)?[(\[]\s*(.+?)\s*(?:\\right)?[)\]]\s*$", re.DOTALL)


def split_assignments(answer: str, variables: Sequence[str]) -> dict[str, str] | None:
    """``x = 1, y = 2`` or the ordered tuple ``(1, 2)`` as ``{x: 1, y: 2}``; None when neither form fits.

    math-verify reads ``(-3, 2)`` as an interval and compares it to ``x = 2, y = -3`` as a set, so a
    swapped pair would pass; systems are therefore checked variable by variable.
    """
    pair = _PAIR.match(answer)
    if pair and "=" not in answer:
        parts = [p.strip() for p in pair.group(1).split(",")]
        return dict(zip(variables, parts, strict=True)) if len(parts) == len(variables) else None
    values: dict[str, str] = {}
    for part in _ASSIGN_SPLIT.split(answer):
        if not part.strip():
            continue
        match = _ASSIGN.match(part)
        if match is None or match.group(1) in values:
            return None
        values[match.group(1)] = match.group(2)
    return values if sorted(values) == sorted(variables) else None


# ---------------------------------------------------------------------------------------------------
# Run in the worker processes (``agentkit.envs.math.worker``), on their main thread, so math-verify's signal
# timeouts work.


def verify_pairs(pairs: Sequence[tuple[str, str]], timeout: int = 5) -> list[dict[str, Any]]:
    """math-verify each ``(gold, answer)`` LaTeX pair: ``[{equal, gold, answer}, ...]`` (parsed forms)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    results = []
    for gold, answer in pairs:
        parsed_gold = parse(f"${gold}$", extraction_config=configs, parsing_timeout=timeout)
        if not parsed_gold:
            raise ValueError(f"math-verify cannot parse the reference answer {gold!r}")
        parsed_answer = parse(f"${answer}$", extraction_config=configs, parsing_timeout=timeout)
        equal = bool(parsed_answer) and verify(parsed_gold, parsed_answer, timeout_seconds=timeout)
        results.append(
            {
                "equal": equal,
                "gold": str(parsed_gold[0]),
                "answer": str(parsed_answer[0]) if parsed_answer else None,
            }
        )
    return results


class _Worker:
    """A ``python -m envs.math.worker`` child (not multiprocessing: that re-imports the caller's __main__)."""

    def __init__(self, preload: Sequence[str] = ()) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agentkit.envs.math.worker", *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )

    def request(self, target: str, args: tuple, timeout: float) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"target": target, "args": list(args)}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer within {timeout:g} s")
        line = self.process.stdout.readline()
        if not line:
            raise EOFError(f"worker exited with code {self.process.wait()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["value"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class HardTimeoutPool:
    """Spawned worker processes that run ``module:function`` calls; a call past its deadline kills its
    worker (whatever it was stuck in) and a fresh one takes its place. Usable from any event loop."""

    def __init__(self, workers: int = 1, preload: Sequence[str] = ()):
        self.size = max(1, workers)
        self.preload = tuple(preload)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._all: list[_Worker] = []
        self._started = False
        self._closed = False

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise VerifierError("the verifier pool is closed")
            if not self._started:
                for _ in range(self.size):
                    self._add()
                self._started = True

    def _add(self) -> None:
        worker = _Worker(self.preload)
        self._all.append(worker)
        self._idle.put(worker)

    def call_sync(self, target: str, args: tuple, timeout: float) -> Any:
        self._start()
        worker = self._idle.get()
        healthy = True
        try:
            return worker.request(target, args, timeout)
        except TimeoutError as exc:
            healthy = False
            raise VerifierError(f"verifier call {target} timed out: {exc}; its worker was killed") from None
        except (EOFError, OSError, ValueError) as exc:
            healthy = False
            raise VerifierError(f"verifier worker died during {target}: {exc!r}") from None
        except RuntimeError as exc:
            raise VerifierError(f"verifier call {target} failed: {exc}") from None
        finally:
            if healthy:
                self._idle.put(worker)
            else:
                with self._lock:
                    worker.kill()
                    self._all.remove(worker)
                    if not self._closed:
                        self._add()

    async def call(self, target: str, args: tuple, timeout: float) -> Any:
        return await asyncio.to_thread(self.call_sync, target, args, timeout)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._all]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


@dataclass
class AnswerCheck:
    passed: bool
    reason: str
    details: dict[str, Any]


class MathVerifier:
    """Checks a final message against a reference answer: extraction rules above, math-verify in workers."""

    def __init__(
        self,
        conventions: Sequence[str] = ("boxed",),
        *,
        include_think: bool = False,
        max_chars: int = 300,
        timeout: int = 5,
        hard_timeout: float = 30.0,
        workers: int = 1,
    ):
        for name in conventions:
            if name not in CONVENTIONS:
                raise ValueError(f"unknown answer convention '{name}'; known: {', '.join(CONVENTIONS)}")
        self.conventions = tuple(conventions)
        self.include_think = include_think
        self.max_chars = max_chars
        self.timeout = timeout
        self.hard_timeout = hard_timeout
        self.pool = HardTimeoutPool(workers, preload=("math_verify",))

    def extract(self, text: str) -> str | None:
        return extract_answer(text, self.conventions, include_think=self.include_think)

    async def check(self, text: str, gold: str, *, variables: Sequence[str] | None = None) -> AnswerCheck:
        answer = self.extract(text)
        shown = " or ".join(self.conventions)
        if answer is None:
            return AnswerCheck(
                False, f"no final answer found (expected {shown} in the final message)", {"extracted": None}
            )
        if len(answer) > self.max_chars:
            return AnswerCheck(
                False,
                f"the final answer is {len(answer)} characters long (limit {self.max_chars})",
                {"extracted": answer[:200] + "..."},
            )
        if variables:
            gold_values = split_assignments(gold, variables)
            if gold_values is None:
                raise VerifierError(f"reference answer {gold!r} does not assign {', '.join(variables)}")
            values = split_assignments(answer, variables)
            if values is None:
                return AnswerCheck(
                    False,
                    f"the answer {answer!r} does not give a value for each of {', '.join(variables)}",
                    {"extracted": answer},
                )
            pairs = [(gold_values[v], values[v]) for v in variables]
        else:
            pairs = [(gold, answer)]
        results = await self.pool.call(
            "agentkit.envs.math.verify:verify_pairs", (pairs, self.timeout), self.hard_timeout
        )
        passed = all(r["equal"] for r in results)
        verb = "matches" if passed else "does not match"
        return AnswerCheck(
            passed,
            f"math-verify: the answer {answer!r} {verb} the reference",
            {"extracted": answer, "gold": gold, "parsed": results},
        )

    def close(self) -> None:
        self.pool.close()
