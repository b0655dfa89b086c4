"""Executors: where the pending episodes of a run execute.

An executor takes a ``RolloutJob`` (plain, picklable config: what to run) and the work items, and
delivers every finished episode to the run's ``ResultSink`` in this process. ``local`` runs them on
this process's event loop; ``ray`` runs them in actors across a Ray cluster. Both apply the same
retry policy (in ``RolloutEngine``), so a trajectory or a failure means the same whatever ran it.
"""

from __future__ import annotations

from agentkit.errors import ConfigError
from agentkit.synth.config import ExecutorConfig
from agentkit.synth.executors.base import Executor, RolloutJob

__all__ = ["EXECUTORS", "Executor", "RolloutJob", "build_executor"]


EXECUTORS = ("local", "ray")


def build_executor(cfg: ExecutorConfig) -> Executor:
    if cfg.name == "local":
        from agentkit.synth.executors.local import LocalExecutor

        return LocalExecutor()
    if cfg.name == "ray":
        from agentkit.synth.executors.ray import RayExecutor

        return RayExecutor(cfg)
    raise ConfigError(f"executor.name: expected one of {', '.join(EXECUTORS)}, got '{cfg.name}'")
