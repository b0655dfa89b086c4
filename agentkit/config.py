"""Structured configs shared by the commands. Types only: no I/O, nothing built at import time.

Hydra composes YAML under ``conf/`` onto these dataclasses, so an unknown or misspelled key fails
when the config is composed, before any server or model starts. Library code receives these typed
objects (``to_object``), never a raw DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentkit.client import Sampling
from agentkit.loop import EpisodeLimits
from agentkit.sandbox import SandboxLimits


@dataclass
class ModelConfig:
    """A model: where its weights are (``path``), how to build it (``arch``), or where it is served."""

    name: str = "tiny-mla"
    path: str | None = None
    """HF checkpoint directory. None with ``arch`` set: a fresh model of that architecture."""
    arch: dict[str, Any] = field(default_factory=dict)
    """Architecture: ``{preset: tiny-mla}`` plus any YoutuConfig overrides."""
    tokenizer: str | None = None
    base_url: str | None = None
    """OpenAI-compatible endpoint(s), comma-separated. None: start the embedded server."""
    api_key: str | None = None
    timeout: float = 300.0
    max_concurrency: int = 64
    max_retries: int = 5


@dataclass
class SamplingConfig(Sampling):
    pass


@dataclass
class SandboxLimitsConfig(SandboxLimits):
    pass


@dataclass
class SandboxConfig:
    backend: str = "bwrap"
    limits: SandboxLimitsConfig = field(default_factory=SandboxLimitsConfig)
    pool_size: int = 4
    options: dict[str, Any] = field(default_factory=dict)
    """Backend-specific options (docker: image, socket...)."""


@dataclass
class EpisodeLimitsConfig(EpisodeLimits):
    pass


def to_object(cfg: Any) -> Any:
    """A composed DictConfig as its typed dataclass, with interpolations resolved."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg)
