"""Helpers shared by the research env tests (imported by name: a ``conftest`` import could resolve to
another directory's conftest)."""

from __future__ import annotations

from agentkit.config import TaskSourceConfig

DOCS = 1000


def generated(n: int, seed: int = 0, **options) -> TaskSourceConfig:
    return TaskSourceConfig(
        source="generated", n=n, seed=seed, options={"docs": DOCS, "progress": False, **options}
    )
