"""Corpus files: JSONL and Parquet documents, and bad rows reported as path:line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentkit.envs.research.corpus import Document, read_corpus, write_corpus
from agentkit.errors import DataError

DOCS = [
    Document("a", "Alpha", "The first document.", "https://example.org/a"),
    Document("b", "Beta", "The second one."),
]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_jsonl_and_parquet_round_trip(tmp_path: Path) -> None:
    for name in ("docs.jsonl", "docs.parquet"):
        assert write_corpus(tmp_path / name, DOCS) == 2
        assert list(read_corpus(tmp_path / name)) == DOCS


def test_integer_ids_become_strings_and_extra_fields_are_ignored(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "c.jsonl", [{"id": 7, "title": "Seven", "text": "x y", "lang": "en"}])
    assert list(read_corpus(path)) == [Document("7", "Seven", "x y")]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "b", "text": "no title"}, "missing field 'title'"),
        ({"id": "b", "title": "B", "text": 3}, "field 'text' must be a string"),
        ({"id": "", "title": "B", "text": "t"}, "field 'id' must be a non-empty"),
        ({"id": "b", "title": "B", "text": "   "}, "field 'text' is empty"),
        ({"id": "b", "title": "B", "text": "t", "url": 5}, "field 'url' must be a string"),
        ({"id": "a", "title": "Again", "text": "t"}, "duplicate document id 'a' (first on line 1)"),
        ("{not json", "invalid JSON"),
        (["a", "list"], "a document must be an object"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path: Path, row, message: str) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [{"id": "a", "title": "A", "text": "fine"}, row])
    with pytest.raises(DataError, match=re.escape(message)) as info:
        list(read_corpus(path))
    assert str(info.value).startswith(f"{path}:2: ")


def test_parquet_rows_are_numbered_and_columns_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table({"id": ["a", "b", "c"], "title": ["A", "B", "C"], "text": ["ok", "ok", ""]}), path
    )
    with pytest.raises(DataError, match=r"bad\.parquet:3: field 'text' is empty"):
        list(read_corpus(path))
    pq.write_table(pa.table({"id": ["a"], "text": ["ok"]}), path)
    with pytest.raises(DataError, match="missing column"):
        list(read_corpus(path))


def test_empty_missing_and_unknown_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no documents"):
        list(read_corpus(_jsonl(tmp_path / "empty.jsonl", [])))
    with pytest.raises(DataError, match="no such corpus file"):
        list(read_corpus(tmp_path / "absent.jsonl"))
    (tmp_path / "docs.csv").write_text("id,title,text\n")
    with pytest.raises(DataError, match="unknown corpus format"):
        list(read_corpus(tmp_path / "docs.csv"))
