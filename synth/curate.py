"""Curation: from raw rollouts to a training set.

Per trajectory: status, verdict, turn and length bounds, tool-error rate, format, decontamination.
Per task: difficulty from the pass rate across samples, the strategy's selection, caps.
Across the set: exact duplicates (hash of the conversation) and near duplicates (MinHash LSH over
word shingles, with ``datasketch``). Candidates are visited in (task id, sample) order, so the
result does not depend on the order in which episodes finished.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agentkit.errors import DataError
from agentkit.records import Message, Task, Trajectory
from agentkit.synth.config import CurationConfig, DedupConfig
from agentkit.synth.strategies import Candidate, Strategy
from agentkit.toolcalls import CALL_OPEN, THINK_CLOSE, THINK_OPEN

_WORD = re.compile(r"\w+", re.UNICODE)
MIN_EVAL_TOKENS = 3
"""Evaluation texts shorter than this (in words) are too generic to decontaminate against."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def conversation_text(messages: Sequence[Message]) -> str:
    """Everything but the system prompt: what makes two trajectories the same or an eval item leak."""
    parts = []
    for message in messages:
        if message.role == "system":
            continue
        parts.append(message.content or "")
        for call in message.tool_calls or []:
            parts.append(f"{call.function.name} {call.function.arguments}")
    return "\n".join(parts)


