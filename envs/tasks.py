"""Task sources shared by every env: JSONL, Parquet and local Hugging Face ``datasets`` directories.

Rows are mapped to tasks through configurable field names, checked when they are loaded (a bad row is
a ``DataError`` naming ``path:line``, never a failure mid-run), split deterministically into train and
test by a stable hash of the task id, and sampled by ``n`` and ``seed``.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.errors import ConfigError, DataError
from agentkit.records import Task

if TYPE_CHECKING:
    from agentkit.config import TaskSourceConfig

FILE_SOURCES = ("jsonl", "parquet", "hf")
SPLITS = ("train", "test")

RowCheck = Callable[[Task], None]
"""Env-specific validation of one loaded task; raises ``ValueError`` with a message for the user."""


def split_of(task_id: str, test_fraction: float) -> str:
    """``train`` or ``test`` for ``task_id``, by a hash that is stable across runs and machines."""
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if position < test_fraction else "train"


def check_task_options(
    options: Iterable[str], known: Iterable[str], whose: str, *, where: str = "env.tasks.options"
) -> None:
    """A ``ConfigError`` for the first option (in sorted order) that is not in ``known``, in one line:
    ``<where>.<key>``, the nearest known key and all of them. ``whose`` names what takes the options
    (``"math generator"``, ``"bfcl"``); every env checks its task options through here."""
    valid = sorted(known)
    for key in sorted(map(str, options)):
        if key not in valid:
            nearest = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
            listing = ", ".join(valid) or "none"
            raise ConfigError(f"{where}.{key}: unknown {whose} option{hint} (known: {listing})")


def check_split(cfg: TaskSourceConfig) -> None:
    if cfg.split is not None and cfg.split not in SPLITS:
        raise ConfigError(f"tasks.split must be one of {', '.join(SPLITS)} or null, not '{cfg.split}'")
    if not 0.0 <= cfg.test_fraction <= 1.0:
        raise ConfigError(f"tasks.test_fraction must be within [0, 1], not {cfg.test_fraction}")
    if cfg.n is not None and cfg.n < 0:
        raise ConfigError(f"tasks.n must be >= 0, not {cfg.n}")


def in_split(task_id: str, cfg: TaskSourceConfig) -> bool:
    return cfg.split is None or split_of(task_id, cfg.test_fraction) == cfg.split


def select(tasks: Sequence[Task], cfg: TaskSourceConfig) -> list[Task]:
    """Keep ``cfg.split`` and draw ``cfg.n`` tasks with ``cfg.seed``; the source order is kept."""
    check_split(cfg)
    kept = [t for t in tasks if in_split(t.id, cfg)]
    if cfg.n is None or cfg.n >= len(kept):
        return kept
    chosen = sorted(random.Random(cfg.seed).sample(range(len(kept)), cfg.n))
    return [kept[i] for i in chosen]


def generate(
    make: Callable[[int], Task], cfg: TaskSourceConfig, *, default_n: int = 100, max_attempts_factor: int = 50
) -> list[Task]:
    """Tasks ``make(0), make(1), ...`` of a procedural generator, keeping ``cfg.split``, until ``cfg.n``.

    ``make(index)`` must depend only on the index (and the options it closes over), so task ``i`` is the
    same whatever ``n`` is.
    """
    check_split(cfg)
    n = default_n if cfg.n is None else cfg.n
    tasks: list[Task] = []
    index = 0
    with _progress(n, "generating tasks") as advance:
        while len(tasks) < n:
            if index >= max(n, 1) * max_attempts_factor:
                raise ConfigError(
                    f"tasks: could not generate {n} tasks in split '{cfg.split}' "
                    f"(test_fraction={cfg.test_fraction})"
                )
            task = make(index)
            index += 1
            if in_split(task.id, cfg):
                tasks.append(task)
                advance()
    return tasks


@contextlib.contextmanager
def _progress(total: int, label: str, threshold: int = 500) -> Iterator[Callable[[], None]]:
    """A rich progress bar for long generation runs (a no-op for small ones)."""
    if total < threshold:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        bar = progress.add_task(label, total=total)
        yield lambda: progress.advance(bar)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    from agentkit.jsonl import iter_json

    yield from iter_json(path)


def iter_parquet(
    path: Path, required: Sequence[str] = (), optional: Sequence[str] = ()
) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` over a Parquet file or a directory of ``*.parquet`` files, numbered across
    them, a batch at a time. With ``required``, a file that lacks one of those columns is a ``DataError``
    and only they and the ``optional`` columns the file has are read; without, every column is."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
        raise ConfigError("reading Parquet needs pyarrow (pip install pyarrow)") from exc
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError("no .parquet files in this directory", str(path))
    number = 0
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"not a readable Parquet file: {exc}", str(file)) from None
        names = parquet.schema_arrow.names
        missing = [key for key in required if key not in names]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}", str(file))
        columns = [c for c in (*required, *optional) if c in names] if required else None
        for batch in parquet.iter_batches(batch_size=4096, columns=columns):
            for row in batch.to_pylist():
                number += 1
                yield number, row


def _iter_hf(path: Path, hf_split: str | None) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise DataError(f"not a saved Hugging Face dataset ({exc})", str(path)) from None
    if isinstance(data, datasets.DatasetDict):
        names = sorted(map(str, data))
        if hf_split is None and len(names) == 1:
            hf_split = names[0]
        if hf_split not in data:
            raise ConfigError(
                f"tasks.options.hf_split: the dataset at {path} has splits {', '.join(names)}; "
                f"choose one (got {hf_split!r})"
            )
        data = data[hf_split]
    yield from enumerate(data, start=1)


def iter_rows(
    source: str, path: str | Path, options: dict[str, Any] | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line or row number, row)`` pairs of a file source."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory", str(path))
    if source == "jsonl":
        return _iter_jsonl(path)
    if source == "parquet":
        return iter_parquet(path)
    if source == "hf":
        return _iter_hf(path, (options or {}).get("hf_split"))
    raise ConfigError(f"tasks.source '{source}' is not a file source ({', '.join(FILE_SOURCES)})")


def _json_safe(value: Any, where: str) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError(f"field '{where}' is not JSON-serializable ({type(value).__name__})") from None
    return value


def row_to_task(
    row: Any, *, env_name: str, fields: dict[str, str], required: Sequence[str], default_id: str
) -> Task:
    """Map one row to a task: ``id`` and ``prompt`` by their mapped names, every other key into ``meta``.

    ``required`` names canonical fields (``prompt``, ``answer``...) that must be present and non-empty.
    """
    if not isinstance(row, dict):
        raise ValueError(f"a row must be an object, not {type(row).__name__}")
    mapped = {
        canonical: fields.get(canonical, canonical) for canonical in {"id", "prompt", *required, *fields}
    }
    for canonical in required:
        key = mapped[canonical]
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            shown = key if key == canonical else f"{key}' (mapped from '{canonical}"
            raise ValueError(f"missing or empty field '{shown}'")
    task_id = row.get(mapped["id"], default_id)
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id:
        raise ValueError(f"field '{mapped['id']}' must be a non-empty string or integer")
    prompt = row.get(mapped["prompt"], "")
    if not isinstance(prompt, str):
        raise ValueError(f"field '{mapped['prompt']}' must be a string, not {type(prompt).__name__}")
    meta: dict[str, Any] = {}
    used = {mapped["id"], mapped["prompt"]}
    for canonical, key in mapped.items():
        if canonical in ("id", "prompt") or key not in row:
            continue
        meta[canonical] = _json_safe(row[key], key)
        used.add(key)
    for key, value in row.items():
        if key not in used:
            meta.setdefault(key, _json_safe(value, key))
    return Task(id=task_id, env=env_name, prompt=prompt, meta=meta)


def read_tasks(
    rows: Iterable[tuple[int, Any]],
    *,
    path: str,
    env_name: str,
    fields: dict[str, str],
    required: Sequence[str] = ("prompt",),
    check: RowCheck | None = None,
) -> list[Task]:
    """Tasks from numbered rows; any bad row raises ``DataError`` with ``path:line``."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    stem = Path(path).name.split(".")[0]
    for number, row in rows:
        try:
            task = row_to_task(
                row, env_name=env_name, fields=fields, required=required, default_id=f"{stem}-{number}"
            )
            if check is not None:
                check(task)
        except ValueError as exc:
            raise DataError(str(exc), path, number) from None
        if task.id in seen:
            raise DataError(f"duplicate task id '{task.id}' (first on line {seen[task.id]})", path, number)
        seen[task.id] = number
        tasks.append(task)
    if not tasks:
        raise DataError("no tasks in this source", path)
    return tasks


def load_task_rows(
    cfg: TaskSourceConfig, env_name: str, required: Sequence[str] = ("prompt",), check: RowCheck | None = None
) -> list[Task]:
    """Load, check, split and sample the tasks of a file source (``jsonl``, ``parquet``, ``hf``)."""
    if cfg.source not in FILE_SOURCES:
        raise ConfigError(f"tasks.source '{cfg.source}' is not a file source ({', '.join(FILE_SOURCES)})")
    if not cfg.path:
        raise ConfigError(f"tasks.path is required for tasks.source={cfg.source}")
    check_split(cfg)
    rows = iter_rows(cfg.source, cfg.path, cfg.options)
    tasks = read_tasks(
        rows, path=str(cfg.path), env_name=env_name, fields=dict(cfg.fields), required=required, check=check
    )
    return select(tasks, cfg)
