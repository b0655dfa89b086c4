"""Data sources: JSONL(.zst), Parquet, local HF datasets, synth output directories and generated corpora.

Every source yields ``Item``s (a text document or a conversation) lazily, so a corpus larger than memory
streams. Trajectory records are filtered by status and verdict, and their chat-template hash is checked
against the tokenizer's: training on trajectories rendered with another template is refused unless
``data.allow_template_mismatch=true``. Bad rows fail with ``path:line`` and what is wrong.
"""

from __future__ import annotations

import glob as globlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentkit.errors import ConfigError, DataError
from agentkit.records import Message, Status, Trajectory
from agentkit.train.config import SourceConfig

log = logging.getLogger("agentkit.train")

KINDS = ("auto", "jsonl", "parquet", "hf", "synth", "generated")
FORMATS = ("auto", "text", "conversation")
_JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.zst", ".json.zst", ".ndjson")


@dataclass
class Item:
    """One training document: ``text``, or ``messages`` (+ ``tools``) of a conversation."""

    where: str
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    sampled: list[list[int]] | None = None
    """A token-faithful trajectory's completion token ids, per assistant turn (checked against its re-rendering)."""


@dataclass
class SourceStats:
    """What a source yielded and what it skipped, and why (a bad rollout is data, not a crash: it is counted)."""

    name: str
    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    no_template_hash: int = 0
    template_mismatch: int = 0
    examples: int = 0
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    sampled_turns: int = 0
    """Assistant turns with sampled token ids (``record.tokens``)."""
    retokenize_mismatches: int = 0
    """Of those, turns trained on other ids than were sampled (their text re-renders differently; or, with
    ``data.keep_sampled_ids=false``, their ids do not reappear in order in the conversation as rendered)."""
    kept_sampled_splits: int = 0
    """Of those, turns trained on their sampled ids although the tokenizer splits their text otherwise."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "no_template_hash": self.no_template_hash,
            "template_mismatch": self.template_mismatch,
            "examples": self.examples,
            "truncated": self.truncated,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "sampled_turns": self.sampled_turns,
            "retokenize_mismatches": self.retokenize_mismatches,
            "kept_sampled_splits": self.kept_sampled_splits,
        }


@dataclass
class TemplateCheck:
    """The chat-template hash trajectories must carry to be trained with this tokenizer."""

    expected: str | None
    allow_mismatch: bool = False


def validate_source(name: str, cfg: SourceConfig) -> None:
    """Config errors a source can have, found before any model is built."""
    key = f"data.sources.{name}"
    if cfg.kind not in KINDS:
        raise ConfigError(f"{key}.kind: unknown kind '{cfg.kind}'; known: {', '.join(KINDS)}")
    if cfg.format not in FORMATS:
        raise ConfigError(f"{key}.format: unknown format '{cfg.format}'; known: {', '.join(FORMATS)}")
    if cfg.weight < 0:
        raise ConfigError(f"{key}.weight: must be >= 0, got {cfg.weight}")
    known = {s.value for s in Status}
    for status in cfg.statuses:
        if status not in known:
            raise ConfigError(f"{key}.statuses: unknown status '{status}'; known: {', '.join(sorted(known))}")
    if cfg.kind == "generated" or (cfg.kind == "auto" and cfg.generator):
        from agentkit.train.corpus import GENERATORS

        if cfg.generator not in GENERATORS:
            raise ConfigError(
                f"{key}.generator: unknown corpus '{cfg.generator}'; known: {', '.join(GENERATORS)}"
            )
    elif not cfg.path:
        raise ConfigError(
            f"{key}.path: missing (a file, directory or glob; or set kind=generated and a generator)"
        )


# ----------------------------------------------------------------------------------------------- raw rows


def _open_text(path: Path):
    if path.suffix == ".zst":
        import zstandard

        return io.TextIOWrapper(
            zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8"
        )
    return open(path, encoding="utf-8")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """``(path:line, object)`` line by line (constant memory); a torn last line is skipped with a warning."""
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if line.endswith("\n"):
                yield _parse_line(path, number, line)
                continue
            try:  # the last line, without its newline: complete, or torn by a writer that died mid-line
                obj = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: torn last line (a writer stopped mid-line); skipped", path, number)
            else:
                yield f"{path}:{number}", obj


def _parse_line(path: Path, number: int, line: str) -> tuple[str, Any]:
    try:
        return f"{path}:{number}", json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", str(path), number) from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for obj in batch.to_pylist():
            row += 1
            yield f"{path}:row {row}", obj


def _hf_rows(path: Path, split: str, key: str) -> Iterator[tuple[str, Any]]:
    from datasets import DatasetDict, load_from_disk

    dataset = load_from_disk(str(path))
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise ConfigError(
                f"{key}.split: '{split}' is not a split of {path}; it has {', '.join(map(str, dataset))}"
            )
        dataset = dataset[split]
    for row, obj in enumerate(dataset, start=1):
        yield f"{path}[{split}]:row {row}", obj


def _is_hf_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("dataset_dict.json", "state.json", "dataset_info.json"))


def is_synth_dir(path: Path) -> bool:
    return any(path.glob("manifest*.json")) or ((path / "data").is_dir() and (path / "raw").is_dir())


def synth_shards(path: Path, pattern: str | None = None) -> list[Path]:
    """The curated trajectory shards of a synth output directory (never its raw rollouts or failures).

    The manifests (``manifest*.json``, one per ``shard=i/n``) list them under ``files``; without a
    manifest (a run still going), ``data/*.jsonl[.zst]``; for a plain directory, its ``*.jsonl[.zst]``
    files, from the top level if there are any, else from any depth.
    """
    if pattern:
        return sorted(p for p in path.glob(pattern) if p.is_file())
    listed: set[Path] = set()
    for manifest in sorted(path.glob("manifest*.json")):
        try:
            content = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", str(manifest), exc.lineno) from None
        entries = (content.get("files") or content.get("shards") or []) if isinstance(content, dict) else []
        for entry in entries:
            name = entry if isinstance(entry, str) else entry.get("path") if isinstance(entry, dict) else None
            if isinstance(name, str):
                listed.add(path / name)
    if listed:
        missing = [p for p in listed if not p.exists()]
        if missing:
            raise DataError(
                f"the manifest lists {len(missing)} missing file(s), e.g. {missing[0]}", str(path)
            )
        return sorted(listed)

    def shards(folder: Path, recursive: bool) -> list[Path]:
        found = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(
            p
            for p in found
            if p.is_file()
            and p.name.endswith((".jsonl", ".jsonl.zst"))
            and "raw" not in p.relative_to(path).parts[:-1]
            and not p.name.startswith("failures")
        )

    if (path / "data").is_dir():
        return shards(path / "data", False)
    return shards(path, False) or shards(path, True)


def _files(path: str, key: str) -> list[Path]:
    if any(ch in path for ch in "*?["):
        files = sorted(Path(p) for p in globlib.glob(path, recursive=True) if Path(p).is_file())
        if not files:
            raise ConfigError(f"{key}.path: the pattern '{path}' matches no file")
        return files
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{key}.path: no such file or directory '{path}'")
    return [p]


def _file_rows(path: Path, key: str) -> Iterator[tuple[str, Any]]:
    if path.name.endswith(_JSONL_SUFFIXES):
        yield from _jsonl_rows(path)
    elif path.suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        raise ConfigError(
            f"{key}.path: cannot tell the format of '{path}' (expected .jsonl, .jsonl.zst or .parquet; "
            "set the kind)"
        )


def raw_rows(name: str, cfg: SourceConfig) -> Iterator[tuple[str, Any]]:
    """``(where, row)`` for every record of a source: dicts, ``Trajectory`` objects, or generated strings."""
    key = f"data.sources.{name}"
    if cfg.kind == "generated" or (cfg.kind == "auto" and cfg.generator):
        from agentkit.train.corpus import GENERATORS

        assert cfg.generator is not None  # validate_source checked it names a corpus
        generate = GENERATORS[cfg.generator]
        for i, text in enumerate(generate(cfg.n if cfg.n is not None else 20000, cfg.seed), start=1):
            yield f"{cfg.generator}#{i}", text
        return
    assert cfg.path is not None  # validate_source checked it is set
    for path in _files(cfg.path, key):
        kind = cfg.kind
        if kind == "auto" and path.is_dir():
            kind = "hf" if _is_hf_dir(path) else "synth" if is_synth_dir(path) else "dir"
        if kind == "hf":
            yield from _hf_rows(path, cfg.split, key)
        elif kind == "synth":
            yield from _synth_rows(path, cfg.glob, key)
        elif kind == "dir":
            shards = synth_shards(path, cfg.glob)
            shards += [] if cfg.glob else sorted(path.rglob("*.parquet"))
            if not shards:
                raise ConfigError(f"{key}.path: no .jsonl, .jsonl.zst or .parquet files under '{path}'")
            for shard in shards:
                yield from _file_rows(shard, key)
        elif kind == "parquet":
            yield from _parquet_rows(path)
        elif kind == "jsonl":
            yield from _jsonl_rows(path)
        else:
            yield from _file_rows(path, key)


def _synth_rows(path: Path, pattern: str | None, key: str) -> Iterator[tuple[str, Any]]:
    from agentkit.jsonl import iter_records

    if not path.is_dir():
        raise ConfigError(f"{key}.path: a synth output must be a directory, got '{path}'")
    shards = synth_shards(path, pattern)
    if not shards:
        raise ConfigError(f"{key}.path: no trajectory shards (*.jsonl, *.jsonl.zst) under '{path}'")
    for shard in shards:
        for number, record in enumerate(iter_records(shard, Trajectory, skip_torn_tail=True), start=1):
            yield f"{shard}:{number}", record


# ------------------------------------------------------------------------------------------- items


def _tools(value: Any, where: str) -> list[dict[str, Any]] | None:
    if value is None or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(f"tools: not JSON ({exc.msg})", where) from None
    if not isinstance(value, list):
        raise DataError(f"tools: expected a list of OpenAI tool schemas, got {type(value).__name__}", where)
    return [t.model_dump(exclude_none=True) if hasattr(t, "model_dump") else t for t in value]


def _sharegpt(messages: list[Any]) -> list[Any]:
    roles = {
        "human": "user",
        "gpt": "assistant",
        "system": "system",
        "tool": "tool",
        "user": "user",
        "assistant": "assistant",
        "function_call": "assistant",
        "observation": "tool",
    }
    if messages and isinstance(messages[0], dict) and "from" in messages[0]:
        return [
            {"role": roles.get(m.get("from"), m.get("from")), "content": m.get("value", "")} for m in messages
        ]
    return messages


def _messages(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise DataError("messages: expected a non-empty list of chat messages", where)
    out = []
    for i, raw in enumerate(_sharegpt(value)):
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if v is not None}
        try:
            message = Message.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise DataError(f"messages[{i}].{loc}: {first['msg']}", where) from None
        out.append(message.model_dump(exclude_none=True))
    return out


def _trajectory_item(
    record: Trajectory, where: str, cfg: SourceConfig, stats: SourceStats, check: TemplateCheck
) -> Item | None:
    if record.status.value not in cfg.statuses:
        stats.skipped[f"status={record.status.value}"] += 1
        return None
    if cfg.require_passed and not record.passed:
        stats.skipped["not passed"] += 1
        return None
    if cfg.abilities and not set(cfg.abilities) & set(record.abilities or record.task.abilities):
        stats.skipped["abilities"] += 1
        return None
    digest = record.provenance.chat_template_sha256
    if not digest:
        stats.no_template_hash += 1
    elif check.expected is not None and digest != check.expected:
        if not check.allow_mismatch:
            raise DataError(
                f"trajectory '{record.id}' was rendered with chat template sha256 {digest[:12]}..., but the "
                f"tokenizer's template is {check.expected[:12]}...; training on it would teach a format the served "
                "model never sees. Use the tokenizer the data was generated with, or set "
                "data.allow_template_mismatch=true",
                where,
            )
        stats.template_mismatch += 1
    tools = [t.model_dump(exclude_none=True) for t in record.tools] or None
    return Item(
        where,
        messages=[m.model_dump(exclude_none=True) for m in record.messages],
        tools=tools,
        sampled=record.completion_token_ids,
    )


def _looks_like_trajectory(row: dict[str, Any]) -> bool:
    return "status" in row and "task" in row and "messages" in row


def iter_items(name: str, cfg: SourceConfig, check: TemplateCheck, stats: SourceStats) -> Iterator[Item]:
    """The source's documents, filtered, validated and template-checked, at most ``cfg.n``."""
    for where, row in raw_rows(name, cfg):
        if cfg.n is not None and stats.kept >= cfg.n:
            return
        stats.read += 1
        item = _to_item(where, row, cfg, stats, check)
        if item is not None:
            stats.kept += 1
            yield item


def _to_item(
    where: str, row: Any, cfg: SourceConfig, stats: SourceStats, check: TemplateCheck
) -> Item | None:
    if isinstance(row, str):
        return Item(where, text=row)
    if isinstance(row, Trajectory):
        return _trajectory_item(row, where, cfg, stats, check)
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object, got {type(row).__name__}", where)
    conversation = cfg.format == "conversation" or (
        cfg.format == "auto" and (cfg.messages_field in row or "conversations" in row)
    )
    if conversation:
        if cfg.messages_field == "messages" and _looks_like_trajectory(row):
            try:
                record = Trajectory.model_validate(row)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise DataError(
                    f"not a valid Trajectory: {'.'.join(map(str, first['loc']))}: {first['msg']}", where
                ) from None
            return _trajectory_item(record, where, cfg, stats, check)
        field_name = cfg.messages_field if cfg.messages_field in row else "conversations"
        if field_name not in row:
            raise DataError(f"no '{cfg.messages_field}' field (keys: {', '.join(sorted(row))})", where)
        return Item(where, messages=_messages(row[field_name], where), tools=_tools(row.get("tools"), where))
    if cfg.text_field not in row:
        raise DataError(
            f"no '{cfg.text_field}' or '{cfg.messages_field}' field (keys: {', '.join(sorted(row))}); "
            "set the source's text_field or messages_field",
            where,
        )
    text = row[cfg.text_field]
    if not isinstance(text, str):
        raise DataError(f"{cfg.text_field}: expected a string, got {type(text).__name__}", where)
    return Item(where, text=text)
