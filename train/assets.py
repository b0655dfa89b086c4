"""Rebuild the shipped tiny tokenizer (``agentkit/assets/tiny-tokenizer``) from the generated corpus."""

from __future__ import annotations

from pathlib import Path

from agentkit.models import TINY_TOKENIZER


def build_tiny_tokenizer(out: str | Path = TINY_TOKENIZER, vocab_size: int = 4096, seed: int = 0) -> Path:
    from agentkit.train.corpus import stem_corpus
    from agentkit.train.tokenizer import save_tokenizer, train_tokenizer

    return save_tokenizer(train_tokenizer(stem_corpus(20000, seed), vocab_size=vocab_size), out)
