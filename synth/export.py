"""``agentkit export``: a synth or eval run's trajectories in the formats other tools read.

Formats:

* ``atif``: Harbor's trajectory format, one ATIF v1.4 object per line (``atif.jsonl``), each validated
  against the schema before it is written (``agentkit.synth.atif``).
* ``sharegpt``: LlamaFactory's ShareGPT layout (``sharegpt.json`` + ``dataset_info.json``):
  ``conversations`` of ``human``/``gpt``/``function_call``/``observation`` turns, ``system``, and
  ``tools`` as a JSON string.
* ``parquet``: one row per trajectory (``trajectories.parquet``): OpenAI ``messages`` (tool-call
  arguments as JSON strings, so TRL's SFTTrainer reads it as is), ``tools`` and ``task_meta`` as JSON
  strings (their shapes differ from row to row), flat columns to filter on, and ``record``: the
  whole trajectory as JSON, so nothing is lost.
* ``datasets``: the same rows as a ``datasets.save_to_disk`` directory (``datasets/``), optionally
  pushed to the Hugging Face Hub (``hub_repo=user/name``).

Filters (all optional, combined with AND): ``min_reward``, ``statuses``, ``strategies``,
``abilities`` (the trajectory's or its task's ability tags), ``envs``, ``families``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.errors import AgentkitError, ConfigError, DataError

FORMATS = ("atif", "sharegpt", "parquet", "datasets")


@dataclass
class ExportConfig:
    """``agentkit export run=runs/x format=atif,parquet out=runs/x/export min_reward=1``."""

    run: str = ""
    """A run directory (``raw/rollouts*.jsonl``, ``data/*.jsonl[.zst]``) or a JSONL file of trajectories."""
    format: Any = "atif"
    """One name or a list: ``atif``, ``sharegpt``, ``parquet``, ``datasets``; or ``all``
    (``format=parquet``, ``format=[atif,sharegpt]``)."""
    out: str | None = None
    """Where to write; default ``<run>/export``."""
    source: str = "raw"
    """``raw``: every finished episode; ``data``: the curated dataset only."""
    min_reward: float | None = None
    statuses: list[str] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    abilities: list[str] = field(default_factory=list)
    """Ability tags (``function_calling``, ``self_correction``...) of the trajectory or its task."""
    envs: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    """A task's family (``task.meta`` ``family``/``kind``/``template``/``category``)."""
    limit: int | None = None
    hub_repo: str | None = None
    """Also push the ``datasets`` export to this Hub repo (needs network and a token)."""
    hub_private: bool = True


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="export_schema", node=ExportConfig)


# -- reading a run ---------------------------------------------------------------------------------


def run_files(run: str | os.PathLike, source: str = "raw") -> list[Path]:
    """The trajectory JSONL files of a run directory (or the file itself)."""
    path = Path(run)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"run: {path} is neither a run directory nor a JSONL file")
    if source not in ("raw", "data"):
        raise ConfigError(f"source: expected 'raw' or 'data', got '{source}'")
    pattern = "raw/rollouts*.jsonl" if source == "raw" else "data/*.jsonl*"
    files = sorted(path.glob(pattern))
    if not files:
        raise ConfigError(f"run: {path} has no {pattern} (is it a synth or eval output directory?)")
    return files


def iter_trajectories(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Trajectory dicts line by line (a torn last line, from a run still writing, is skipped)."""
    from agentkit.jsonl import _open_text

    for path in files:
        with _open_text(path, "rt") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    if not line.endswith("\n"):
                        break  # torn tail
                    raise DataError("invalid JSON line", str(path), number) from None


def abilities(record: dict[str, Any]) -> list[str]:
    """The trajectory's ability tags together with its task's."""
    tags = list(record.get("abilities") or []) + list((record.get("task") or {}).get("abilities") or [])
    return sorted(set(map(str, tags)))


def family(record: dict[str, Any]) -> str:
    """A task's family: ``meta.family``, else ``meta.kind``/``template``/``category``, else its env."""
    task = record.get("task") or {}
    meta = task.get("meta") or {}
    for key in ("family", "kind", "template", "category"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            return value
    return str(task.get("env", "?"))


@dataclass
class ExportFilter:
    min_reward: float | None = None
    statuses: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    abilities: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()
    families: tuple[str, ...] = ()

    def keep(self, record: dict[str, Any]) -> bool:
        if self.min_reward is not None and (
            record.get("reward") is None or record["reward"] < self.min_reward
        ):
            return False
        if self.statuses and record.get("status") not in self.statuses:
            return False
        if self.strategies and (record.get("provenance") or {}).get("strategy") not in self.strategies:
            return False
        if self.abilities and not set(abilities(record)) & set(self.abilities):
            return False
        if self.envs and (record.get("task") or {}).get("env") not in self.envs:
            return False
        if self.families and family(record) not in self.families:
            return False
        return True


# -- converters ------------------------------------------------------------------------------------


def to_sharegpt(record: dict[str, Any]) -> dict[str, Any] | None:
    """LlamaFactory ShareGPT: human/observation turns alternate with gpt/function_call turns.

    An assistant turn with calls is one ``function_call`` turn: its text (``<think>`` included) then
    the call JSON (a list when there are several); the tool messages answering it are one
    ``observation`` (a JSON list of the outputs when there are several). A trailing user or
    observation turn is dropped (LlamaFactory trains on conversations that end with the model).
    None when no assistant turn is left.
    """
    system = "\n\n".join(m["content"] for m in record["messages"] if m["role"] == "system")
    turns: list[dict[str, str]] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            turns.append(
                {"from": "observation", "value": pending[0] if len(pending) == 1 else json.dumps(pending)}
            )
            pending.clear()

    for message in record["messages"]:
        role = message["role"]
        if role == "system":
            continue
        if role == "tool":
            pending.append(message.get("content") or "")
            continue
        flush()
        if role == "user":
            if turns and turns[-1]["from"] in ("human", "observation"):
                turns[-1]["value"] += "\n\n" + (message.get("content") or "")
            else:
                turns.append({"from": "human", "value": message.get("content") or ""})
        elif message.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
                for c in message["tool_calls"]
            ]
            body = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            text = message.get("content") or ""
            turns.append({"from": "function_call", "value": f"{text}{body}" if text else body})
        else:
            turns.append({"from": "gpt", "value": message.get("content") or ""})
    flush()
    while turns and turns[-1]["from"] in ("human", "observation"):
        turns.pop()
    if not turns or turns[0]["from"] != "human":
        return None
    tools = [t["function"] for t in record.get("tools") or []]
    return {
        "conversations": turns,
        "system": system,
        "tools": json.dumps(tools, ensure_ascii=False),
        "id": record["id"],
        "reward": record.get("reward"),
        "status": record.get("status"),
    }


SHAREGPT_DATASET_INFO = {
    "file_name": "sharegpt.json",
    "formatting": "sharegpt",
    "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
    "tags": {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
        "observation_tag": "observation",
        "function_tag": "function_call",
        "system_tag": "system",
    },
}


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A flat, Arrow-friendly row: uniform columns, the shape-varying parts as JSON strings."""
    messages = [
        {
            "role": m["role"],
            "content": m.get("content") or "",
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                }
                for c in m.get("tool_calls") or []
            ]
            or None,
            "tool_call_id": m.get("tool_call_id"),
            "name": m.get("name"),
        }
        for m in record["messages"]
    ]
    task, stats = record.get("task") or {}, record.get("stats") or {}
    verdict, provenance = record.get("verdict") or {}, record.get("provenance") or {}
    seconds = stats.get("seconds") or {}
    return {
        "id": record["id"],
        "task_id": task.get("id"),
        "env": task.get("env"),
        "family": family(record),
        "abilities": abilities(record),
        "prompt": task.get("prompt"),
        "task_meta": json.dumps(task.get("meta") or {}, ensure_ascii=False),
        "messages": messages,
        "tools": json.dumps(record.get("tools") or [], ensure_ascii=False),
        "status": record.get("status"),
        "reward": record.get("reward"),
        "passed": bool(verdict.get("passed")),
        "verdict_reason": verdict.get("reason"),
        "strategy": provenance.get("strategy"),
        "model": provenance.get("model"),
        "chat_template_sha256": provenance.get("chat_template_sha256"),
        "turns": stats.get("turns"),
        "tool_calls": stats.get("tool_calls"),
        "tool_errors": stats.get("tool_errors"),
        "prompt_tokens": stats.get("prompt_tokens"),
        "completion_tokens": stats.get("completion_tokens"),
        "seconds_total": seconds.get("total"),
        "record": json.dumps(record, ensure_ascii=False),
    }


def _arrow_schema():
    import pyarrow as pa

    call = pa.struct(
        [
            ("id", pa.string()),
            ("type", pa.string()),
            ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
        ]
    )
    message = pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("tool_calls", pa.list_(call)),
            ("tool_call_id", pa.string()),
            ("name", pa.string()),
        ]
    )
    strings = ["id", "task_id", "env", "family", "prompt", "task_meta"]
    fields = [(name, pa.string()) for name in strings] + [
        ("abilities", pa.list_(pa.string())),
        ("messages", pa.list_(message)),
        ("tools", pa.string()),
        ("status", pa.string()),
        ("reward", pa.float64()),
        ("passed", pa.bool_()),
        ("verdict_reason", pa.string()),
        ("strategy", pa.string()),
        ("model", pa.string()),
        ("chat_template_sha256", pa.string()),
    ]
    fields += [
        (name, pa.int64())
        for name in ("turns", "tool_calls", "tool_errors", "prompt_tokens", "completion_tokens")
    ]
    fields += [("seconds_total", pa.float64()), ("record", pa.string())]
    return pa.schema(fields)


# -- writers ---------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    format: str
    path: Path
    rows: int
    skipped: int = 0
    """Trajectories this format cannot hold (e.g. ShareGPT without an assistant turn)."""


def write_atif(records: Iterable[dict[str, Any]], out: Path) -> ExportResult:
    from agentkit.synth.atif import to_atif, validate_atif

    out.mkdir(parents=True, exist_ok=True)
    path, rows = out / "atif.jsonl", 0
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            trajectory = to_atif(record)
            errors = validate_atif(trajectory)
            if errors:
                raise DataError(
                    f"trajectory {record['id']} does not convert to valid ATIF: {errors[0]}", str(path)
                )
            handle.write(json.dumps(trajectory, ensure_ascii=False) + "\n")
            rows += 1
    os.replace(tmp, path)
    return ExportResult("atif", path, rows)


def write_sharegpt(records: Iterable[dict[str, Any]], out: Path) -> ExportResult:
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], 0
    for record in records:
        row = to_sharegpt(record)
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    path = out / "sharegpt.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "dataset_info.json").write_text(
        json.dumps({"agentkit": SHAREGPT_DATASET_INFO}, indent=2), encoding="utf-8"
    )
    return ExportResult("sharegpt", path, len(rows), skipped)


def _batches(records: Iterable[dict[str, Any]], size: int = 2048) -> Iterator[list[dict[str, Any]]]:
    batch = []
    for record in records:
        batch.append(to_row(record))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_parquet(records: Iterable[dict[str, Any]], out: Path) -> ExportResult:
    """Streamed in row groups, so a large run never sits in memory whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    path, schema, rows = out / "trajectories.parquet", _arrow_schema(), 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches(records):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return ExportResult("parquet", path, rows)


def write_datasets(
    records: Iterable[dict[str, Any]], out: Path, *, hub_repo: str | None = None, hub_private: bool = True
) -> ExportResult:
    from datasets import Dataset, Features

    path = out / "datasets"
    schema = _arrow_schema()
    rows = [row for batch in _batches(records) for row in batch]
    dataset = (
        Dataset.from_list(rows, features=Features.from_arrow_schema(schema))
        if rows
        else Dataset.from_dict(
            {name: [] for name in schema.names}, features=Features.from_arrow_schema(schema)
        )
    )
    dataset.save_to_disk(str(path))
    if hub_repo:
        push_to_hub(dataset, hub_repo, private=hub_private)
    return ExportResult("datasets", path, len(rows))


def push_to_hub(dataset, repo: str, *, private: bool = True) -> None:
    """``Dataset.push_to_hub`` with one clear line when the Hub cannot be reached or refuses."""
    try:
        dataset.push_to_hub(repo, private=private)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = "HF_HUB_OFFLINE is set" if offline else "no network or no token? (huggingface-cli login)"
        raise AgentkitError(
            f"hub_repo: cannot push to the Hugging Face Hub repo '{repo}' ({hint}): "
            f"{type(exc).__name__}: {first[:200]}"
        ) from None


WRITERS = {"atif": write_atif, "sharegpt": write_sharegpt, "parquet": write_parquet}


def parse_formats(text: Any) -> list[str]:
    parts = (
        list(text)
        if isinstance(text, (list, tuple)) or hasattr(text, "__iter__") and not isinstance(text, str)
        else str(text).split(",")
    )
    names = [str(part).strip() for part in parts if str(part).strip()]
    if names == ["all"]:
        return list(FORMATS)
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ConfigError(
            f"format: unknown '{','.join(unknown) or text}' (choose from {', '.join(FORMATS)} or all)"
        )
    return names


def export_run(cfg: ExportConfig) -> list[ExportResult]:
    """Filter a run's trajectories and write each requested format; returns what was written."""
    formats = parse_formats(cfg.format)
    if cfg.hub_repo and "datasets" not in formats:
        raise ConfigError("hub_repo: pushing to the Hub needs format to include 'datasets'")
    if cfg.limit is not None and cfg.limit < 0:
        raise ConfigError(f"limit: must be >= 0, got {cfg.limit}")
    files = run_files(cfg.run, cfg.source)
    out = (
        Path(cfg.out)
        if cfg.out
        else (Path(cfg.run) if Path(cfg.run).is_dir() else Path(cfg.run).parent) / "export"
    )
    keep = ExportFilter(
        cfg.min_reward,
        tuple(cfg.statuses),
        tuple(cfg.strategies),
        tuple(cfg.abilities),
        tuple(cfg.envs),
        tuple(cfg.families),
    )

    def selected() -> Iterator[dict[str, Any]]:
        count = 0
        for record in iter_trajectories(files):
            if cfg.limit is not None and count >= cfg.limit:
                return
            if keep.keep(record):
                count += 1
                yield record

    results = []
    for name in formats:
        if name == "datasets":
            results.append(
                write_datasets(selected(), out, hub_repo=cfg.hub_repo, hub_private=cfg.hub_private)
            )
        else:
            results.append(WRITERS[name](selected(), out))
    return results


def export(cfg: ExportConfig) -> int:
    """The ``agentkit export`` command: write the formats and print one line per format."""
    if not cfg.run:
        raise ConfigError("run: required (a synth/eval output directory or a trajectories JSONL file)")
    for result in export_run(cfg):
        skipped = f" ({result.skipped} skipped: no assistant turn)" if result.skipped else ""
        print(f"{result.format}: {result.rows} trajectories -> {result.path}{skipped}")
    return 0


__all__ = [
    "ExportConfig",
    "ExportFilter",
    "ExportResult",
    "FORMATS",
    "abilities",
    "export",
    "export_run",
    "family",
    "iter_trajectories",
    "push_to_hub",
    "run_files",
    "to_row",
    "to_sharegpt",
]
