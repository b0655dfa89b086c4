"""Build the tiny assets everything runs on without a hub: the shipped tokenizer and tiny MLA models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "assets"
TINY_TOKENIZER = ASSETS / "tiny-tokenizer"


def build_tiny_tokenizer(out: str | Path = TINY_TOKENIZER, vocab_size: int = 4096, seed: int = 0) -> Path:
    from train.corpus import stem_corpus
    from train.tokenizer import save_tokenizer, train_tokenizer

    return save_tokenizer(train_tokenizer(stem_corpus(20000, seed), vocab_size=vocab_size), out)


def load_tokenizer(path: str | Path = TINY_TOKENIZER):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def materialize(arch: dict[str, Any], out: str | Path, tokenizer: str | Path = TINY_TOKENIZER,
                seed: int = 0) -> Path:
    """Write a randomly initialised MLA checkpoint for ``arch`` to ``out`` (reused if already there)."""
    from train.models import build_model, save_model

    out = Path(out)
    key = hashlib.sha256(json.dumps([arch, str(tokenizer), seed], sort_keys=True, default=str).encode()).hexdigest()
    stamp = out / "agentkit-init.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return out
    tok = load_tokenizer(tokenizer)
    save_model(build_model(arch, tok, seed=seed), tok, out)
    stamp.write_text(json.dumps({"key": key, "arch": arch, "seed": seed}, default=str))
    return out