def record_text(messages: Sequence[dict[str, Any]]) -> str:
    """``conversation_text`` of a trajectory record's JSON messages, without building the typed records."""
    parts = []
    for message in messages:
        if message.get("role") == "system":
            continue
        parts.append(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            parts.append(f"{function.get('name')} {function.get('arguments')}")
    return "\n".join(parts)


def trajectory_chars(messages: Sequence[Message]) -> int:
    return sum(
        len(m.content or "") + sum(len(c.function.arguments) for c in m.tool_calls or []) for m in messages
    )


def format_problem(trajectory: Trajectory) -> str | None:
    """Generic well-formedness of a finished trajectory; None when it is fine."""
    messages = trajectory.messages
    if not messages or messages[-1].role != "assistant":
        return "does not end with an assistant turn"
    if messages[-1].tool_calls or not (messages[-1].content or "").strip():
        return "no final answer"
    if trajectory.stats.parse_errors:
        return f"{trajectory.stats.parse_errors} unparseable tool call(s)"
    for turn, message in enumerate(m for m in messages if m.role == "assistant"):
        content = message.content or ""
        opens, closes = content.count(THINK_OPEN), content.count(THINK_CLOSE)
        if opens > 1 or opens != closes:
            return f"turn {turn}: unbalanced <think> ({opens} open, {closes} close)"
        if CALL_OPEN in content:
            return f"turn {turn}: a <tool_call> block was left in the text"
        for call in message.tool_calls or []:
            try:
                json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                return f"turn {turn}: arguments of '{call.function.name}' are not JSON"
    return None


class DecontamIndex:
    """Word n-gram index of evaluation texts. A text is contaminated when it contains at least
    ``threshold`` of some evaluation item's n-grams (short items count as one whole-text gram)."""

    def __init__(self, items: Iterable[tuple[str, str]], n: int = 13, threshold: float = 0.5):
        if n < 1 or not 0 < threshold <= 1:
            raise ValueError("decontam: ngram must be >= 1 and 0 < threshold <= 1")
        self.n, self.threshold = n, threshold
        self.ids: list[str] = []
        self.sizes: list[int] = []
        self.index: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for item_id, text in items:
            tokens = words(text)
            if len(tokens) < MIN_EVAL_TOKENS:
                continue
            length = min(self.n, len(tokens))
            grams = {self._key(tokens[i : i + length]) for i in range(len(tokens) - length + 1)}
            number = len(self.ids)
            self.ids.append(item_id)
            self.sizes.append(len(grams))
            for gram in grams:
                self.index[length][gram].append(number)

    @staticmethod
    def _key(tokens: Sequence[str]) -> str:
        return hashlib.blake2b(" ".join(tokens).encode("utf-8"), digest_size=12).hexdigest()

    def __len__(self) -> int:
        return len(self.ids)

    def match(self, text: str) -> tuple[str, float] | None:
        """The evaluation item ``text`` overlaps most (if over the threshold) and the overlap."""
        if not self.ids:
            return None
        tokens = words(text)
        hits: Counter[int] = Counter()
        for length, table in self.index.items():
            seen = {self._key(tokens[i : i + length]) for i in range(len(tokens) - length + 1)}
            for gram in seen:
                for number in table.get(gram, ()):
                    hits[number] += 1
        best = max(hits.items(), key=lambda kv: (kv[1] / self.sizes[kv[0]], -kv[0]), default=None)
        if best is None:
            return None
        fraction = best[1] / self.sizes[best[0]]
        return (self.ids[best[0]], fraction) if fraction >= self.threshold else None


def decontam_index_from_tasks(task_sets: Iterable[Sequence[Task]], n: int, threshold: float) -> DecontamIndex:
    return DecontamIndex(((f"{t.env}/{t.id}", t.prompt) for tasks in task_sets for t in tasks), n, threshold)


@dataclass
class Entry(Candidate):
    """One raw rollout as curation and reports see it; ``offset`` finds its line again."""

    key: str = ""
    offset: int = 0
    drop: str | None = None
    exact: str = ""
    shingles: list[bytes] | None = None
    tool_calls: int = 0
    tool_errors: int = 0
    prompt_tokens: int = 0
    tools_used: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    reward: float | None = None
    tool_call_checks: int = 0
    """Turns whose tool calls the server parsed too (vLLM's ``--tool-call-parser``), compared with agentkit's parse."""
    tool_call_disagreements: int = 0


def entry_from_record(record: dict[str, Any], offset: int, where: str) -> tuple[Entry, Trajectory]:
    try:
        trajectory = Trajectory.model_validate(record)
    except ValidationError as exc:
        raise DataError(f"not a valid trajectory: {exc.errors()[0]['msg']}", where) from None
    stats = trajectory.stats
    used: Counter[str] = Counter(c.function.name for m in trajectory.messages for c in m.tool_calls or [])
    entry = Entry(
        id=trajectory.id,
        task_id=trajectory.task.id,
        sample=int(trajectory.meta.get("sample", 0)),
        status=trajectory.status.value,
        passed=trajectory.passed,
        turns=stats.turns,
        chars=trajectory_chars(trajectory.messages),
        completion_tokens=stats.completion_tokens,
        key=str(trajectory.meta.get("key", "")),
        offset=offset,
        tool_calls=stats.tool_calls,
        tool_errors=stats.tool_errors,
        prompt_tokens=stats.prompt_tokens,
        tools_used=dict(used),
        seconds=stats.seconds.model_dump(),
        reward=trajectory.reward,
        abilities=list(trajectory.abilities or trajectory.task.abilities),
        tool_call_checks=stats.tool_call_checks,
        tool_call_disagreements=stats.tool_call_disagreements,
    )
    return entry, trajectory


def shingles(text: str, size: int) -> list[bytes]:
    tokens = words(text)
    if len(tokens) <= size:
        return [" ".join(tokens).encode("utf-8")]
    return list({" ".join(tokens[i : i + size]).encode("utf-8") for i in range(len(tokens) - size + 1)})


def apply_filters(
    entry: Entry,
    trajectory: Trajectory,
    cfg: CurationConfig,
    strategy: Strategy,
    decontam: DecontamIndex | None,
) -> str | None:
    """The first per-trajectory filter that rejects it (its name and why), or None."""
    if entry.status not in cfg.statuses:
        return f"status: {entry.status}"
    if cfg.require_passed and not entry.passed:
        return "verdict: not passed"
    if entry.turns < cfg.min_turns or (cfg.max_turns is not None and entry.turns > cfg.max_turns):
        return f"turns: {entry.turns} outside [{cfg.min_turns}, {cfg.max_turns}]"
    if entry.chars < cfg.min_chars or (cfg.max_chars is not None and entry.chars > cfg.max_chars):
        return f"length: {entry.chars} chars outside [{cfg.min_chars}, {cfg.max_chars}]"
    if cfg.max_tool_error_rate is not None and entry.tool_calls:
        rate = entry.tool_errors / entry.tool_calls
        if rate > cfg.max_tool_error_rate:
            return f"tool errors: {rate:.2f} > {cfg.max_tool_error_rate}"
    if cfg.check_format:
        problem = format_problem(trajectory) or strategy.check_format(trajectory)
        if problem:
            return f"format: {problem}"
    if decontam is not None and len(decontam):
        hit = decontam.match(conversation_text(trajectory.messages))
        if hit is not None:
            return f"contaminated: {hit[1]:.0%} of {hit[0]}"
    return None


def _reason_name(reason: str) -> str:
    return reason.split(":", 1)[0]


@dataclass
class CurationResult:
    kept: list[Entry]
    dropped: Counter[str]
    pass_rates: dict[str, tuple[int, int]]
    """task id -> (passed, samples)."""


def scan(
    raw: Iterable[tuple[int, dict[str, Any]]],
    cfg: CurationConfig | None,
    strategy: Strategy,
    decontam: DecontamIndex | None,
    where: str = "raw",
) -> list[Entry]:
    """Read raw rollouts into entries; with a curation config, apply the per-trajectory filters too."""
    entries = []
    for offset, record in raw:
        entry, trajectory = entry_from_record(record, offset, where)
        if cfg is not None and cfg.enabled:
            entry.drop = apply_filters(entry, trajectory, cfg, strategy, decontam)
            if entry.drop is None:
                text = conversation_text(trajectory.messages)
                if cfg.dedup.exact:
                    entry.exact = hashlib.sha256(text.encode("utf-8")).hexdigest()
                if cfg.dedup.near:
                    entry.shingles = shingles(text, cfg.dedup.shingle)
        entries.append(entry)
    entries.sort(key=lambda e: (e.task_id, e.sample, e.id))
    return entries


def pass_rates(entries: Sequence[Entry]) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        counts[entry.task_id][0] += int(entry.passed)
        counts[entry.task_id][1] += 1
    return {task: (c[0], c[1]) for task, c in counts.items()}


class NearDuplicates:
    """MinHash LSH over word shingles: ``seen(entry)`` says whether a similar one came before."""

    def __init__(self, cfg: DedupConfig):
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        self.num_perm = cfg.num_perm
        self.lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)

    def seen(self, entry: Entry) -> bool:
        signature = self._minhash(num_perm=self.num_perm, seed=1)
        signature.update_batch(entry.shingles or [b""])
        if self.lsh.query(signature):
            return True
        self.lsh.insert(entry.key or entry.id, signature)
        return False


