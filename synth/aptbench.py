"""APTBench-style likelihood scoring: verified trajectories become multiple-choice and completion items that a
base checkpoint answers by log-likelihood, so mid-training can be measured before any SFT, without an agent loop.

Kinds of item (``aptbench.kinds``), each built from one passed trajectory:

- ``plan``: the first assistant turn against the first turns of other tasks of the same family;
- ``next_action``: a later tool-calling turn against the same call with a perturbed argument, the call with
  another of the trajectory's tools, and the same turn of another task;
- ``error``: after the observation that exposed a teacher's injected mistake, the diagnosing fix against
  repeating the failing turn, a premature claim of success, and another trajectory's fix;
- ``answer``: the final message against the same message with its answer (the ``\\boxed{}`` value, or the
  numbers and ids of the reply) perturbed or taken from other tasks;
- ``completion``: the final message alone, scored by its mean log-probability and by whether its answer span
  is the greedy choice at every position (teacher-forced).

A context is rendered with the checkpoint's chat template exactly as training renders it
(``agentkit.train.render``): a choice's scored tokens are the tokens training would take the loss on.
Multiple-choice accuracy is reported by the per-token mean log-probability (lm-eval-harness ``acc_norm``, the
headline) and by the plain sum (``acc``).
"""

from __future__ import annotations

import difflib
import glob as globlib
import hashlib
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentkit.errors import ConfigError, DataError
from agentkit.records import Trajectory
from agentkit.synth.config import AptbenchConfig, EvalConfig
from agentkit.synth.metrics import wilson_interval
from agentkit.synth.report import task_family

KINDS = ("plan", "next_action", "error", "answer", "completion")

# ------------------------------------------------------------------------------------------- families


def trajectory_family(record: Trajectory | dict[str, Any]) -> str:
    """``<env>/<family>`` of a trajectory, from its task's metadata: math -> ``kind``, tool use -> ``template``,
    code -> ``family``/``kind``/the task-id stem, research -> ``hops{n}``; else the family in the task id."""
    task = record.task.model_dump() if isinstance(record, Trajectory) else dict(record.get("task") or {})
    env = str(task.get("env") or "unknown")
    meta = task.get("meta") or {}
    task_id = str(task.get("id") or "")
    family: Any = None
    if env == "math":
        family = meta.get("kind")
    elif env in ("tooluse", "bfcl"):
        family = meta.get("template")
    elif env in ("code", "humaneval"):
        family = meta.get("family") or meta.get("kind") or (task_family(task_id) if task_id else None)
    elif env == "research":
        family = f"hops{meta['hops']}" if meta.get("hops") is not None else None
    return f"{env}/{family or task_family(task_id)}"


# ------------------------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Item:
    """One likelihood item: a conversation prefix, the assistant messages that may follow it, the right one.

    ``answer_spans`` (completion items) are ``[start, end)`` character ranges of the answer inside the gold
    message's content: the span that must be the greedy choice at every position."""

    id: str
    family: str
    kind: str
    trajectory: str
    context: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    choices: list[dict[str, Any]]
    gold: int
    answer_spans: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ItemSet:
    items: list[Item]
    skipped: dict[str, int]
    """Per kind: trajectories for which the kind could not be built (no such turn, no mistake...)."""
    dropped: dict[str, int]
    """Per kind: items left out because they had fewer than ``choices`` distinct options."""
    trajectories: int
    families: dict[str, int]
    """Trajectories sampled per family."""


def _messages(record: Trajectory) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in record.messages]


