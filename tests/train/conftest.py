"""Fixtures of the training tests: toy trajectory datasets laid out like a synth run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.jsonl import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _conf_dir(monkeypatch):
    monkeypatch.setenv("AGENTKIT_CONF", str(ROOT / "conf"))


@pytest.fixture(scope="session")
def toy_synth(tmp_path_factory) -> Path:
    """A synth-style output directory: curated shards (one zstd) listed by a manifest, plus raw rollouts."""
    from agentkit.train.corpus import toy_trajectories

    root = tmp_path_factory.mktemp("synth")
    records = list(toy_trajectories(240, seed=0, failed_every=8))
    write_jsonl(root / "data" / "train-00000.jsonl", records[:120])
    write_jsonl(root / "data" / "train-00001.jsonl.zst", records[120:])
    write_jsonl(root / "raw" / "rollouts.jsonl", records)  # raw rollouts of a synth run: never trained on
    files = [
        {"path": "data/train-00000.jsonl", "rows": 120},
        {"path": "data/train-00001.jsonl.zst", "rows": 120},
    ]
    (root / "manifest.json").write_text(json.dumps({"kind": "synth", "files": files}))
    return root
