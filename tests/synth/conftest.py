"""Fixtures of the synthesis tests: the toy env, registered for the CLI, and the conf directory."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# tests/ is on sys.path (for `core.toy_env`), and its synth/ folder would shadow the synth package as
# a namespace package: make sure the checkout root comes first and forget a shadow already imported.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("synth"), "__file__", "") is None:
    del sys.modules["synth"]

import pytest  # noqa: E402
import toy_synth_env  # noqa: E402


@pytest.fixture(autouse=True)
def _toy_env(monkeypatch):
    monkeypatch.setenv("AGENTKIT_CONF", str(ROOT / "conf"))
    toy_synth_env.register(monkeypatch)
