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


def pytest_collection_modifyitems(config, items):
    """``heavy`` tests (tens of minutes on 2 cores) run only with ``AGENTKIT_HEAVY_TESTS=1`` (``make test-heavy``),
    or when selected by name with ``-m heavy``: the CI budget of ``make test`` cannot hold them."""
    if os.environ.get("AGENTKIT_HEAVY_TESTS") == "1" or "heavy" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(
        reason="heavy (tens of minutes on 2 cores): AGENTKIT_HEAVY_TESTS=1 or make test-heavy"
    )
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)
