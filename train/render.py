"""Turn documents and conversations into ``input_ids`` + ``labels`` (-100 where no loss is taken).

The loss mask of a conversation is computed from the chat template itself, by rendering prefixes: the
text that ``messages[:j+1]`` adds to ``messages[:j]`` belongs to message ``j``, and for an assistant
message the generation prompt (``messages[:j]`` with ``add_generation_prompt``) splits off the template's
role marker. This needs no ``{% generation %}`` markers, so any template works as long as rendering
is prefix-stable. A token is trained only if every character it covers is trainable, so a token that
straddles an assistant reply and anything else is never trained.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentkit.errors import DataError

IGNORE = -100


@dataclass(frozen=True)
class LossPolicy:
    """What a conversation is trained on: the text of these roles, and optionally the template's own text."""

    roles: frozenset[str] = frozenset({"assistant"})
    template: bool = False

    @classmethod
    def of(cls, roles: Iterable[str], template: bool) -> LossPolicy:
        return cls(frozenset(roles), bool(template))


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def trainable_chars(
    tokenizer,
    messages: Sequence[dict[str, Any]],
    tools: list[dict] | None,
    policy: LossPolicy,
    chat_template: str | None = None,
) -> tuple[str, list[bool]]:
    """The rendered conversation and, per character, whether the loss is taken on it."""
    full, trainable, _ = _rendered_replies(tokenizer, messages, tools, policy, chat_template)
    return full, trainable


