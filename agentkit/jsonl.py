"""JSON-lines reading and writing that validates each line and never hides where a problem is.

A bad line is reported as ``path:line: what is wrong``. A last line without its newline is a torn
write (the writer died mid-line): it is reported as such and can be skipped on resume, since every
complete line is flushed with its newline in one write.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentkit.errors import DataError
from agentkit.paths import atomic_path

M = TypeVar("M", bound=BaseModel)


def _open_text(path: Path, mode: str, compressed: bool | None = None) -> IO[str]:
    if compressed if compressed is not None else path.suffix == ".zst":
        import zstandard

        raw = open(path, mode.replace("t", "") + "b")
        if "r" in mode:
            return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
        return io.TextIOWrapper(zstandard.ZstdCompressor().stream_writer(raw), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        loc = ".".join(str(x) for x in item["loc"]) or "<root>"
        parts.append(f"{loc}: {item['msg']}")
    more = len(error.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def iter_json(path: str | os.PathLike, *, skip_torn_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for each non-blank line; raise ``DataError`` naming the line."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", str(path))
    with _open_text(path, "rt") as handle:
        lines = handle.read().split("\n")
    torn_tail = lines[-1] != ""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        is_tail = number == len(lines) and torn_tail
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if is_tail:
                if skip_torn_tail:
                    return
                raise DataError(
                    "torn last line (the writer stopped mid-line); rerun to resume", str(path), number
                ) from None
            raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", str(path), number) from None
        yield number, obj


def read_jsonl(path: str | os.PathLike, model: type[M], *, skip_torn_tail: bool = False) -> list[M]:
    """Read and validate every line of ``path`` as ``model``."""
    return list(iter_records(path, model, skip_torn_tail=skip_torn_tail))


def iter_records(path: str | os.PathLike, model: type[M], *, skip_torn_tail: bool = False) -> Iterator[M]:
    for number, obj in iter_json(path, skip_torn_tail=skip_torn_tail):
        try:
            yield model.model_validate(obj)
        except ValidationError as exc:
            raise DataError(f"not a valid {model.__name__}: {_describe(exc)}", str(path), number) from None


def dumps(record: BaseModel | dict) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json(exclude_none=True)
    return json.dumps(record, ensure_ascii=False)


class JsonlWriter:
    """Append-only writer: each record goes out as one complete line, flushed (and optionally fsynced)."""

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._handle = open(self.path, "ab")
        self.count = 0

    def write(self, record: BaseModel | dict) -> None:
        self._handle.write((dumps(record) + "\n").encode("utf-8"))
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())
        self.count += 1

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | os.PathLike, records: Iterable[BaseModel | dict]) -> int:
    """Write ``records`` to ``path`` atomically (temporary file, then rename). Returns the count."""
    path = Path(path)
    count = 0
    with atomic_path(path) as tmp, _open_text(tmp, "wt", compressed=path.suffix == ".zst") as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
            count += 1
    return count


def repair_torn_tail(path: str | os.PathLike) -> int:
    """Cut a torn last line off ``path`` (after a crash). Returns the bytes removed."""
    path = Path(path)
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as handle:
        handle.truncate(keep)
    return len(data) - keep
