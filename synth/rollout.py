"""The rollout engine: many (task, sample) episodes in flight at once, infrastructure failures retried.

A finished episode goes to ``on_trajectory`` whatever its status, except an infrastructure failure
(model server, sandbox, verifier): that is rerun with exponential backoff and, when the reruns are
spent, goes to ``on_failure``; it never becomes a trajectory with a reward of 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agentkit.client import Completion, ModelClient, Sampling
from agentkit.env import Env
from agentkit.errors import ConfigError, ContextExceeded, ModelError, SandboxUnavailable, VerifierError
from agentkit.loop import EpisodeLimits
from agentkit.records import Message, Provenance, Status, Task, ToolSpec, Trajectory
from agentkit.synth.strategies import Rollout, Strategy


def stable_hash(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def task_fingerprint(task: Task) -> str:
    """A hash of everything in a task, so a changed task under the same id is new work."""
    return stable_hash(task.model_dump_json())


@dataclass(frozen=True)
class WorkItem:
    """One unit of work, content-addressed by (task id, task content, sample index, config hash)."""

    task: Task
    sample: int
    key: str
    seed: int

    @property
    def trajectory_id(self) -> str:
        return f"{self.task.env}/{self.task.id}/s{self.sample}"


def plan_work(tasks: Sequence[Task], n_samples: int, config_sha256: str, base_seed: int) -> list[WorkItem]:
    items = []
    for task in tasks:
        fingerprint = task_fingerprint(task)
        for sample in range(n_samples):
            key = stable_hash(task.id, fingerprint, sample, config_sha256)[:24]
            seed = int(stable_hash(base_seed, task.id, sample)[:8], 16) % (2**31 - 1)
            items.append(WorkItem(task=task, sample=sample, key=key, seed=seed))
    return items


@dataclass
class Failure:
    """An episode whose infrastructure failed on every attempt: recorded, retried on the next run."""

    key: str
    id: str
    task_id: str
    sample: int
    status: str
    error: str
    attempts: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@asynccontextmanager
async def reference_policy(env: Env, task: Task) -> AsyncIterator[ModelClient]:
    """A fresh reference solver per episode (solvers are one-shot generators)."""
    client = env.reference_solver(task)
    if client is None:
        raise ConfigError(f"env '{env.name}' has no reference solver: policy=reference cannot run")
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def shared_client(client: ModelClient) -> AsyncIterator[ModelClient]:
    """Every episode gets the same long-lived model client; it is closed once, by the run."""
    yield client


def model_policy(client: ModelClient) -> Callable[[Task], Any]:
    return lambda task: shared_client(client)


def env_policy(env: Env) -> Callable[[Task], Any]:
    return lambda task: reference_policy(env, task)


_INFRA_ERRORS: tuple[tuple[type[BaseException], Status], ...] = (
    (SandboxUnavailable, Status.sandbox_error),
    (ModelError, Status.model_error),
    (VerifierError, Status.verifier_error),
)


async def run_all(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every task; when one fails (or the wait is cancelled), cancel the others and wait for them
    as well, so that no task outlives the call. The first failure is raised."""
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class EngineStats:
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    passed: int = 0
    failures: int = 0
    retries: int = 0
    turns: int = 0
    in_flight: int = 0


