"""Fixtures for the code env tests: one env (and event loop) per module, validated bugs cached in a
temporary directory so the generation path really runs the projects' tests in the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agentkit.config import SandboxConfig
from agentkit.envs.code import CodeEnv


@dataclass
class World:
    env: CodeEnv
    runner: asyncio.Runner

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)


@pytest.fixture(scope="module", autouse=True)
def code_cache(tmp_path_factory) -> Iterator[None]:
    """A private AGENTKIT_CACHE while this directory's modules run (restored after each module)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AGENTKIT_CACHE", str(tmp_path_factory.mktemp("agentkit-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    runner = asyncio.Runner()
    env = CodeEnv(sandbox=SandboxConfig(backend="bwrap", pool_size=2), test_timeout=10)
    try:
        yield World(env, runner)
    finally:
        runner.run(env.aclose())
        runner.close()
