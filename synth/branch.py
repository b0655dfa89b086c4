"""Action branches: one shared prefix per task, k continuations from the same state, linked.

``strategy=branch n_samples=k``: the first sample of a task runs the policy for ``at`` assistant turns (the
prefix, model calls paid once) and takes a snapshot of the episode state; every sample (branch) then restores
that snapshot into a fresh episode and continues differently: branch 0 with the policy as is, branch i >= 1
with a mistake injected at the branch point (the ``teacher`` kinds, in turn), corrected or not (``fix``). With
a served model every branch also samples its own continuation. Each branch is a trajectory of its own, with
``meta.branch`` = {id, point, index, kind, prefix_messages, prefix_sha256, outcome, snapshot cost}, so a failed
path and a successful one from the same state sit side by side in the data.

Snapshots replay: restoring one re-runs the prefix's tool calls in a fresh episode (the sandbox's files and the
Python session are rebuilt by the same cells and commands; simulators by the same calls) and advances a
reference solver through the prefix's turns. No model call is repeated. The cost per snapshot is measured
(``snapshot.restore_seconds``, against ``snapshot.prefix_seconds`` for producing the prefix) and stated in
each record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from agentkit.client import Completion, ModelClient
from agentkit.loop import EpisodeLimits, drive_episode
from agentkit.records import Message, Status, ToolCall, Trajectory
from agentkit.registry import STRATEGIES
from agentkit.synth.strategies import (
    MistakeClient,
    Rollout,
    Strategy,
    TeacherStrategy,
    _checks_answer,
    merge_stats,
)


@dataclass
class Snapshot:
    """The shared prefix of a task's branches: its messages, and what producing it cost."""

    messages: list[Message]
    turns: int
    seconds: float
    reference: bool
    stats: Any

    @property
    def calls(self) -> list[ToolCall]:
        return [call for m in self.messages if m.role == "assistant" for call in m.tool_calls or []]

    @property
    def sha256(self) -> str:
        payload = json.dumps(
            [m.model_dump(mode="json", exclude_none=True) for m in self.messages], sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()


class AdvancedReference:
    """A reference solver advanced through the prefix's turns (its own outputs discarded, the prefix's
    observations fed back), so it continues from the branch point."""

    def __init__(self, reference: ModelClient, prefix: list[Message]):
        self._reference, self._prefix, self._advanced = reference, prefix, False
        self.name, self.endpoint_kind = reference.name, getattr(reference, "endpoint_kind", "reference")

    async def _advance(self) -> None:
        assistants = [i for i, m in enumerate(self._prefix) if m.role == "assistant"]
        for index in assistants:
            await self._reference.complete(self._prefix[:index], None, None)
        self._advanced = True

    async def complete(self, messages, tools=None, sampling=None) -> Completion:
        if not self._advanced:
            await self._advance()
        return await self._reference.complete(messages, tools, sampling)

    async def aclose(self) -> None:
        await self._reference.aclose()


@STRATEGIES.register("branch")
class BranchStrategy(Strategy):
    """k branches per task from one snapshot of the episode after ``at`` turns (``n_samples`` = k)."""

    name = "branch"
    needs_model = False

    def __init__(
        self,
        at: int = 1,
        mistakes: tuple[str, ...] = ("code", "argument", "value", "answer"),
        fix: bool = False,
    ):
        super().__init__()
        if at < 1:
            raise TypeError("at must be >= 1 (the number of assistant turns in the shared prefix)")
        TeacherStrategy(mistakes=list(mistakes))  # the same kinds, checked the same way
        self.at, self.mistakes, self.fix = at, list(mistakes), fix
        self._prefixes: dict[str, asyncio.Future] = {}

    async def _prefix(self, rollout: Rollout) -> Snapshot:
        key = rollout.task.id
        if key not in self._prefixes:
            self._prefixes[key] = asyncio.ensure_future(self._make_prefix(rollout))
        return await asyncio.shield(self._prefixes[key])

    async def _make_prefix(self, rollout: Rollout) -> Snapshot:
        env, task = rollout.env, rollout.task
        started = time.perf_counter()
        episode = await env.open(task)
        async with episode, rollout.policy(task) as client:
            limits = EpisodeLimits(**{**rollout.limits.__dict__, "max_turns": self.at})
            part = await drive_episode(
                env,
                episode,
                task,
                client,
                messages=self.first_messages(env, task),
                verify=False,
                **rollout.episode_args(self.name, limits),
            )
        messages = list(part.messages)
        if (
            part.status != Status.max_turns
        ):  # the episode ended before the branch point: branch before its end
            last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=len(messages))
            messages = messages[:last]
        turns = sum(m.role == "assistant" for m in messages)
        return Snapshot(
            messages,
            turns,
            time.perf_counter() - started,
            getattr(client, "endpoint_kind", "") == "reference",
            part.stats,
        )

    async def _restore(self, rollout: Rollout, snapshot: Snapshot):
        """A fresh episode in the snapshot's state: the prefix's tool calls replayed in order."""
        episode = await rollout.env.open(rollout.task)
        started = time.perf_counter()
        for call in snapshot.calls:
            await episode.call(call)
        return episode, time.perf_counter() - started

    async def run(self, rollout: Rollout) -> Trajectory:
        env, task = rollout.env, rollout.task
        snapshot = await self._prefix(rollout)
        kinds = [k for k in self.mistakes if k != "answer" or _checks_answer(task)]
        random.Random(f"{task.id}/branch").shuffle(kinds)
        first = (rollout.sample - 1) % max(1, len(kinds))
        order = kinds[first:] + kinds[:first]  # this branch's kind first, then the others if it does not fit
        kind = "policy" if rollout.sample == 0 or not kinds else order[0]
        episode, restore_seconds = await self._restore(rollout, snapshot)
        parts: list[Trajectory] = []
        async with episode, rollout.policy(task) as policy:
            base: ModelClient = policy
            if snapshot.reference and snapshot.turns:
                base = AdvancedReference(policy, snapshot.messages)
            client: Any = base
            if kind != "policy":
                rng = random.Random(f"{task.id}/{rollout.sample}/{rollout.sampling.seed}")
                client = MistakeClient(lambda: base, order, env.tools(task), rng, correct=self.fix)
            kwargs = rollout.episode_args(self.name)
            messages = list(snapshot.messages)
            for _ in range(3):
                part = await drive_episode(env, episode, task, client, messages=messages, **kwargs)
                parts.append(part)
                waiting = getattr(client, "awaiting", None)
                if (
                    not self.fix
                    or waiting not in ("verdict", "answer")
                    or part.status != Status.completed
                    or part.passed
                    or part.verdict is None
                ):
                    break
                messages = [*part.messages, Message(role="user", content=episode.feedback(part.verdict))]
        last = parts[-1]
        mistake = getattr(client, "mistake", None)
        if mistake is not None and not mistake.get("exposed"):
            # left uncorrected, a wrong answer (or one built on a wrong output) meets the verifier at the end
            final = (
                not last.passed
                and last.status == Status.completed
                and getattr(client, "awaiting", None) in ("verdict", "answer")
            )
            mistake = mistake | {"exposed": final, "exposed_by": "verifier" if final else None}
        if mistake is not None:
            kind = mistake["kind"]
        branch = {
            "id": f"{task.id}@{snapshot.turns}",
            "point": snapshot.turns,
            "index": rollout.sample,
            "kind": kind,
            "injected": kind == "policy" or mistake is not None,
            "fixed": self.fix,
            "prefix_messages": len(snapshot.messages),
            "prefix_sha256": snapshot.sha256,
            "outcome": "passed" if last.passed else "failed",
            "snapshot": {
                "replayed_calls": len(snapshot.calls),
                "restore_seconds": round(restore_seconds, 4),
                "prefix_seconds": round(snapshot.seconds, 4),
            },
        }
        meta = dict(last.meta) | {"branch": branch} | ({"mistake": mistake} if mistake else {})
        return last.model_copy(update={"stats": merge_stats([p.stats for p in parts]), "meta": meta})

    def check_format(self, trajectory: Trajectory) -> str | None:
        branch = trajectory.meta.get("branch") or {}
        if not branch.get("injected"):
            return f"branch: no mistake fits after the branch point (branch {branch.get('index')})"
        return None

    def select(self, group):
        return group  # failed branches are the point: the verdict filter must let them through (see conf)
