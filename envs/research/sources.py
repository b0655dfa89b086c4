"""Where a research task's corpus and index come from, and the on-disk cache that keeps them.

A task names its index in ``task.meta["index"]``: ``generated:<key>`` for the fictional encyclopedia
(rebuilt deterministically into the cache when missing, checked by fingerprint when present), or the
path of an index directory or of a corpus file (indexed once into the cache).
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from agentkit.envs.research.encyclopedia import GENERATOR_VERSION, Encyclopedia, generate_encyclopedia
from agentkit.envs.research.index import IndexSettings, build_index, is_index, read_manifest
from agentkit.errors import ConfigError, DataError
from agentkit.paths import cache_dir

GENERATED = "generated:"
_KEY = re.compile(r"^encyclopedia-v(?P<version>[^-]+)-d(?P<docs>\d+)-s(?P<seed>-?\d+)$")


def default_cache_dir() -> Path:
    return cache_dir("research")


@lru_cache(maxsize=2)
def encyclopedia(docs: int, seed: int) -> Encyclopedia:
    return generate_encyclopedia(docs, seed)


def ensure_generated(
    docs: int, seed: int, cache_dir: Path, *, progress: bool = True
) -> tuple[Encyclopedia, Path]:
    """The encyclopedia of ``docs`` documents for ``seed`` and the path of its index, built if needed."""
    enc = encyclopedia(docs, seed)
    path = cache_dir / enc.key
    fingerprint = enc.fingerprint()
    if is_index(path):
        try:
            if read_manifest(path).get("fingerprint") == fingerprint:
                return enc, path
        except DataError:
            pass
    build_index(
        enc.documents,
        path,
        source=GENERATED + enc.key,
        fingerprint=fingerprint,
        total=len(enc.documents),
        progress=progress,
    )
    return enc, path


def corpus_index(
    corpus: str | os.PathLike,
    cache_dir: Path,
    *,
    settings: IndexSettings | None = None,
    progress: bool = True,
) -> Path:
    """An index of a corpus file, built once into the cache (keyed by the file's path, size and mtime)."""
    from agentkit.envs.research.corpus import read_corpus

    corpus = Path(corpus).resolve()
    if not corpus.exists():
        raise DataError("no such corpus file", str(corpus))
    stat = corpus.stat()
    key = hashlib.sha256(f"{corpus}\x00{stat.st_size}\x00{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    path = cache_dir / f"corpus-{re.sub(r'[^A-Za-z0-9_.-]+', '_', corpus.name)}-{key}"
    if not is_index(path):
        build_index(
            read_corpus(corpus),
            path,
            settings=settings,
            source=str(corpus),
            fingerprint=key,
            progress=progress,
        )
    return path


def parse_generated(ref: str) -> tuple[int, int]:
    """(documents, seed) of a ``generated:encyclopedia-v1-d2000-s0`` reference."""
    match = _KEY.match(ref.removeprefix(GENERATED))
    if not match:
        raise ConfigError(
            f"'{ref}' is not a generated corpus reference like "
            f"generated:encyclopedia-v{GENERATOR_VERSION}-d2000-s0"
        )
    if match["version"] != GENERATOR_VERSION:
        raise ConfigError(
            f"'{ref}' was made by encyclopedia generator v{match['version']}; this is "
            f"v{GENERATOR_VERSION}: regenerate the tasks"
        )
    return int(match["docs"]), int(match["seed"])


def resolve_index(ref: str, cache_dir: Path, *, progress: bool = True) -> Path:
    """The index directory that ``ref`` names (a generated key, an index directory or a corpus file)."""
    if ref.startswith(GENERATED):
        docs, seed = parse_generated(ref)
        return ensure_generated(docs, seed, cache_dir, progress=progress)[1]
    path = Path(ref).expanduser()
    if is_index(path):
        return path.resolve()
    if path.is_file():
        return corpus_index(path, cache_dir, progress=progress)
    raise ConfigError(f"index '{ref}' is neither a research index directory nor a corpus file")
