"""``agentkit index corpus=... out=...``: build a persistent BM25 index over a document corpus.

``corpus`` is a JSONL (``.jsonl``/``.jsonl.zst``) or Parquet file of documents (``id``, ``title``,
``text``, optional ``url``), or ``encyclopedia`` to index a generated fictional encyclopedia of
``docs`` documents. The index directory also holds the documents (``docs.jsonl``), so it is all an
env needs: ``agentkit eval env=research env.options.index=OUT tasks.source=jsonl tasks.path=Q.jsonl``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from agentkit.errors import DataError


@dataclass
class IndexConfig:
    corpus: str = MISSING
    """A corpus file (JSONL or Parquet), or ``encyclopedia`` for a generated one."""
    out: str = MISSING
    """The index directory to write (an existing index there is replaced)."""
    docs: int = 10000
    """Documents of a generated encyclopedia (``corpus=encyclopedia`` only)."""
    seed: int = 0
    """Seed of a generated encyclopedia (``corpus=encyclopedia`` only)."""
    chunk_words: int = 100
    chunk_overlap: int = 20
    k1: float = 1.5
    b: float = 0.75
    progress: bool = True


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="index_schema", node=IndexConfig)


def build_index(cfg: IndexConfig) -> int:
    """Index ``cfg.corpus`` into ``cfg.out`` and print what was built."""
    from agentkit.envs.research.index import IndexSettings, read_manifest
    from agentkit.envs.research.index import build_index as build

    settings = IndexSettings(chunk_words=cfg.chunk_words, chunk_overlap=cfg.chunk_overlap, k1=cfg.k1, b=cfg.b)
    settings.check()
    started = time.perf_counter()
    if cfg.corpus == "encyclopedia":
        from agentkit.envs.research.encyclopedia import generate_encyclopedia

        enc = generate_encyclopedia(cfg.docs, cfg.seed)
        build(
            enc.documents,
            cfg.out,
            settings=settings,
            source=f"generated:{enc.key}",
            fingerprint=enc.fingerprint(),
            total=len(enc.documents),
            progress=cfg.progress,
        )
    else:
        from agentkit.envs.research.corpus import read_corpus

        if not Path(cfg.corpus).is_file():
            raise DataError("no such corpus file (from corpus=...)", cfg.corpus)
        build(read_corpus(cfg.corpus), cfg.out, settings=settings, source=cfg.corpus, progress=cfg.progress)
    manifest = read_manifest(cfg.out)
    print(
        f"indexed {manifest['documents']} documents ({manifest['chunks']} chunks, {manifest['vocabulary']} "
        f"terms) from {cfg.corpus} into {cfg.out} in {time.perf_counter() - started:.1f}s"
    )
    return 0
