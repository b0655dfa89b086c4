"""Shared fixtures: the tiny MLA checkpoint is built once per session from the shipped tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "assets"

# Generated caches (tiny checkpoints, research indexes) stay inside the checkout, not in $HOME.
os.environ.setdefault("AGENTKIT_CACHE", str(ROOT / ".cache" / "agentkit"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init tiny YoutuForCausalLM checkpoint with the shipped tokenizer and chat template."""
    from agentkit.models import materialize

    return materialize({"preset": "tiny-mla"}, tmp_path_factory.mktemp("tiny-mla"))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from agentkit.models import load_tokenizer

    return load_tokenizer()
