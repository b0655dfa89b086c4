"""``executor=local``: every episode on this process's asyncio loop, with the planning env."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from agentkit.env import Env
from agentkit.synth.executors.base import RolloutJob
from agentkit.synth.rollout import WorkItem, env_policy, model_policy


class LocalExecutor:
    name = "local"

    def run(self, job: RolloutJob, items: Sequence[WorkItem], sink, env: Env) -> dict[str, Any]:
        started = time.perf_counter()
        asyncio.run(self._run(job, items, sink, env))
        return {"rollout_seconds": round(time.perf_counter() - started, 3)}

    async def _run(self, job: RolloutJob, items: Sequence[WorkItem], sink, env: Env) -> None:
        client = None
        try:
            if job.needs_model and items:
                from agentkit.openai_client import OpenAIClient

                client = OpenAIClient(
                    job.urls,
                    model=job.model.name,
                    api_key=job.model.api_key,
                    timeout=job.model.timeout,
                    max_concurrency=job.model.max_concurrency,
                    max_retries=job.model.max_retries,
                    return_token_ids=job.return_token_ids,
                )
            policy = model_policy(client) if client is not None else env_policy(env)
            engine = job.engine(
                env,
                policy,
                concurrency=job.concurrency,
                on_trajectory=lambda t, item: sink.trajectory(t, t.passed, t.stats.turns),
                on_failure=lambda failure: sink.failure(failure.as_dict()),
                on_retry=lambda item, error: sink.retry(),
            )
            await engine.run(items)
        finally:
            if client is not None:
                await client.aclose()
            await env.aclose()