def _assistants(messages: Sequence[dict[str, Any]]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant"]


def _key(message: dict[str, Any]) -> tuple:
    """What makes two assistant messages the same option: their text and their calls, not the call ids."""
    calls = tuple(
        (c["function"]["name"], c["function"].get("arguments", "")) for c in message.get("tool_calls") or []
    )
    return (message.get("content") or "", calls)


def _adopt(message: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """A distractor taken from elsewhere, with the gold message's tool-call ids (by position), so that ids never
    tell the options apart."""
    calls = message.get("tool_calls")
    if not calls:
        return {"role": "assistant", "content": message.get("content") or ""}
    ids = [c["id"] for c in like.get("tool_calls") or []]
    out = []
    for n, call in enumerate(calls):
        out.append({**call, "id": ids[n] if n < len(ids) else f"{call['id']}-extra"})
    return {"role": "assistant", "content": message.get("content") or "", "tool_calls": out}


_DIGITS = re.compile(r"\d+")


def perturb_digits(text: str, rng: random.Random, every: bool = False) -> str | None:
    """``text`` with one digit of one number (or of every number) changed; None when it has no digit.
    A leading digit of a multi-digit number never becomes 0, so ``O1001`` stays an id of the same shape."""
    runs = list(_DIGITS.finditer(text))
    if not runs:
        return None
    chosen = runs if every else [runs[rng.randrange(len(runs))]]
    out, last = [], 0
    for run in chosen:
        digits = list(run.group())
        position = rng.randrange(len(digits))
        allowed = [
            d
            for d in "0123456789"
            if d != digits[position] and not (d == "0" and position == 0 and len(digits) > 1)
        ]
        digits[position] = rng.choice(allowed)
        out += [text[last : run.start()], "".join(digits)]
        last = run.end()
    out.append(text[last:])
    return "".join(out)


def _perturb_call(message: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    """The same turn with one argument's digits changed (a number, an id, a date, a number in code)."""
    calls = message.get("tool_calls") or []
    candidates = []
    for n, call in enumerate(calls):
        try:
            arguments = json.loads(call["function"].get("arguments") or "{}")
        except json.JSONDecodeError:
            continue
        if isinstance(arguments, dict):
            candidates += [(n, key) for key, value in arguments.items() if _DIGITS.search(json.dumps(value))]
    if not candidates:
        return None
    n, key = candidates[rng.randrange(len(candidates))]
    arguments = json.loads(calls[n]["function"].get("arguments") or "{}")
    value = arguments[key]
    changed = perturb_digits(json.dumps(value, ensure_ascii=False), rng)
    try:
        arguments[key] = json.loads(changed) if changed is not None else value
    except json.JSONDecodeError:
        return None
    new_calls = [dict(c) for c in calls]
    new_calls[n] = {
        **calls[n],
        "function": {**calls[n]["function"], "arguments": json.dumps(arguments, ensure_ascii=False)},
    }
    return {**message, "tool_calls": new_calls}


def _other_tool(
    message: dict[str, Any], tool_names: Sequence[str], rng: random.Random
) -> dict[str, Any] | None:
    """The same turn calling another of the trajectory's tools with the same arguments."""
    calls = message.get("tool_calls") or []
    if not calls:
        return None
    others = [name for name in tool_names if name != calls[0]["function"]["name"]]
    if not others:
        return None
    first = {**calls[0], "function": {**calls[0]["function"], "name": others[rng.randrange(len(others))]}}
    return {**message, "tool_calls": [first, *calls[1:]]}


_ANSWER_VALUE = re.compile(r"[A-Za-z]*\d+(?:[.:/-]\d+)*")


def _boxed(content: str) -> tuple[int, int] | None:
    """``[start, end)`` of the last ``\\boxed{...}`` value (braces balanced)."""
    start = content.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(content)):
        depth += {"{": 1, "}": -1}.get(content[j], 0)
        if depth == 0:
            return (i + 1, j)
    return None


def answer_spans(content: str) -> list[tuple[int, int]]:
    """Where the final answer sits in a final message: the ``\\boxed{}`` value, else every number or id in the
    reply after the reasoning (``</think>``)."""
    boxed = _boxed(content)
    if boxed is not None:
        return [boxed] if boxed[1] > boxed[0] else []
    reply = content.rfind("</think>")
    offset = reply + len("</think>") if reply >= 0 else 0
    return [(m.start() + offset, m.end() + offset) for m in _ANSWER_VALUE.finditer(content[offset:])]


def _replace_spans(content: str, spans: Sequence[tuple[int, int]], values: Sequence[str]) -> str:
    out, last = [], 0
    for (start, end), value in zip(spans, values, strict=True):
        out += [content[last:start], value]
        last = end
    out.append(content[last:])
    return "".join(out)


@dataclass
class _Trajectory:
    record: Trajectory
    family: str
    messages: list[dict[str, Any]]
    key: str

    @property
    def task(self) -> str:
        return self.record.task.id


def _mistake(t: _Trajectory) -> dict[str, Any] | None:
    mistake = t.record.meta.get("mistake")
    return mistake if isinstance(mistake, dict) else None


def _fix_turn(t: _Trajectory) -> tuple[int, int] | None:
    """(index of the mistaken assistant turn, index of the turn that diagnoses and fixes it) of a teacher
    trajectory whose mistake an observation exposed: a tool's output (the next assistant turn answers it) or the
    verifier (the turn after the feedback message)."""
    mistake = _mistake(t)
    if not mistake or not mistake.get("exposed") or not isinstance(mistake.get("turn"), int):
        return None
    assistants = _assistants(t.messages)
    if not 0 <= mistake["turn"] < len(assistants):
        return None
    wrong = assistants[mistake["turn"]]
    start = wrong + 1
    if mistake.get("exposed_by") == "verifier":
        feedback = next(
            (i for i in range(wrong + 1, len(t.messages)) if t.messages[i]["role"] == "user"), None
        )
        if feedback is None:
            return None
        start = feedback + 1
    fix = next((i for i in assistants if i >= start), None)
    return (wrong, fix) if fix is not None else None


def _final_turn(t: _Trajectory) -> int | None:
    last = len(t.messages) - 1
    message = t.messages[last]
    if (
        message["role"] != "assistant"
        or message.get("tool_calls")
        or not answer_spans(message.get("content", ""))
    ):
        return None
    return last


class _Builder:
    def __init__(self, pools: dict[str, list[_Trajectory]], choices: int, seed: int):
        self.pools, self.choices, self.seed = pools, choices, seed
        self.dropped: Counter[str] = Counter()

    def rng(self, t: _Trajectory, kind: str) -> random.Random:
        return random.Random(f"{self.seed}/{t.key}/{kind}")

    def others(self, t: _Trajectory, rng: random.Random) -> list[_Trajectory]:
        """The family's trajectories of other tasks, in a seeded order."""
        found = [o for o in self.pools[t.family] if o.task != t.task]
        rng.shuffle(found)
        return found

    def item(
        self,
        t: _Trajectory,
        kind: str,
        context: list[dict[str, Any]],
        gold: dict[str, Any],
        candidates: Sequence[dict[str, Any] | None],
        rng: random.Random,
    ) -> Item | None:
        options, seen = [gold], {_key(gold)}
        for candidate in candidates:
            if candidate is None or len(options) == self.choices:
                continue
            candidate = _adopt(candidate, gold)
            if _key(candidate) not in seen:
                seen.add(_key(candidate))
                options.append(candidate)
        if len(options) < self.choices:
            self.dropped[kind] += 1
            return None
        order = list(range(len(options)))
        rng.shuffle(order)
        return Item(
            id=f"{t.key}/{kind}",
            family=t.family,
            kind=kind,
            trajectory=t.key,
            context=context,
            tools=[s.model_dump(exclude_none=True) for s in t.record.tools] or None,
            choices=[options[i] for i in order],
            gold=order.index(0),
        )

    def plan(self, t: _Trajectory) -> Item | None:
        assistants = _assistants(t.messages)
        mistake = _mistake(t)
        if not assistants or (mistake and mistake.get("turn") == 0):
            return None  # a teacher's first turn that holds the injected mistake is no plan to pick
        rng = self.rng(t, "plan")
        first = assistants[0]
        candidates = []
        for other in self.others(t, rng):
            turns = _assistants(other.messages)
            if turns:
                candidates.append(other.messages[turns[0]])
        return self.item(t, "plan", t.messages[:first], t.messages[first], candidates, rng)

    def next_action(self, t: _Trajectory) -> Item | None:
        mistake, fix = _mistake(t), _fix_turn(t)
        excluded = set(fix or ())
        if mistake and isinstance(mistake.get("turn"), int):
            assistants = _assistants(t.messages)
            if mistake["turn"] < len(assistants):
                excluded.add(assistants[mistake["turn"]])
        calling = [
            i for i in _assistants(t.messages) if t.messages[i].get("tool_calls") and i not in excluded
        ]
        if not calling:
            return None
        rng = self.rng(t, "next_action")
        later = calling[1:] or calling
        turn = later[rng.randrange(len(later))]
        number = _assistants(t.messages).index(turn)
        gold = t.messages[turn]
        tool_names = [s.function.name for s in t.record.tools]
        same_turn = []
        for other in self.others(t, rng):
            turns = [i for i in _assistants(other.messages) if other.messages[i].get("tool_calls")]
            if turns:
                at = _assistants(other.messages)
                same_turn.append(
                    other.messages[at[number]]
                    if number < len(at) and at[number] in turns
                    else other.messages[turns[0]]
                )
        candidates = [_perturb_call(gold, rng), _other_tool(gold, tool_names, rng), *same_turn[:1]]
        candidates += [_perturb_call(gold, rng) for _ in range(3)] + same_turn[1:]
        return self.item(t, "next_action", t.messages[:turn], gold, candidates, rng)

    def error(self, t: _Trajectory) -> Item | None:
        turns = _fix_turn(t)
        if turns is None:
            return None
        wrong, fix = turns
        rng = self.rng(t, "error")
        gold = t.messages[fix]
        final = t.messages[-1] if t.messages[-1]["role"] == "assistant" else None
        claim = final if final is not None and _key(final) != _key(gold) else _perturbed_answer(final, rng)
        fixes = []
        for other in self.others(t, rng):
            other_turns = _fix_turn(other)
            if other_turns is not None:
                fixes.append(other.messages[other_turns[1]])
        candidates = [t.messages[wrong], claim, *fixes[:1], _perturb_call(gold, rng), *fixes[1:]]
        return self.item(t, "error", t.messages[:fix], gold, candidates, rng)

    def answer(self, t: _Trajectory) -> Item | None:
        final = _final_turn(t)
        if final is None:
            return None
        rng = self.rng(t, "answer")
        gold = t.messages[final]
        content = gold.get("content", "")
        spans = answer_spans(content)
        values = [content[a:b] for a, b in spans]
        borrowed = []
        for other in self.others(t, rng):
            other_final = _final_turn(other)
            if other_final is None:
                continue
            other_content = other.messages[other_final].get("content", "")
            other_values = [other_content[a:b] for a, b in answer_spans(other_content)]
            if other_values:  # positionally, the other task's values where it has as many
                replaced = [other_values[n] if n < len(other_values) else v for n, v in enumerate(values)]
                borrowed.append({"role": "assistant", "content": _replace_spans(content, spans, replaced)})

        def perturbed(every: bool) -> dict[str, Any] | None:
            changed = [perturb_digits(v, rng) if every else v for v in values]
            if not every:
                n = rng.randrange(len(values))
                changed[n] = perturb_digits(values[n], rng)
            kept = [v for v in changed if v is not None]
            if len(kept) < len(changed):
                return None
            return {"role": "assistant", "content": _replace_spans(content, spans, kept)}

        candidates = [perturbed(False), *borrowed[:1], perturbed(True), *borrowed[1:2]]
        candidates += [perturbed(n % 2 == 0) for n in range(4)] + borrowed[2:]
        return self.item(t, "answer", t.messages[:final], gold, candidates, rng)

    def completion(self, t: _Trajectory) -> Item | None:
        final = _final_turn(t)
        if final is None:
            return None
        gold = t.messages[final]
        return Item(
            id=f"{t.key}/completion",
            family=t.family,
            kind="completion",
            trajectory=t.key,
            context=t.messages[:final],
            tools=[s.model_dump(exclude_none=True) for s in t.record.tools] or None,
            choices=[gold],
            gold=0,
            answer_spans=[list(span) for span in answer_spans(gold.get("content", ""))],
        )


def _perturbed_answer(message: dict[str, Any] | None, rng: random.Random) -> dict[str, Any] | None:
    if message is None:
        return None
    content = message.get("content", "")
    spans = answer_spans(content)
    values = [perturb_digits(content[a:b], rng) for a, b in spans]
    kept = [v for v in values if v is not None]
    if not spans or len(kept) < len(values):
        return None
    return {"role": "assistant", "content": _replace_spans(content, spans, kept)}


def trajectory_keys(records: Sequence[Trajectory]) -> list[str]:
    """A unique, content-derived name per record: its id, with a digest of its content when several records
    share the id (the same task and sample in two runs, e.g. a reference and a teacher run)."""
    counts = Counter(r.id for r in records)
    return [
        r.id if counts[r.id] == 1 else f"{r.id}#{hashlib.sha256(r.to_json().encode()).hexdigest()[:10]}"
        for r in records
    ]


def build_items(
    records: Sequence[Trajectory],
    kinds: Sequence[str] = KINDS,
    choices: int = 4,
    per_family: int = 30,
    seed: int = 0,
) -> ItemSet:
    """Items of the chosen kinds from the passed trajectories, deterministic given ``seed`` and the records.

    Up to ``per_family`` trajectories per family are sampled; distractors come from the whole family."""
    check_options(kinds, choices, per_family)
    pools: dict[str, list[_Trajectory]] = defaultdict(list)
    passed = [r for r in records if r.passed]
    for record, key in sorted(zip(passed, trajectory_keys(passed), strict=True), key=lambda pair: pair[1]):
        family = trajectory_family(record)
        pools[family].append(_Trajectory(record, family, _messages(record), key))
    builder = _Builder(pools, choices, seed)
    items: list[Item] = []
    skipped: Counter[str] = Counter()
    sampled_per_family: dict[str, int] = {}
    for family in sorted(pools):
        pool = pools[family]
        sampled = random.Random(f"{seed}/{family}").sample(pool, min(per_family, len(pool)))
        sampled.sort(key=lambda t: t.key)
        sampled_per_family[family] = len(sampled)
        for t in sampled:
            for kind in kinds:
                drops = builder.dropped[kind]
                item = getattr(builder, kind)(t)
                if item is not None:
                    items.append(item)
                elif builder.dropped[kind] == drops:
                    skipped[kind] += 1
    return ItemSet(
        items=items,
        skipped={k: skipped[k] for k in kinds},
        dropped={k: builder.dropped[k] for k in kinds},
        trajectories=sum(sampled_per_family.values()),
        families=sampled_per_family,
    )


def check_options(kinds: Sequence[str], choices: int, per_family: int) -> None:
    for kind in kinds:
        if kind not in KINDS:
            near = difflib.get_close_matches(kind, KINDS, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; known: {', '.join(KINDS)}"
            raise ConfigError(f"aptbench.kinds: unknown kind '{kind}'{hint}")
    if not kinds:
        raise ConfigError(f"aptbench.kinds: choose at least one of {', '.join(KINDS)}")
    if choices < 2:
        raise ConfigError(f"aptbench.choices: a multiple-choice item needs at least 2 options, got {choices}")
    if per_family < 1:
        raise ConfigError(f"aptbench.per_family: must be >= 1, got {per_family}")


# ------------------------------------------------------------------------------------------- data


def trajectory_files(data: str) -> list[Path]:
    """The ``.jsonl`` shards named by ``aptbench.data``: a file, a synth run or any directory of shards, a glob."""
    from agentkit.train.sources import synth_shards

    if any(ch in data for ch in "*?["):
        paths = sorted(Path(p) for p in globlib.glob(str(Path(data).expanduser()), recursive=True))
    else:
        paths = [Path(data).expanduser()] if Path(data).expanduser().exists() else []
    files: list[Path] = []
    for path in paths:
        files += synth_shards(path) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        raise ConfigError(f"aptbench.data: '{data}' matches no trajectory file (.jsonl, .jsonl.zst)")
    return files


def load_trajectories(data: str) -> list[Trajectory]:
    """Every trajectory of the shards; a line that is not a trajectory is a DataError naming file:line."""
    from agentkit.jsonl import iter_records

    records: list[Trajectory] = []
    for path in trajectory_files(data):
        records += iter_records(path, Trajectory)
    passed = [r for r in records if r.passed]
    if not passed:
        raise ConfigError(
            f"aptbench.data: no trajectory with verdict.passed true among the {len(records)} in '{data}'"
        )
    return records


# ------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Continuation:
    """How a checkpoint scores one choice: per scored token, its log-probability and whether it was the argmax."""

    logprobs: list[float]
    greedy: list[bool]
    span: list[bool] = field(default_factory=list)
    """Per scored token, whether it overlaps an answer span (completion items)."""
    truncated: bool = False

    @property
    def total(self) -> float:
        return sum(self.logprobs)

    @property
    def mean(self) -> float:
        return self.total / len(self.logprobs) if self.logprobs else float("-inf")


class ChoiceScorer(Protocol):
    """Scores every choice of every item by likelihood given the item's context."""

    def score(self, items: Sequence[Item]) -> list[list[Continuation]]: ...


def check_checkpoint(path: str | None, key: str = "model.path") -> Path:
    if not path:
        raise ConfigError(f"{key}: aptbench scores a checkpoint in-process; pass model=hf {key}=DIR")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"{key}: no such checkpoint directory '{path}'")
    if not (directory / "config.json").exists():
        raise ConfigError(f"{key}: '{path}' is not a checkpoint (no config.json)")
    if not any(directory.glob("*.safetensors")) and not any(directory.glob("*.bin")):
        raise ConfigError(f"{key}: '{path}' has a config.json but no weights (*.safetensors, *.bin)")
    return directory


@dataclass(frozen=True)
class _Request:
    ids: list[int]
    scored: list[int]
    """Positions in ``ids`` whose tokens are scored."""
    span: list[bool]
    truncated: bool
    group: str = ""
    """Requests of one group (a trajectory) may share their context's key/value cache."""


def _truncate(r: _Request, cut: int) -> _Request:
    keep = [n for n, p in enumerate(r.scored) if p - cut >= 1]
    scored, span = [r.scored[n] - cut for n in keep], [r.span[n] for n in keep]
    return _Request(r.ids[cut:], scored, span, True, f"{r.group}#{cut}")


class TransformersScorer:
    """A checkpoint loaded in this process by transformers (float32, CPU by default), batched forward passes with
    right padding and attention masks."""

    def __init__(
        self,
        path: str | Path,
        tokenizer: str | Path | None = None,
        batch_size: int = 16,
        max_length: int = 1024,
        device: str = "cpu",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or path))
        if not isinstance(getattr(self.tokenizer, "chat_template", None), str):
            raise ConfigError(
                f"model.tokenizer: the tokenizer of '{tokenizer or path}' has no chat template to render contexts with"
            )
        # transformers types from_pretrained's result so that `.to` resolves to a mixin's unbound method.
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        self.model = model.to(device).eval()  # pyright: ignore[reportArgumentType]
        self.batch_size, self.max_length, self.device = batch_size, max_length, device
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        self.tokens = 0

    def render(
        self, context: list[dict[str, Any]], tools: list[dict] | None, choice: dict[str, Any], prompt: str
    ) -> tuple[str, int]:
        """The conversation text with the choice as the last assistant turn, and where the reply starts; the
        same prefix rendering training derives its loss mask from."""
        full = self.tokenizer.apply_chat_template([*context, choice], tools=tools, tokenize=False)
        if not full.startswith(prompt):
            raise DataError(
                "the chat template is not prefix-stable: the generation prompt is not a prefix of the conversation "
                "with the reply, so the choice cannot be located"
            )
        return full, len(prompt)

    def request(self, item: Item, choice: dict[str, Any], prompt: str, spans: list[list[int]]) -> _Request:
        from agentkit.train.render import IGNORE, token_labels

        text, start = self.render(item.context, item.tools, choice, prompt)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
        labels = token_labels(ids, offsets, [False] * start + [True] * (len(text) - start))
        scored = [p for p, label in enumerate(labels) if label != IGNORE and p > 0]
        answer = []
        content = choice.get("content") or ""
        at = text.find(content, start) if content else -1
        for a, b in spans:
            if at >= 0:
                answer.append((at + a, at + b))
        span = [any(offsets[p][0] < b and offsets[p][1] > a for a, b in answer) for p in scored]
        return _Request(ids, scored, span, False, item.trajectory)

    def requests(self, items: Sequence[Item]) -> list[tuple[int, int, _Request]]:
        """(item number, choice number, tokens to score) for every choice; each context is rendered once.

        An item longer than ``max_length`` loses the oldest tokens of its context, the same number for every
        choice, so that all its choices see the same context."""
        out: list[tuple[int, int, _Request]] = []
        for n, item in enumerate(items):
            prompt = self.tokenizer.apply_chat_template(
                item.context, tools=item.tools, tokenize=False, add_generation_prompt=True
            )
            mine = [self.request(item, choice, prompt, item.answer_spans) for choice in item.choices]
            cut = max(len(r.ids) for r in mine) - self.max_length
            for c, r in enumerate(mine):
                out.append((n, c, _truncate(r, cut) if cut > 0 else r))
        return out

    def score(
        self,
        items: Sequence[Item],
        requests: Sequence[tuple[int, int, _Request]] | None = None,
        progress=None,
    ) -> list[list[Continuation]]:
        requests = self.requests(items) if requests is None else requests
        results = self.forward([r for _, _, r in requests], progress)
        out: list[list[Continuation]] = [[None] * len(item.choices) for item in items]  # type: ignore[list-item]
        for (n, c, _), result in zip(requests, results, strict=True):
            out[n][c] = result
        return out

    def forward(self, requests: Sequence[_Request], progress=None) -> list[Continuation]:
        """Score every request. Contexts are shared: the choices of an item, and the items cut from one trajectory,
        have contexts that are prefixes of one token sequence (a host), so each host runs once and keeps its
        key/value cache; every choice then runs on top of the cache, with an attention mask that hides the host's
        tokens beyond its own context. This gives the same log-probabilities as one forward pass per choice over
        context + choice (checked in the tests), at a fraction of the cost."""
        import torch

        hosts: list[list[int]] = []
        rows: list[tuple[int, int, int]] = []  # (request, host or -1, context tokens kept in the host)
        by_group: dict[str, list[int]] = defaultdict(list)
        order = sorted(range(len(requests)), key=lambda i: -(requests[i].scored[:1] or [0])[0])
        for i in order:
            r = requests[i]
            if not r.scored:
                rows.append((i, -1, 0))
                continue
            prefix = r.ids[: r.scored[0] - 1]
            host = -1
            if prefix:
                for h in by_group[r.group]:
                    if len(hosts[h]) >= len(prefix) and hosts[h][: len(prefix)] == prefix:
                        host = h
                        break
                else:
                    hosts.append(prefix)
                    host = len(hosts) - 1
                    by_group[r.group].append(host)
            rows.append((i, host, len(prefix)))
        results: list[Continuation | None] = [None] * len(requests)
        for i, _host, _ in rows:
            if not requests[i].scored:
                results[i] = Continuation([], [], [], requests[i].truncated)
        with torch.inference_mode():
            for begin in range(0, len(hosts), self.batch_size):
                chunk = list(range(begin, min(begin + self.batch_size, len(hosts))))
                cache, width = self._run_hosts([hosts[h] for h in chunk])
                mine = sorted(
                    (row for row in rows if row[1] in chunk),
                    key=lambda row: len(requests[row[0]].ids) - row[2],
                )
                step = 4 * self.batch_size
                for start in range(0, len(mine), step):
                    part = mine[start : start + step]
                    self._run_rows(
                        requests, part, cache, width, [chunk.index(h) for _, h, _ in part], results
                    )
                    if progress is not None:
                        progress(len(part))
            plain = [row for row in rows if row[1] == -1 and requests[row[0]].scored]
            for start in range(0, len(plain), self.batch_size):
                part = plain[start : start + self.batch_size]
                self._run_rows(requests, part, None, 0, [], results)
                if progress is not None:
                    progress(len(part))
        return results  # type: ignore[return-value]

    def _call(self, **kwargs):
        """The model's forward; the key/value cache keyword is ``cache`` in recent transformers."""
        import inspect

        cache = kwargs.pop("cache", None)
        if cache is not None:
            name = (
                "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
            )
            kwargs[name] = cache
        return self.model(**kwargs)

    def _run_hosts(self, hosts: Sequence[list[int]]):
        import torch

        width = max(len(h) for h in hosts)
        ids = torch.full((len(hosts), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(hosts), width), dtype=torch.long)
        for row, host in enumerate(hosts):
            ids[row, : len(host)] = torch.tensor(host)
            mask[row, : len(host)] = 1
        self.tokens += int(mask.sum())
        out = self._call(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        return cache, width

    def _run_rows(self, requests, part, cache, width: int, host_rows: list[int], results) -> None:
        """One batch of choices: each is its context's last token and its own tokens, on top of the host cache."""
        import copy

        import torch

        tails = [requests[i].ids[kept:] for i, _, kept in part]
        length = max(len(t) for t in tails)
        ids = torch.full((len(part), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(part), width + length), dtype=torch.long)
        positions = torch.zeros((len(part), length), dtype=torch.long)
        for row, ((_, _, kept), tail) in enumerate(zip(part, tails, strict=True)):
            ids[row, : len(tail)] = torch.tensor(tail)
            mask[row, :kept] = 1
            mask[row, width : width + len(tail)] = 1
            positions[row] = kept + torch.arange(length)
        self.tokens += sum(len(t) for t in tails)
        kwargs: dict[str, Any] = {}
        if cache is not None:
            selected = copy.deepcopy(cache)
            selected.reorder_cache(torch.tensor(host_rows, dtype=torch.long, device=self.device))
            kwargs["cache"] = selected
        else:
            mask = mask[:, width:]
        logits = self._call(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=cache is not None,
            **kwargs,
        ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        best = logits.argmax(dim=-1).cpu()
        for row, (i, _, kept) in enumerate(part):
            r = requests[i]
            at = torch.tensor([p - kept - 1 for p in r.scored], dtype=torch.long)
            targets = ids[row, at + 1]
            lp = logprobs[row, at.to(logprobs.device), targets.to(logprobs.device)].tolist()
            greedy = (best[row, at] == targets).tolist()
            results[i] = Continuation(lp, greedy, list(r.span), r.truncated)


# ------------------------------------------------------------------------------------------- picking


def pick(item: Item, scores: Sequence[Continuation]) -> dict[str, Any]:
    """The per-item score row: per choice the summed log-probability and token count, the choice picked by the
    sum and by the per-token mean, and whether each pick is the gold one. A completion item is correct when
    every token of its answer span (all of it, without a span) is the teacher-forced argmax."""
    row: dict[str, Any] = {"id": item.id, "family": item.family, "kind": item.kind, "gold": item.gold}
    row["logprob"] = [round(s.total, 6) for s in scores]
    row["tokens"] = [len(s.logprobs) for s in scores]
    row["truncated"] = any(s.truncated for s in scores)
    gold = scores[item.gold]
    row["gold_logprob_per_token"] = round(gold.mean, 6)
    if item.kind == "completion":
        span = [g for g, inside in zip(gold.greedy, gold.span, strict=True) if inside] or gold.greedy
        row["greedy"] = bool(gold.greedy) and all(gold.greedy)
        row["answer_greedy"] = bool(span) and all(span)
        row["correct"] = row["correct_norm"] = row["answer_greedy"]
        row["chance"] = 0.0
        return row
    means = [s.mean for s in scores]
    row["picked"] = max(range(len(scores)), key=lambda i: (row["logprob"][i], -i))
    row["picked_norm"] = max(range(len(scores)), key=lambda i: (means[i], -i))
    row["correct"] = row["picked"] == item.gold
    row["correct_norm"] = row["picked_norm"] == item.gold
    row["chance"] = 1 / len(scores)
    return row


def summarize_rows(rows: Sequence[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """n, accuracy (per-token normalized; completion: greedy answer span), acc (by the sum), the Wilson interval
    of the accuracy, the chance level and the mean gold log-probability per token."""
    n = len(rows)
    if n == 0:
        return {"n": 0}
    correct = sum(bool(r["correct_norm"]) for r in rows)
    low, high = wilson_interval(correct, n, confidence)
    finite = [r["gold_logprob_per_token"] for r in rows if r["gold_logprob_per_token"] != float("-inf")]
    return {
        "n": n,
        "accuracy": round(correct / n, 4),
        "acc": round(sum(bool(r["correct"]) for r in rows) / n, 4),
        "wilson": [round(low, 4), round(high, 4)],
        "chance": round(sum(r["chance"] for r in rows) / n, 4),
        "gold_logprob_per_token": round(sum(finite) / len(finite), 4) if finite else None,
    }


def build_report(rows: Sequence[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    by_family: dict[str, list] = defaultdict(list)
    by_kind: dict[str, list] = defaultdict(list)
    by_both: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_family[row["family"]].append(row)
        by_kind[row["kind"]].append(row)
        by_both[row["family"]][row["kind"]].append(row)
    return {
        "confidence": confidence,
        "overall": summarize_rows(rows, confidence),
        "per_family": {f: summarize_rows(by_family[f], confidence) for f in sorted(by_family)},
        "per_kind": {k: summarize_rows(by_kind[k], confidence) for k in KINDS if k in by_kind},
        "per_family_kind": {
            f: {k: summarize_rows(by_both[f][k], confidence) for k in KINDS if k in by_both[f]}
            for f in sorted(by_both)
        },
    }


# ------------------------------------------------------------------------------------------- the command


def _table(report: dict[str, Any], kinds: Sequence[str], title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("family")
    for kind in kinds:
        table.add_column(kind, justify="right")
    table.add_column("all", justify="right")

    def cell(group: dict[str, Any] | None) -> str:
        return f"{group['accuracy']:.2f} ({group['n']})" if group and group.get("n") else "-"

    for family, kinds_of in report["per_family_kind"].items():
        table.add_row(family, *(cell(kinds_of.get(k)) for k in kinds), cell(report["per_family"][family]))
    table.add_row(
        "all", *(cell(report["per_kind"].get(k)) for k in kinds), cell(report["overall"]), style="bold"
    )
    return table


def run_aptbench(cfg: EvalConfig) -> int:
    """``agentkit eval aptbench.data=...``: build the items, score them with the checkpoint, write the report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    options: AptbenchConfig = cfg.aptbench
    check_options(options.kinds, options.choices, options.per_family)
    if options.batch_size < 1:
        raise ConfigError(f"aptbench.batch_size: must be >= 1, got {options.batch_size}")
    if options.max_length < 8:
        raise ConfigError(f"aptbench.max_length: must be >= 8, got {options.max_length}")
    checkpoint = check_checkpoint(cfg.model.path)
    started = time.perf_counter()
    records = load_trajectories(str(options.data))
    item_set = build_items(records, options.kinds, options.choices, options.per_family, options.seed)
    if not item_set.items:
        raise ConfigError(
            f"aptbench.data: the {item_set.trajectories} passed trajectories gave no item of kinds "
            f"{list(options.kinds)} with {options.choices} distinct options"
        )
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    items_path = out / "items.jsonl"
    items_path.write_text(
        "".join(json.dumps(item.to_dict(), ensure_ascii=False) + "\n" for item in item_set.items)
    )
    items_sha256 = hashlib.sha256(items_path.read_bytes()).hexdigest()
    built = time.perf_counter()

    scorer = TransformersScorer(checkpoint, cfg.model.tokenizer, options.batch_size, options.max_length)
    loaded = time.perf_counter()
    requests = scorer.requests(item_set.items)
    rendered = time.perf_counter()
    console = Console(stderr=True)
    columns = (TextColumn("aptbench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not cfg.report.progress, transient=True) as bar:
        task = bar.add_task("choices", total=len(requests))
        per_item = scorer.score(item_set.items, requests, progress=lambda k: bar.advance(task, k))
    scored = time.perf_counter()
    rows = [pick(item, scores) for item, scores in zip(item_set.items, per_item, strict=True)]
    (out / "scores.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = build_report(rows, cfg.confidence)
    report = {
        "checkpoint": str(checkpoint.resolve()),
        "data": str(options.data),
        "items_sha256": items_sha256,
        "items": len(item_set.items),
        "trajectories": item_set.trajectories,
        "families": item_set.families,
        "kinds": list(options.kinds),
        "choices": options.choices,
        "per_family": options.per_family,
        "seed": options.seed,
        "skipped": item_set.skipped,
        "dropped": item_set.dropped,
        "scored_choices": len(requests),
        "tokens": scorer.tokens,
        "truncated_items": sum(bool(r["truncated"]) for r in rows),
        "seconds": {
            "items": round(built - started, 3),
            "load": round(loaded - built, 3),
            "render": round(rendered - loaded, 3),
            "score": round(scored - rendered, 3),
            "total": round(time.perf_counter() - started, 3),
        },
        **report,
    }
    (out / "aptbench.json").write_text(json.dumps(report, indent=1) + "\n")
    Console().print(_table(report, [k for k in KINDS if k in options.kinds], f"aptbench: {checkpoint}"))
    overall = report["overall"]
    print(
        f"items: {len(item_set.items)} ({items_sha256[:12]}), choices scored: {len(requests)}, "
        f"{report['seconds']['score']:.1f} s scoring"
    )
    print(
        f"aptbench accuracy: {overall['accuracy']:.4f}  {cfg.confidence:.0%} CI [{overall['wilson'][0]:.4f}, "
        f"{overall['wilson'][1]:.4f}]  chance {overall['chance']:.4f}"
    )
    print(f"report: {out / 'aptbench.json'}")
    return 0