class RolloutEngine:
    """Runs work items with at most ``concurrency`` episodes in flight."""

    def __init__(
        self,
        env: Env,
        strategy: Strategy,
        policy: Callable[[Task], Any],
        *,
        sampling: Sampling,
        limits: EpisodeLimits,
        provenance: Provenance,
        concurrency: int = 8,
        retries: int = 3,
        retry_backoff: float = 1.0,
        on_trajectory: Callable[[Trajectory, WorkItem], None],
        on_failure: Callable[[Failure], None],
        on_retry: Callable[[WorkItem, str], None] | None = None,
    ):
        self.env, self.strategy, self.policy = env, strategy, policy
        self.sampling, self.limits, self.provenance = sampling, limits, provenance
        self.concurrency = max(1, concurrency)
        self.retries, self.retry_backoff = max(0, retries), retry_backoff
        self.on_trajectory, self.on_failure, self.on_retry = on_trajectory, on_failure, on_retry
        self.stats = EngineStats()

    def _rollout(self, item: WorkItem) -> Rollout:
        sampling = Sampling(**{**self.sampling.__dict__, "seed": item.seed})
        provenance = self.provenance.model_copy(update={"seed": item.seed, "sampling": sampling.as_dict()})
        return Rollout(
            env=self.env,
            task=item.task,
            sample=item.sample,
            trajectory_id=item.trajectory_id,
            sampling=sampling,
            limits=self.limits,
            provenance=provenance,
            policy=self.policy,
        )

    async def _attempt(self, item: WorkItem) -> tuple[Trajectory | None, Status | None, str]:
        """One try: a trajectory, or the infrastructure status and error that ended it."""
        try:
            trajectory = await self.strategy.run(self._rollout(item))
        except ConfigError:
            raise
        except Exception as exc:
            for kind, status in _INFRA_ERRORS:
                if isinstance(exc, kind):
                    return None, status, f"{type(exc).__name__}: {exc}"
            raise
        if trajectory.status.is_infrastructure:
            return None, trajectory.status, trajectory.error or trajectory.status.value
        return trajectory, None, ""

    async def _one(self, item: WorkItem) -> None:
        started = time.perf_counter()
        status: Status | None = None
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                if self.on_retry:
                    self.on_retry(item, error)
                delay = self.retry_backoff * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                trajectory, status, error = await self._attempt(item)
            except ConfigError:
                raise
            except Exception as exc:  # a bug in an env or strategy: recorded, not retried, not fatal
                tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
                self._fail(item, "exception", tail, attempt + 1, started)
                return
            if trajectory is not None:
                trajectory.meta.update({"key": item.key, "sample": item.sample})
                if attempt:
                    trajectory.meta["infra_retries"] = attempt
                self.stats.done += 1
                self.stats.passed += int(trajectory.passed)
                self.stats.turns += trajectory.stats.turns
                self.on_trajectory(trajectory, item)
                return
        self._fail(item, status.value if status else "unknown", error, self.retries + 1, started)

    def _fail(self, item: WorkItem, status: str, error: str, attempts: int, started: float) -> None:
        self.stats.failures += 1
        self.on_failure(
            Failure(
                key=item.key,
                id=item.trajectory_id,
                task_id=item.task.id,
                sample=item.sample,
                status=status,
                error=error,
                attempts=attempts,
                seconds=round(time.perf_counter() - started, 3),
            )
        )

    async def run(self, items: Sequence[WorkItem]) -> EngineStats:
        """Run every item; a ``ConfigError`` (a run that cannot work) stops everything and is raised."""
        queue: asyncio.Queue[WorkItem] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)

        async def worker() -> None:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                self.stats.in_flight += 1
                try:
                    await self._one(item)
                finally:
                    self.stats.in_flight -= 1

        await run_all(
            [asyncio.create_task(worker()) for _ in range(min(self.concurrency, max(1, len(items))))]
        )
        return self.stats


class StickyRouter:
    """Per-episode endpoint choice: every turn of an episode goes to one endpoint (its prefix cache pays),
    chosen among this node's replicas when there are any, else among all, by fewest episodes in flight.

    An endpoint that fails an episode (``ModelError``) is passed over for ``bench_seconds``.
    """

    def __init__(
        self, clients: Mapping[str, ModelClient], local: Sequence[str] = (), bench_seconds: float = 10.0
    ):
        self.clients = dict(clients)
        self.local = [url for url in clients if url in set(local)]
        self.in_flight = dict.fromkeys(clients, 0)
        self.episodes = dict.fromkeys(clients, 0)
        self.benched_until = dict.fromkeys(clients, 0.0)
        self.bench_seconds = bench_seconds
        self._turn = 0

    def pick(self) -> str:
        now = time.monotonic()
        for pool in (self.local, list(self.clients)):
            candidates = [url for url in pool if self.benched_until[url] <= now]
            if candidates:
                break
        else:
            return min(self.clients, key=lambda url: self.benched_until[url])
        self._turn += 1
        least = min(self.in_flight[url] for url in candidates)
        tied = [url for url in candidates if self.in_flight[url] == least]
        return tied[self._turn % len(tied)]

    def bench(self, url: str) -> None:
        self.benched_until[url] = time.monotonic() + self.bench_seconds

    @asynccontextmanager
    async def episode(self, task: Task) -> AsyncIterator[ModelClient]:
        url = self.pick()
        self.in_flight[url] += 1
        self.episodes[url] += 1
        try:
            yield _Watched(self.clients[url], lambda: self.bench(url))
        finally:
            self.in_flight[url] -= 1

    def policy(self) -> Callable[[Task], Any]:
        return self.episode


class _Watched:
    """A model client that reports its failed requests (the agent loop turns them into a status)."""

    name: str  # these two, like every other attribute, come from the wrapped client (``__getattr__``)
    endpoint_kind: str

    def __init__(self, client: ModelClient, on_failure: Callable[[], None]):
        self._client, self._on_failure = client, on_failure

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        sampling: Sampling | None = None,
    ) -> Completion:
        try:
            return await self._client.complete(messages, tools, sampling)
        except ContextExceeded:
            raise
        except ModelError:
            self._on_failure()
            raise

    async def aclose(self) -> None:
        await self._client.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
