"""``executor=ray``: rollouts in Ray actors across a cluster, results streamed to the one writer here.

Each node gets ``actors_per_node`` actors; each actor owns an env instance (with its sandbox pool on
that node) and one model client per endpoint, routing each episode to one endpoint for all its turns
(this node's replica first, else the least loaded). The driver keeps a queue of work items and hands
them out in batches as actors finish, two batches per actor in flight, so at most ``concurrency``
episodes run at once across the cluster. An actor streams every finished episode back as it
finishes; the driver writes it (raw shard, failures, progress) exactly as ``executor=local`` does.

Faults: when an actor or its node dies, the episodes it had not yet sent back go to the front of the
queue for the survivors. An episode is written once, when its result arrives, so the dataset gets
every id exactly once. When the driver dies, the actors die with it and a rerun resumes from the
raw shard.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from agentkit.env import Env
from agentkit.errors import AgentkitError, ConfigError
from agentkit.synth.config import ExecutorConfig
from agentkit.synth.executors.base import RolloutJob
from agentkit.synth.rollout import WorkItem, run_all

log = logging.getLogger(__name__)

INSTALL_HINT = "executor=ray needs Ray: pip install 'agentkit[ray]' (or pip install 'ray>=2.40')"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
LANES = 2
"""Batches in flight per actor: one runs its tail while the next has already started."""


class ExecutorError(AgentkitError):
    """The cluster could not run the work (no actor could start, or every actor died)."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def local_endpoints(urls: Sequence[str], node_ip: str) -> list[str]:
    """The endpoints served on this node: by its address or hostname, or on loopback (a loopback URL
    means "the replica on whichever node runs the episode")."""
    names = {node_ip, socket.gethostname(), socket.getfqdn()}
    return [url for url in urls if (urlparse(url).hostname or "") in names | LOOPBACK]


class RolloutActor:
    """One env instance, its model clients and a rollout engine per batch (a Ray actor on some node)."""

    def __init__(self, job: RolloutJob):
        self.job = job
        self.env: Env | None = None
        self.router = None
        self.node_ip = ""

    async def setup(self) -> dict[str, Any]:
        """Build the env and the clients; a bad config surfaces here, as the AgentkitError it is."""
        import ray

        from agentkit.env import build_env
        from agentkit.synth.rollout import StickyRouter

        self.node_ip = ray.util.get_node_ip_address()
        self.env = build_env(self.job.env)
        if self.job.needs_model:
            from agentkit.openai_client import OpenAIClient

            model = self.job.model
            clients = {
                url: OpenAIClient(
                    [url],
                    model=model.name,
                    api_key=model.api_key,
                    timeout=model.timeout,
                    max_concurrency=model.max_concurrency,
                    max_retries=model.max_retries,
                    return_token_ids=self.job.return_token_ids,
                )
                for url in self.job.urls
            }
            self.router = StickyRouter(clients, local=local_endpoints(self.job.urls, self.node_ip))
        return {
            "node_ip": self.node_ip,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "local_endpoints": self.router.local if self.router else [],
        }

    async def run(self, items: list[WorkItem]):
        """Run a batch, yielding ``(kind, key, payload)`` for each episode as it finishes (and each retry)."""
        from agentkit.synth.rollout import env_policy

        results: asyncio.Queue = asyncio.Queue()

        def on_trajectory(trajectory, item) -> None:
            record = trajectory.model_dump(mode="json", exclude_none=True)
            results.put_nowait(("trajectory", item.key, (record, trajectory.passed, trajectory.stats.turns)))

        assert self.env is not None, "setup() builds the env before run()"
        policy = self.router.policy() if self.router is not None else env_policy(self.env)
        engine = self.job.engine(
            self.env,
            policy,
            concurrency=len(items),
            on_trajectory=on_trajectory,
            on_failure=lambda f: results.put_nowait(("failure", f.key, f.as_dict())),
            on_retry=lambda item, error: results.put_nowait(("retry", item.key, None)),
        )

        async def drive() -> None:
            try:
                await engine.run(items)
            finally:
                results.put_nowait(None)

        task = asyncio.create_task(drive())
        try:
            while (result := await results.get()) is not None:
                yield result
            await task  # a ConfigError stops the run: it leaves here
        finally:
            task.cancel()

    async def close(self) -> dict[str, int]:
        routed = dict(self.router.episodes) if self.router else {}
        if self.router is not None:
            for client in self.router.clients.values():
                await client.aclose()
        if self.env is not None:
            await self.env.aclose()
        return routed