def _rendered_replies(
    tokenizer,
    messages: Sequence[dict[str, Any]],
    tools: list[dict] | None,
    policy: LossPolicy,
    chat_template: str | None = None,
) -> tuple[str, list[bool], list[tuple[int, int]]]:
    """``trainable_chars`` plus the character span of each assistant reply (after its role marker, through the
    end of its rendering), in order."""

    def render(msgs: Sequence[dict[str, Any]], generation_prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(
            list(msgs),
            tools=tools or None,
            tokenize=False,
            add_generation_prompt=generation_prompt,
            chat_template=chat_template,
        )

    full = render(messages)
    trainable = [policy.template] * len(full)
    replies: list[tuple[int, int]] = []
    try:
        previous = render([])
    except Exception:  # some templates index messages[0] unconditionally
        previous = ""
    for j, message in enumerate(messages):
        rendered = render(messages[: j + 1])
        if not full.startswith(rendered):
            raise DataError(
                f"the chat template is not prefix-stable: rendering messages[:{j + 1}] is not a prefix of "
                "rendering them all, so the loss mask cannot be derived from it"
            )
        start, end = _common_prefix(previous, full), len(rendered)
        role = message.get("role")
        if role == "assistant":
            prompt = render(messages[:j], generation_prompt=True)
            if not full.startswith(prompt) or not start <= len(prompt) <= end:
                raise DataError(
                    f"the chat template's generation prompt before messages[{j}] is not a prefix of the "
                    "rendered conversation, so the assistant reply cannot be located"
                )
            reply_start = len(prompt)
            replies.append((reply_start, end))
        else:
            reply_start = start
        role_trained = role in policy.roles
        for i in range(start, reply_start):
            trainable[i] = policy.template
        for i in range(reply_start, end):
            trainable[i] = role_trained
        previous = rendered
    return full, trainable, replies


def token_labels(input_ids: list[int], offsets: list[tuple[int, int]], trainable: list[bool]) -> list[int]:
    """Labels from per-character trainability. Each token owns the characters since the previous token's end
    (tokenizers may trim leading spaces off offsets), and is trained only if all of them are trainable."""
    prefix = [0]
    for flag in trainable:
        prefix.append(prefix[-1] + flag)
    labels, last = [], 0
    for token, (_, end) in zip(input_ids, offsets, strict=True):
        start, last = last, max(last, end)
        labels.append(token if end > start and prefix[end] - prefix[start] == end - start else IGNORE)
    return labels


def render_conversation(
    tokenizer,
    messages: Sequence[dict[str, Any]],
    tools: list[dict] | None = None,
    policy: LossPolicy = LossPolicy(),
    chat_template: str | None = None,
) -> dict[str, list[int]]:
    """``{"input_ids", "labels"}`` of one conversation: the exact tokens the chat template gives at serve time."""
    text, trainable = trainable_chars(tokenizer, messages, tools, policy, chat_template)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    return {"input_ids": ids, "labels": token_labels(ids, encoded["offset_mapping"], trainable)}


@dataclass
class SampledTurns:
    """How a token-faithful conversation's sampled turns were trained (``render_sampled_conversation``)."""

    turns: int = 0
    aligned: bool = True
    """Whether the record has one sampled turn per assistant message (else none is kept)."""
    kept: int = 0
    """Trained on exactly the ids that were sampled."""
    resplit: int = 0
    """Of ``kept``: sampled as another split of their text than the tokenizer's own (kept as sampled)."""

    @property
    def mismatched(self) -> int:
        """Trained on other ids than were sampled: the text re-renders differently, or cannot be aligned."""
        return self.turns - self.kept


def render_sampled_conversation(
    tokenizer,
    messages: Sequence[dict[str, Any]],
    tools: list[dict] | None,
    sampled: Sequence[Sequence[int]],
    policy: LossPolicy = LossPolicy(),
    chat_template: str | None = None,
) -> tuple[dict[str, list[int]], SampledTurns]:
    """``render_conversation``, but each assistant reply whose sampled ids (``sampled[k]`` for the k-th assistant
    message) decode to exactly the text the template renders there is trained on those ids.

    A model may sample a split of a text that the tokenizer would merge otherwise; re-tokenizing it would train
    the model on tokens it did not generate. Everything else (prompts, tool responses, a reply whose text the
    template renders differently, e.g. a tool call re-serialized) keeps the tokenizer's own ids."""
    text, trainable, replies = _rendered_replies(tokenizer, messages, tools, policy, chat_template)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = token_labels(ids, encoded["offset_mapping"], trainable)
    stats = SampledTurns(turns=len(sampled), aligned=len(sampled) == len(replies))
    if not stats.aligned:
        return {"input_ids": ids, "labels": labels}, stats
    starts, last = {0: 0}, 0  # character position -> index of the token that starts there
    for i, (_, end) in enumerate(encoded["offset_mapping"]):
        last = max(last, end)
        starts[last] = i + 1
    out_ids: list[int] = []
    out_labels: list[int] = []
    cursor = 0
    for (start, _), turn in zip(replies, sampled, strict=True):
        piece = tokenizer.decode(list(turn), skip_special_tokens=False)
        stop = start + len(piece)
        if not turn or text[start:stop] != piece or start not in starts or stop not in starts:
            continue
        first, after = starts[start], starts[stop]
        stats.kept += 1
        if ids[first:after] == list(turn):
            continue
        stats.resplit += 1
        trained = all(trainable[start:stop])
        out_ids += ids[cursor:first] + list(turn)
        out_labels += labels[cursor:first] + (list(turn) if trained else [IGNORE] * len(turn))
        cursor = after
    return {"input_ids": out_ids + ids[cursor:], "labels": out_labels + labels[cursor:]}, stats


def render_text(tokenizer, text: str) -> dict[str, list[int]]:
    """One pre-training document, framed by BOS and EOS like a conversation, trained on every token."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    if tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return {"input_ids": ids, "labels": list(ids)}


def message_dicts(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Messages as the plain dicts chat templates read (pydantic records dumped without nulls)."""
    out = []
    for message in messages:
        out.append(message.model_dump(exclude_none=True) if hasattr(message, "model_dump") else dict(message))
    return out


def debug_view(tokenizer, example: dict[str, list[int]]) -> str:
    """The rendered example with trained spans in ``[[...]]``: for eyeballing a mask."""
    out, run, trained = [], [], None
    for token, label in zip(example["input_ids"], example["labels"], strict=True):
        flag = label != IGNORE
        if flag != trained and run:
            piece = tokenizer.decode(run, skip_special_tokens=False)
            out.append(f"[[{piece}]]" if trained else piece)
            run = []
        trained = flag
        run.append(token)
    if run:
        piece = tokenizer.decode(run, skip_special_tokens=False)
        out.append(f"[[{piece}]]" if trained else piece)
    return "".join(out)
