"""The training set of a stage: sources rendered to ``input_ids`` + ``labels`` and mixed by weight.

In memory (``datasets.Dataset``) by default, with a rich progress bar while rendering; with
``data.streaming=true`` an ``IterableDataset`` that reads and renders lazily, for corpora larger than
memory. TRL's ``SFTTrainer`` takes either as a pre-tokenized dataset and packs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from agentkit.chat_template import template_sha256
from agentkit.errors import ConfigError, DataError
from agentkit.train.config import ROLES, DataConfig, SourceConfig
from agentkit.train.render import (
    IGNORE,
    LossPolicy,
    render_conversation,
    render_sampled_conversation,
    render_text,
)
from agentkit.train.sources import Item, SourceStats, TemplateCheck, iter_items, validate_source

log = logging.getLogger("agentkit.train")

STOPPING = ("first_exhausted", "all_exhausted")


@dataclass
class TrainData:
    dataset: Any
    """``datasets.Dataset`` or ``IterableDataset`` with ``input_ids`` and ``labels`` columns."""
    stats: dict[str, SourceStats]
    weights: dict[str, float]
    streaming: bool = False
    warnings: list[str] = field(default_factory=list)


def features():
    from datasets import Features, Sequence, Value

    return Features({"input_ids": Sequence(Value("int64")), "labels": Sequence(Value("int64"))})


def resolve_sources(cfg: DataConfig) -> dict[str, SourceConfig]:
    """The mixture after the ``data=<path>`` shorthand, without zero-weight sources, validated."""
    sources = dict(cfg.sources)
    if cfg.path:
        paths = [p.strip() for p in cfg.path.split(",") if p.strip()]
        base = sources.pop(cfg.main, SourceConfig())
        base = replace(base, kind="auto" if base.kind == "generated" else base.kind, generator=None)
        for i, path in enumerate(paths):
            sources[cfg.main if len(paths) == 1 else f"{cfg.main}{i}"] = replace(base, path=path)
    sources = {name: src for name, src in sources.items() if src.weight > 0}
    if not sources:
        raise ConfigError("data: no sources; give data=<path> or data.sources.<name>.path=...")
    for name, src in sources.items():
        validate_source(name, src)
    if cfg.stopping not in STOPPING:
        raise ConfigError(f"data.stopping: '{cfg.stopping}' is not one of {', '.join(STOPPING)}")
    for role in cfg.loss_roles:
        if role not in ROLES:
            raise ConfigError(f"data.loss_roles: unknown role '{role}'; known: {', '.join(ROLES)}")
    return sources


def template_check(cfg: DataConfig, tokenizer) -> TemplateCheck:
    template = getattr(tokenizer, "chat_template", None)
    return TemplateCheck(
        template_sha256(template) if isinstance(template, str) else None, cfg.allow_template_mismatch
    )


def render_item(
    item: Item, tokenizer, policy: LossPolicy, stats: SourceStats | None = None, keep_sampled: bool = True
) -> dict[str, list[int]]:
    """One item's ``input_ids`` + ``labels``; a token-faithful trajectory's sampled turns are counted in
    ``stats`` and, with ``keep_sampled``, trained on the ids that were sampled where their text re-renders."""
    if item.text is not None:
        return render_text(tokenizer, item.text)
    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError("a conversation, but the tokenizer has no chat template to render it", item.where)
    assert item.messages is not None  # an item is text or a conversation
    try:
        if not item.sampled:
            return render_conversation(tokenizer, item.messages, item.tools, policy)
        if keep_sampled:
            example, turns = render_sampled_conversation(
                tokenizer, item.messages, item.tools, item.sampled, policy
            )
            mismatched, resplit = turns.mismatched, turns.resplit
            if not turns.aligned:  # not one sampled turn per assistant message: count them as before
                mismatched = retokenize_mismatches(example["input_ids"], item.sampled)
        else:
            example = render_conversation(tokenizer, item.messages, item.tools, policy)
            mismatched, resplit = retokenize_mismatches(example["input_ids"], item.sampled), 0
    except DataError as exc:
        raise DataError(exc.reason, item.where) from None
    if stats is not None:  # on the whole rendering, before any truncation
        stats.sampled_turns += len(item.sampled)
        stats.retokenize_mismatches += mismatched
        stats.kept_sampled_splits += resplit
    return example


def _examples(
    name: str,
    src: SourceConfig,
    tokenizer,
    policy: LossPolicy,
    check: TemplateCheck,
    stats: SourceStats,
    truncate_at: int | None = None,
    on_example=None,
    keep_sampled: bool = True,
):
    for item in iter_items(name, src, check, stats):
        example = render_item(item, tokenizer, policy, stats, keep_sampled)
        if truncate_at is not None and len(example["input_ids"]) > truncate_at:
            example = {key: value[:truncate_at] for key, value in example.items()}
            stats.truncated += 1
        trained = sum(label != IGNORE for label in example["labels"][1:])
        if trained == 0:
            stats.skipped[
                "nothing to train on" if not truncate_at else "nothing to train on within max_length"
            ] += 1
            continue
        stats.examples += 1
        stats.tokens += len(example["input_ids"])
        stats.trained_tokens += trained
        if on_example is not None:
            on_example()
        yield example


def retokenize_mismatches(input_ids: list[int], sampled: list[list[int]]) -> int:
    """How many sampled turns do not reappear, in order, as contiguous ids of the re-rendered conversation: the
    model would be trained on other tokens than it generated (a template or tokenizer round trip that differs)."""
    missing, start = 0, 0
    for turn in sampled:
        found = -1
        if turn:
            first = turn[0]
            for i in range(start, len(input_ids) - len(turn) + 1):
                if input_ids[i] == first and input_ids[i : i + len(turn)] == turn:
                    found = i
                    break
        if found < 0:
            missing += 1
        else:
            start = found + len(turn)
    return missing


def build_train_data(
    cfg: DataConfig, tokenizer, *, truncate_at: int | None = None, progress: bool = True
) -> TrainData:
    """Render and mix the stage's sources into one pre-tokenized dataset.

    ``truncate_at``: cut longer examples here (what the trainer would do anyway), counting them, and drop those
    left with nothing to train on (an SFT reply beyond ``max_length``).
    """
    from datasets import Dataset, IterableDataset, interleave_datasets

    sources = resolve_sources(cfg)
    policy = LossPolicy.of(cfg.loss_roles, cfg.loss_on_template)
    keep_sampled = cfg.keep_sampled_ids
    check = template_check(cfg, tokenizer)
    stats = {name: SourceStats(name) for name in sources}
    total = sum(src.weight for src in sources.values())
    weights = {name: src.weight / total for name, src in sources.items()}
    parts = []
    if cfg.streaming:
        for name, src in sources.items():

            def generate(name=name, src=src):
                yield from _examples(
                    name, src, tokenizer, policy, check, stats[name], truncate_at, keep_sampled=keep_sampled
                )

            _peek(name, src, tokenizer, policy, check, truncate_at)
            part = IterableDataset.from_generator(generate, features=features())
            parts.append(part.shuffle(seed=cfg.seed + len(parts), buffer_size=cfg.shuffle_buffer))
    else:
        with _progress(progress) as bar:
            for name, src in sources.items():
                task = bar.add_task(f"render {name}", total=src.n)
                rows = list(
                    _examples(
                        name,
                        src,
                        tokenizer,
                        policy,
                        check,
                        stats[name],
                        truncate_at,
                        on_example=partial(bar.advance, task),
                        keep_sampled=keep_sampled,
                    )
                )
                if not rows:
                    raise DataError(f"data.sources.{name}: no trainable examples ({_why(stats[name])})")
                parts.append(Dataset.from_list(rows, features=features()))
    if len(parts) == 1:
        dataset = parts[0]
    else:
        stopping = cfg.stopping
        assert stopping in STOPPING  # checked with the sources
        dataset = interleave_datasets(
            parts, probabilities=list(weights.values()), seed=cfg.seed, stopping_strategy=stopping
        )
    data = TrainData(dataset, stats, weights, streaming=cfg.streaming)
    data.warnings = template_warnings(stats)
    for message in data.warnings:
        log.warning(message)
    return data


def _peek(
    name: str, src: SourceConfig, tokenizer, policy: LossPolicy, check: TemplateCheck, truncate_at: int | None
) -> None:
    """Streaming renders lazily, inside the training loop: fail on a broken source before the model starts."""
    scratch = SourceStats(name)
    for _, _example in zip(
        range(8), _examples(name, src, tokenizer, policy, check, scratch, truncate_at), strict=False
    ):
        pass
    if scratch.read and not scratch.examples and scratch.read < 8:
        raise DataError(f"data.sources.{name}: no trainable examples ({_why(scratch)})")


def _why(stats: SourceStats) -> str:
    if not stats.read:
        return "the source is empty"
    skipped = ", ".join(f"{k}: {v}" for k, v in stats.skipped.items()) or "none skipped"
    return f"read {stats.read}; skipped {skipped}"


def template_warnings(stats: dict[str, SourceStats]) -> list[str]:
    out = []
    for name, s in stats.items():
        if s.truncated:
            out.append(
                f"data.sources.{name}: {s.truncated} examples longer than trainer.max_length were truncated"
            )
        if s.no_template_hash:
            out.append(
                f"data.sources.{name}: {s.no_template_hash} trajectories carry no chat_template_sha256; "
                "trained without the template check"
            )
        if s.template_mismatch:
            out.append(
                f"data.sources.{name}: {s.template_mismatch} trajectories were rendered with another chat "
                "template (allowed by data.allow_template_mismatch)"
            )
    return out


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def advance(self, *args, **kwargs):
        pass


def _progress(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def packing_efficiency(dataset, max_length: int) -> dict[str, float] | None:
    """Real tokens / (rows x ``max_length``) of a packed in-memory dataset: how full the packed rows are."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset) or "input_ids" not in dataset.column_names or not len(dataset):
        return None
    import pyarrow.compute as pc

    # pyarrow.compute generates its kernels at import time; its type stubs do not list them.
    lengths = pc.list_value_length(dataset.data.column("input_ids"))  # pyright: ignore[reportAttributeAccessIssue]
    tokens = int(pc.sum(lengths).as_py())  # pyright: ignore[reportAttributeAccessIssue]
    rows = len(dataset)
    return {"rows": rows, "tokens": tokens, "efficiency": tokens / (rows * max_length)}
