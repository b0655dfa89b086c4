"""A persistent BM25 index over a document corpus, built with ``bm25s``.

Documents are cut into overlapping word windows (chunks) and each chunk is indexed with its
document's title in front, so a long document is found by the passage that matches and a title
match counts everywhere in it. A search ranks chunks, keeps the best chunk per document, and returns
documents with a snippet and the character offset where the snippet starts.

On disk (one directory)::

    manifest.json      format, engine and version, chunking, BM25 parameters, counts, source fingerprint
    bm25/              the bm25s sparse score matrix and vocabulary
    chunks.npz         chunk -> (document row, start char, end char)
    catalog.json       document ids and titles, in row order
    docs.jsonl         the documents, one JSON object a line
    docs.offsets.npy   byte offset of each line of docs.jsonl (random access by row)

A directory is written under a temporary name and renamed into place, so a reader never sees half
an index and concurrent builders of the same cache entry do not corrupt each other.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.envs.research.corpus import Document
from agentkit.errors import ConfigError, DataError

INDEX_FORMAT = 1
TOKENIZER = "lower-word-nostop/1"
MANIFEST = "manifest.json"

_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d,])|\w+")
_SPACE = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


STOPWORDS = _stopwords()


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without English stopwords; ``1,240`` is one token ``1240``."""
    return [t.replace(",", "") if "," in t else t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def chunk_spans(text: str, words: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of ``words`` words, each overlapping the previous by ``overlap``."""
    if len(text.split(None, words)) <= words:
        return [(0, len(text))]
    bounds = [m.span() for m in _SPACE.finditer(text)]
    step = max(1, words - overlap)
    spans = []
    for first in range(0, len(bounds), step):
        last = min(first + words, len(bounds)) - 1
        spans.append((bounds[first][0], bounds[last][1]))
        if last == len(bounds) - 1:
            break
    return spans


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    score: float
    offset: int
    """Character offset of the snippet in the document (what ``open`` takes to show that passage)."""
    snippet: str


@dataclass(frozen=True)
class IndexSettings:
    chunk_words: int = 100
    chunk_overlap: int = 20
    k1: float = 1.5
    b: float = 0.75

    def check(self) -> None:
        if self.chunk_words < 8:
            raise ConfigError(f"chunk_words must be >= 8, not {self.chunk_words}")
        if not 0 <= self.chunk_overlap < self.chunk_words:
            raise ConfigError(f"chunk_overlap must be in [0, chunk_words), not {self.chunk_overlap}")
        if self.k1 <= 0 or not 0 <= self.b <= 1:
            raise ConfigError(f"BM25 needs k1 > 0 and 0 <= b <= 1 (got k1={self.k1}, b={self.b})")


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        yield progress


def is_index(path: str | os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def build_index(
    documents: Iterable[Document],
    out: str | os.PathLike,
    *,
    settings: IndexSettings | None = None,
    source: str | None = None,
    fingerprint: str | None = None,
    total: int | None = None,
    progress: bool = False,
) -> Path:
    """Index ``documents`` into the directory ``out`` (replacing an index already there); returns ``out``."""
    import bm25s
    import numpy as np

    settings = settings or IndexSettings()
    settings.check()
    out = Path(out)
    if out.exists() and not is_index(out) and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not a research index; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        vocab: dict[str, int] = {}
        lookup = vocab.get
        corpus_ids: list[list[int]] = []
        chunk_doc: list[int] = []
        chunk_start: list[int] = []
        chunk_end: list[int] = []
        ids: list[str] = []
        titles: list[str] = []
        offsets = [0]
        with _progress(progress) as bar, open(tmp / "docs.jsonl", "wb") as store:
            task = bar.add_task("tokenizing", total=total) if bar else None
            for row, doc in enumerate(documents):
                line = (json.dumps(doc.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
                store.write(line)
                offsets.append(offsets[-1] + len(line))
                ids.append(doc.id)
                titles.append(doc.title)
                title_tokens = tokenize(doc.title)
                for start, end in chunk_spans(doc.text, settings.chunk_words, settings.chunk_overlap):
                    tokens = title_tokens + tokenize(doc.text[start:end])
                    token_ids = [lookup(t, -1) for t in tokens]
                    if -1 in token_ids:  # new words: the slower path that grows the vocabulary
                        token_ids = [vocab.setdefault(t, len(vocab)) for t in tokens]
                    corpus_ids.append(token_ids)
                    chunk_doc.append(row)
                    chunk_start.append(start)
                    chunk_end.append(end)
                if bar and row % 1000 == 999:
                    bar.update(task, completed=row + 1)
            if not ids:
                raise DataError("the corpus has no documents", source)
            if bar:
                bar.update(task, completed=len(ids), total=len(ids))
                bar.add_task("scoring (bm25s)", total=None)
            if not vocab:
                vocab[""] = 0
            logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG
            retriever = bm25s.BM25(k1=settings.k1, b=settings.b)
            retriever.index((corpus_ids, vocab), show_progress=False)
            retriever.save(str(tmp / "bm25"), show_progress=False)
        np.savez(
            tmp / "chunks.npz",
            doc=np.asarray(chunk_doc, dtype=np.int32),
            start=np.asarray(chunk_start, dtype=np.int64),
            end=np.asarray(chunk_end, dtype=np.int64),
        )
        np.save(tmp / "docs.offsets.npy", np.asarray(offsets, dtype=np.int64))
        (tmp / "catalog.json").write_text(
            json.dumps({"ids": ids, "titles": titles}, ensure_ascii=False), encoding="utf-8"
        )
        manifest = {
            "format": INDEX_FORMAT,
            "engine": "bm25s",
            "engine_version": bm25s.__version__,
            "tokenizer": TOKENIZER,
            "chunk_words": settings.chunk_words,
            "chunk_overlap": settings.chunk_overlap,
            "k1": settings.k1,
            "b": settings.b,
            "documents": len(ids),
            "chunks": len(chunk_doc),
            "vocabulary": len(vocab),
            "source": source,
            "fingerprint": fingerprint,
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace(tmp: Path, out: Path) -> None:
    if not out.exists():
        try:
            os.rename(tmp, out)
            return
        except OSError:
            if not is_index(out):
                raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise DataError("not a research index (no manifest.json); build one with `agentkit index`", str(path))
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"unreadable manifest ({exc.msg})", str(file)) from None
    if manifest.get("format") != INDEX_FORMAT or manifest.get("tokenizer") != TOKENIZER:
        raise DataError(
            f"index format {manifest.get('format')}/{manifest.get('tokenizer')} is not "
            f"{INDEX_FORMAT}/{TOKENIZER}; rebuild it with `agentkit index`",
            str(file),
        )
    return manifest


class SearchIndex:
    """A loaded index: BM25 search over chunks, and random access to documents by id or title."""

    def __init__(self, path: str | os.PathLike, *, mmap: bool = False):
        import bm25s
        import numpy as np

        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        try:
            self._bm25 = bm25s.BM25.load(str(self.path / "bm25"), mmap=mmap, show_progress=False)
            chunks = np.load(self.path / "chunks.npz")
            self._chunk_doc, self._chunk_start, self._chunk_end = (
                chunks["doc"],
                chunks["start"],
                chunks["end"],
            )
            self._offsets = np.load(self.path / "docs.offsets.npy")
            catalog = json.loads((self.path / "catalog.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"damaged index ({exc}); rebuild it with `agentkit index`", str(self.path)
            ) from None
        self.ids: list[str] = catalog["ids"]
        self.titles: list[str] = catalog["titles"]
        self._rows = {doc_id: row for row, doc_id in enumerate(self.ids)}
        self._title_rows: dict[str, int] = {}
        for row, title in enumerate(self.titles):
            self._title_rows.setdefault(title.lower(), row)
        self._vocab: dict[str, int] = self._bm25.vocab_dict
        self._fd = os.open(self.path / "docs.jsonl", os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.ids)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # a dropped index must not leak its file descriptor
        try:
            self.close()
        except Exception:
            pass

    # -- documents ------------------------------------------------------------------------------

    def row_of(self, key: str) -> int | None:
        """The row of a document id, else of an exact (case-insensitive) title; None if neither."""
        row = self._rows.get(key)
        if row is None:
            row = self._title_rows.get(key.strip().lower())
        return row

    def document_at(self, row: int) -> Document:
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        data = os.pread(self._fd, end - start, start)
        obj = json.loads(data)
        return Document(id=obj["id"], title=obj["title"], text=obj["text"], url=obj.get("url"))

    def get(self, key: str) -> Document | None:
        row = self.row_of(key)
        return None if row is None else self.document_at(row)

    # -- search ---------------------------------------------------------------------------------

    def query_ids(self, query: str) -> list[int]:
        seen: list[int] = []
        for token in tokenize(query):
            token_id = self._vocab.get(token)
            if token_id is not None and token_id not in seen:
                seen.append(token_id)
        return seen

    def search(self, query: str, k: int = 5, snippet_chars: int = 240) -> list[Hit]:
        """The ``k`` best documents for ``query`` (best chunk per document), ties broken by position."""
        import numpy as np

        token_ids = self.query_ids(query)
        if not token_ids or k <= 0:
            return []
        scores = self._bm25.get_scores_from_ids(token_ids)
        n = len(scores)
        width = min(n, max(8 * k, 64))
        while True:
            if width < n:
                candidates = np.argpartition(-scores, width - 1)[:width]
            else:
                candidates = np.arange(n)
            candidates = candidates[scores[candidates] > 0]
            order = sorted(candidates.tolist(), key=lambda c: (-float(scores[c]), c))
            best: dict[int, int] = {}
            for chunk in order:
                best.setdefault(int(self._chunk_doc[chunk]), chunk)
                if len(best) == k:
                    break
            if len(best) == k or width >= n:
                break
            width = min(n, width * 4)
        terms = set(tokenize(query))
        hits = []
        for row, chunk in best.items():
            doc = self.document_at(row)
            offset, snippet = make_snippet(
                doc.text,
                int(self._chunk_start[chunk]),
                int(self._chunk_end[chunk]),
                terms,
                snippet_chars,
                minor=set(tokenize(doc.title)),
            )
            hits.append(
                Hit(
                    doc_id=doc.id,
                    title=doc.title,
                    score=round(float(scores[chunk]), 4),
                    offset=offset,
                    snippet=snippet,
                )
            )
        return hits


def make_snippet(
    text: str, start: int, end: int, terms: set[str], limit: int, minor: Set[str] = frozenset()
) -> tuple[int, str]:
    """The sentence of ``text[start:end]`` with the most query terms (earliest on ties), cut to ``limit``.

    ``minor`` terms (the title's words, present everywhere in a document) only break ties.
    """
    passage = text[start:end]
    best_offset, best_len, best_hits = 0, len(passage), (-1, -1)
    cursor = 0
    major = terms - minor
    for piece in _SENTENCE_END.split(passage):
        at = passage.find(piece, cursor)
        cursor = at + len(piece)
        found = terms.intersection(tokenize(piece))
        hits = (len(found & major), len(found))
        if hits > best_hits:
            best_offset, best_len, best_hits = at, len(piece), hits
    offset = start + best_offset
    snippet = " ".join(text[offset : offset + max(best_len, 1)].split())
    if len(snippet) < limit // 2:  # a short sentence: show what follows too
        snippet = " ".join(text[offset : offset + limit].split())
    if len(snippet) > limit:
        cut = snippet.rfind(" ", 0, limit - 1)
        snippet = snippet[: cut if cut > limit // 2 else limit - 1].rstrip() + "…"
    return offset, snippet
