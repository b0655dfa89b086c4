"""Fixtures of the synthesis tests: the toy env, registered for the CLI, and the conf directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import toy_synth_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _toy_env(monkeypatch):
    monkeypatch.setenv("AGENTKIT_CONF", str(ROOT / "conf"))
    toy_synth_env.register(monkeypatch)
