"""Shared fixtures: one small generated encyclopedia, its index in a temporary cache, and the env."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from research_support import DOCS

from agentkit.envs.research import ResearchEnv
from agentkit.envs.research.encyclopedia import Encyclopedia
from agentkit.envs.research.sources import ensure_generated


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("research-cache")


@pytest.fixture(scope="session")
def built(cache_dir: Path) -> tuple[Encyclopedia, Path]:
    return ensure_generated(DOCS, 0, cache_dir, progress=False)


@pytest.fixture(scope="session")
def encyclopedia(built) -> Encyclopedia:
    return built[0]


@pytest.fixture(scope="session")
def index_path(built) -> Path:
    return built[1]


@pytest.fixture()
def env(cache_dir: Path, built) -> Iterator[ResearchEnv]:
    env = ResearchEnv(cache_dir=str(cache_dir), progress=False)
    yield env
    asyncio.run(env.aclose())