def curate(entries: Sequence[Entry], cfg: CurationConfig, strategy: Strategy) -> CurationResult:
    """Apply the per-task and cross-set steps to scanned entries; every drop is counted by reason."""
    rates = pass_rates(entries)
    dropped: Counter[str] = Counter()
    if not cfg.enabled:
        return CurationResult(list(entries), dropped, rates)
    survivors = []
    for entry in entries:
        if entry.drop is None:
            passed, samples = rates[entry.task_id]
            rate = passed / samples
            if cfg.min_pass_rate is not None and rate < cfg.min_pass_rate:
                entry.drop = f"difficulty: pass rate {rate:.2f} < {cfg.min_pass_rate}"
            elif cfg.max_pass_rate is not None and rate > cfg.max_pass_rate:
                entry.drop = f"difficulty: pass rate {rate:.2f} > {cfg.max_pass_rate}"
        if entry.drop is None:
            survivors.append(entry)
        else:
            dropped[_reason_name(entry.drop)] += 1

    by_task: dict[str, list[Entry]] = defaultdict(list)
    for entry in survivors:
        by_task[entry.task_id].append(entry)
    selected = []
    for task_id in sorted(by_task):
        group = by_task[task_id]
        chosen = {id(c) for c in strategy.select(group)}
        for entry in group:
            if id(entry) in chosen:
                selected.append(entry)
            else:
                entry.drop = "selection: not chosen by the strategy"
                dropped["selection"] += 1

    near = NearDuplicates(cfg.dedup) if cfg.dedup.near else None
    exact_seen: set[str] = set()
    per_task: Counter[str] = Counter()
    kept = []
    for entry in selected:
        if cfg.dedup.exact and entry.exact in exact_seen:
            entry.drop = "duplicate: exact"
        elif near is not None and near.seen(entry):
            entry.drop = "near_duplicate: MinHash"
        elif cfg.max_per_task is not None and per_task[entry.task_id] >= cfg.max_per_task:
            entry.drop = f"per_task_cap: {cfg.max_per_task}"
        if entry.drop is not None:
            dropped[_reason_name(entry.drop)] += 1
            continue
        exact_seen.add(entry.exact)
        per_task[entry.task_id] += 1
        entry.shingles = None
        kept.append(entry)
    return CurationResult(kept, dropped, rates)


def curated_record(line: bytes, entry: Entry, rates: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The raw record, with its task's difficulty added to ``meta``."""
    record = json.loads(line)
    passed, samples = rates.get(entry.task_id, (0, 0))
    rate = passed / samples if samples else 0.0
    record.setdefault("meta", {}).update(
        {"pass_rate": float(round(rate, 4)), "difficulty": float(round(1 - rate, 4)), "task_samples": samples}
    )
    return record
