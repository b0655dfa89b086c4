"""What every executor shares: the job description and the ``Executor`` protocol."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agentkit.client import Sampling
from agentkit.config import EnvConfig, EpisodeLimitsConfig, ModelConfig, SamplingConfig
from agentkit.loop import EpisodeLimits
from agentkit.records import Provenance, Task
from agentkit.synth.config import StrategyConfig

if TYPE_CHECKING:
    from agentkit.env import Env
    from agentkit.synth.rollout import Failure, RolloutEngine, WorkItem


@dataclass
class RolloutJob:
    """What every episode of a run shares; plain data, so it can travel to another process or node."""

    env: EnvConfig
    strategy: StrategyConfig
    needs_model: bool
    urls: list[str]
    model: ModelConfig
    sampling: SamplingConfig
    limits: EpisodeLimitsConfig
    provenance: Provenance
    concurrency: int
    retries: int
    retry_backoff: float
    return_token_ids: bool | None = None
    """Token-faithful records (``record.tokens``); None: on when the endpoint is vLLM."""

    def engine(
        self,
        env: Env,
        policy: Callable[[Task], Any],
        *,
        concurrency: int,
        on_trajectory: Callable,
        on_failure: Callable[[Failure], None],
        on_retry: Callable[[WorkItem, str], None] | None = None,
    ) -> RolloutEngine:
        from agentkit.synth.rollout import RolloutEngine
        from agentkit.synth.strategies import build_strategy

        strategy = build_strategy(self.strategy.name, self.strategy.options)
        return RolloutEngine(
            env,
            strategy,
            policy,
            sampling=Sampling(**dataclasses.asdict(self.sampling)),
            limits=EpisodeLimits(**dataclasses.asdict(self.limits)),
            provenance=self.provenance,
            concurrency=concurrency,
            retries=self.retries,
            retry_backoff=self.retry_backoff,
            on_trajectory=on_trajectory,
            on_failure=on_failure,
            on_retry=on_retry,
        )


class ResultSink(Protocol):
    """Where an executor delivers results (the run's one writer and progress bar, in the driver)."""

    def trajectory(self, record: Any, passed: bool, turns: int) -> None: ...

    def failure(self, failure: dict[str, Any]) -> None: ...

    def retry(self) -> None: ...


class Executor(Protocol):
    name: str

    def run(self, job: RolloutJob, items: Sequence[WorkItem], sink: ResultSink, env: Env) -> dict[str, Any]:
        """Run ``items``, delivering each result to ``sink``; close ``env`` (the planning env) when done
        with it. Returns numbers worth reporting (nodes, actors, requeued episodes...)."""
        ...
