"""Document corpora: JSONL (optionally ``.zst``) or Parquet rows with ``id``, ``title``, ``text``, ``url``.

Every row is checked as it is read; a bad row is a ``DataError`` naming ``path:line`` (for Parquet,
the 1-based row number), so a corpus never fails halfway through an index build.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import DataError
from agentkit.paths import atomic_open

REQUIRED = ("id", "title", "text")


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        row = {"id": self.id, "title": self.title, "text": self.text}
        if self.url is not None:
            row["url"] = self.url
        return row


def document_from_row(row: Any) -> Document:
    """One row as a ``Document``; raises ``ValueError`` with a message for the user."""
    if not isinstance(row, dict):
        raise ValueError(f"a document must be an object with {', '.join(REQUIRED)}, not {type(row).__name__}")
    for key in REQUIRED:
        if key not in row or row[key] is None:
            raise ValueError(f"missing field '{key}'")
    doc_id = row["id"]
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError("field 'id' must be a non-empty string or integer")
    if doc_id != doc_id.strip() or "\n" in doc_id:
        raise ValueError(f"field 'id' must not have surrounding whitespace or newlines: {doc_id!r}")
    for key in ("title", "text"):
        if not isinstance(row[key], str):
            raise ValueError(f"field '{key}' must be a string, not {type(row[key]).__name__}")
    if not row["text"].strip():
        raise ValueError("field 'text' is empty")
    url = row.get("url")
    if url is not None and not isinstance(url, str):
        raise ValueError(f"field 'url' must be a string or null, not {type(url).__name__}")
    return Document(id=doc_id, title=row["title"].strip(), text=row["text"], url=url or None)


def _numbered_rows(path: Path) -> Iterator[tuple[int, Any]]:
    name = path.name.lower()
    if name.endswith(".parquet") or path.is_dir():
        from agentkit.envs.tasks import iter_parquet

        yield from iter_parquet(path, required=REQUIRED, optional=("url",))
        return
    if name.endswith((".jsonl", ".jsonl.zst", ".json", ".ndjson")):
        from agentkit.jsonl import iter_json

        yield from iter_json(path)
        return
    raise DataError("unknown corpus format (expected .jsonl, .jsonl.zst or .parquet)", str(path))


def read_corpus(path: str | os.PathLike) -> Iterator[Document]:
    """Yield the documents of a JSONL or Parquet corpus, checking each row and that ids are unique."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such corpus file", str(path))
    seen: dict[str, int] = {}
    count = 0
    for number, row in _numbered_rows(path):
        try:
            doc = document_from_row(row)
        except ValueError as exc:
            raise DataError(str(exc), str(path), number) from None
        if doc.id in seen:
            raise DataError(
                f"duplicate document id '{doc.id}' (first on line {seen[doc.id]})", str(path), number
            )
        seen[doc.id] = number
        count += 1
        yield doc
    if count == 0:
        raise DataError("the corpus has no documents", str(path))


def write_corpus(path: str | os.PathLike, documents: Iterable[Document]) -> int:
    """Write documents as JSONL (or Parquet for a ``.parquet`` path); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [d.to_dict() | {"url": d.url} for d in documents]
        pq.write_table(pa.Table.from_pylist(rows), path)
        return len(rows)
    count = 0
    with atomic_open(path) as handle:
        for doc in documents:
            handle.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count
