"""Structured configs shared by the commands. Types only: no I/O, nothing built at import time.

Hydra composes YAML under ``conf/`` onto these dataclasses, so an unknown or misspelled key fails
when the config is composed, before any server or model starts. Library code receives these typed
objects (``to_object``), never a raw DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentkit.client import Sampling
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
class EpisodeLimits:
    """How long one episode may run (``agentkit.loop`` enforces it); a type here so configs import no loop."""

    max_turns: int = 16
    """Model calls per episode."""
    max_completion_tokens: int = 16384
    """Completion tokens summed over the episode."""
    max_seconds: float = 600.0
    """Wall-clock time for the whole episode."""
    max_parse_errors: int = 3
    """Consecutive turns with unparseable tool calls before the episode ends with ``parse_error``."""
    max_calls_per_turn: int = 16
    observation_chars: int = 8000


@dataclass
class EpisodeLimitsConfig(EpisodeLimits):
    pass


@dataclass
class TaskSourceConfig:
    """Where an env's tasks come from. Bad rows fail at load time with ``path:line``."""

    source: str = "generated"
    """``generated`` (the env's procedural generator), ``jsonl``, ``parquet``, ``hf`` (a local
    ``datasets`` directory), or an env-specific name (``humaneval``, ``bfcl``, ...)."""
    path: str | None = None
    split: str | None = None
    """A deterministic split (``train``/``test``) of the source, by stable hash of the task id."""
    test_fraction: float = 0.2
    n: int | None = None
    seed: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    """Field-name mapping for files: ``{id: qid, prompt: question, answer: solution}``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Generator options (difficulty levels, task kinds...)."""


@dataclass
class EnvConfig:
    name: str = "math"
    tasks: TaskSourceConfig = field(default_factory=TaskSourceConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    options: dict[str, Any] = field(default_factory=dict)
    """Env-specific constructor options; an unknown one is a ConfigError naming ``env.options.<key>``."""


def to_object(cfg: Any) -> Any:
    """A composed DictConfig as its typed dataclass, with interpolations resolved."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg)