class RayExecutor:
    name = "ray"

    def __init__(self, cfg: ExecutorConfig):
        if importlib.util.find_spec("ray") is None:
            raise ConfigError(INSTALL_HINT)
        if cfg.actors_per_node < 1:
            raise ConfigError(f"executor.actors_per_node must be >= 1, got {cfg.actors_per_node}")
        if cfg.actor_cpus < 0 or cfg.batch_size < 0:
            raise ConfigError("executor.actor_cpus and executor.batch_size must be >= 0")
        self.cfg = cfg
        self.nodes = 0

    # -- cluster and actors -------------------------------------------------------------------------
    def _connect(self, ray) -> bool:
        """Join (or start) the cluster; True when this call started the connection (and must end it)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": True,
            "logging_level": logging.WARNING,
        }
        if self.cfg.runtime_env:
            kwargs["runtime_env"] = dict(self.cfg.runtime_env)
        if self.cfg.address:
            kwargs["address"] = self.cfg.address
        elif self.cfg.num_cpus is not None:
            kwargs["num_cpus"] = self.cfg.num_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"executor.address: cannot join the Ray cluster at '{self.cfg.address or 'local'}' "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        return True

    def _placements(self, ray) -> list[str]:
        """One node id per actor: ``actors_per_node`` on every live node with the CPUs to host them."""
        placements = []
        for node in sorted(ray.nodes(), key=lambda n: n["NodeID"]):
            if not node.get("Alive"):
                continue
            cpus = node.get("Resources", {}).get("CPU", 0)
            fits = (
                self.cfg.actors_per_node
                if self.cfg.actor_cpus == 0
                else min(self.cfg.actors_per_node, int(cpus // self.cfg.actor_cpus))
            )
            placements += [node["NodeID"]] * fits
        if not placements:
            raise ExecutorError(
                f"no node of the Ray cluster has {self.cfg.actor_cpus} CPU(s) for a rollout actor "
                f"(lower executor.actor_cpus)"
            )
        return placements

    def _start_actors(self, ray, job: RolloutJob) -> list[Any]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(RolloutActor)
        actors = [
            remote.options(
                num_cpus=self.cfg.actor_cpus,
                max_concurrency=1000,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(job)
            for node in self._placements(ray)
        ]
        infos = []
        for ref in [actor.setup.remote() for actor in actors]:
            try:
                infos.append(ray.get(ref, timeout=300))
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, AgentkitError):
                    raise exc.cause from None
                raise ExecutorError(f"a rollout actor failed to start: {_first_line(exc.cause)}") from None
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                raise ExecutorError(f"a rollout actor failed to start: {_first_line(exc)}") from None
        self.nodes = len({info["node_id"] for info in infos})
        addresses = sorted({info["node_ip"] for info in infos})
        print(
            f"executor=ray: {len(actors)} rollout actor(s) on {self.nodes} node(s) ({', '.join(addresses)})",
            flush=True,
        )
        return actors

    # -- the driver loop ----------------------------------------------------------------------------
    def run(self, job: RolloutJob, items: Sequence[WorkItem], sink, env: Env) -> dict[str, Any]:
        asyncio.run(env.aclose())  # the actors build their own envs, on their nodes
        ray = import_ray()
        started_here = self._connect(ray)
        actors: list[Any] = []
        try:
            actors = self._start_actors(ray, job)
            started = time.perf_counter()
            stats = asyncio.run(self._drive(ray, actors, list(items), sink, job.concurrency))
            stats["rollout_seconds"] = round(time.perf_counter() - started, 3)
            stats["routed"] = self._close(ray, actors)
            return stats
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if started_here:
                ray.shutdown()

    @staticmethod
    def _close(ray, actors: list[Any]) -> dict[str, int]:
        routed: dict[str, int] = {}
        for ref in [actor.close.remote() for actor in actors]:
            try:
                for url, count in ray.get(ref, timeout=60).items():
                    routed[url] = routed.get(url, 0) + count
            except ray.exceptions.RayError:
                pass  # a dead actor has nothing left to close
        return routed

    def batch_size(self, concurrency: int, actors: int) -> int:
        if self.cfg.batch_size:
            return self.cfg.batch_size
        share = max(1, concurrency // max(1, actors))
        return max(1, share // LANES)

    async def _drive(
        self, ray, actors: list[Any], items: list[WorkItem], sink, concurrency: int
    ) -> dict[str, Any]:
        dead_errors = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError)
        queue: deque[WorkItem] = deque(items)
        alive = set(range(len(actors)))
        state = {"outstanding": 0, "free": max(1, concurrency), "requeued": 0, "dead": 0}
        changed = asyncio.Condition()
        lanes = LANES if concurrency >= LANES * len(actors) else 1
        size = self.batch_size(concurrency, len(actors))

        def handle(kind: str, payload: Any) -> None:
            if kind == "trajectory":
                record, passed, turns = payload
                sink.trajectory(record, passed, turns)
            elif kind == "failure":
                sink.failure(payload)
            else:
                sink.retry()

        def ready(number: int) -> bool:
            return number not in alive or state["outstanding"] == 0 or bool(queue and state["free"])

        async def take(number: int) -> list[WorkItem] | None:
            """The next batch for this actor: never more than ``concurrency`` episodes out in all."""
            async with changed:
                await changed.wait_for(lambda: ready(number))
                if number not in alive or not queue:
                    return None
                fair = math.ceil(len(queue) / max(1, len(alive) * lanes))
                batch = [queue.popleft() for _ in range(min(size, fair, len(queue), state["free"]))]
                state["outstanding"] += 1
                state["free"] -= len(batch)
                return batch

        async def give_back(count: int, finished_batch: bool = False) -> None:
            async with changed:
                state["free"] += count
                state["outstanding"] -= int(finished_batch)
                changed.notify_all()

        async def lane(number: int) -> None:
            actor = actors[number]
            while (batch := await take(number)) is not None:
                open_items = {item.key: item for item in batch}
                try:
                    async for ref in actor.run.remote(batch):
                        kind, key, payload = await ref
                        handle(kind, payload)
                        if kind != "retry" and open_items.pop(key, None) is not None:
                            await give_back(1)
                except dead_errors as exc:
                    async with changed:
                        if number in alive:
                            alive.discard(number)
                            state["dead"] += 1
                            log.warning(
                                "executor=ray: rollout actor %d died (%s); re-queueing its episodes",
                                number,
                                _first_line(exc),
                            )
                        queue.extendleft(reversed(list(open_items.values())))
                        state["requeued"] += len(open_items)
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, AgentkitError):
                        raise exc.cause from None
                    raise
                finally:
                    await give_back(len(open_items), finished_batch=True)

        await run_all(
            [asyncio.create_task(lane(number)) for number in range(len(actors)) for _ in range(lanes)]
        )
        if queue:
            raise ExecutorError(
                f"every rollout actor died; {len(queue)} episode(s) not run (rerun to resume)"
            )
        return {
            "nodes": self.nodes,
            "actors": len(actors),
            "actors_died": state["dead"],
            "requeued": state["requeued"],
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
