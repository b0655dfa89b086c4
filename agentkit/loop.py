"""The agent loop: model -> parse -> validate -> tool -> observation -> ... -> final answer -> verify.

A bad rollout is data: every episode returns a ``Trajectory`` whose ``status`` says how it ended.
Infrastructure failures (model server, sandbox, verifier) carry no reward; the caller retries them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentkit import __version__
from agentkit.client import ModelClient, Sampling
from agentkit.config import EpisodeLimits
from agentkit.env import Env, Episode
from agentkit.errors import ContextExceeded, ModelError, SandboxUnavailable, VerifierError
from agentkit.records import Message, Provenance, Seconds, Stats, Status, Task, Trajectory, Verdict
from agentkit.toolcalls import validate_call


@dataclass
class EpisodeResult:
    """A trajectory plus the live objects a strategy may still need (the episode is closed)."""

    trajectory: Trajectory
    verdict: Verdict | None = None


@dataclass
class _Clock:
    seconds: Seconds = field(default_factory=Seconds)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _observation(call_id: str | None, name: str | None, content: str, limit: int) -> Message:
    if len(content) > limit:
        half = limit // 2
        content = content[:half] + f"\n[... {len(content) - limit} characters cut ...]\n" + content[-half:]
    return Message(role="tool", tool_call_id=call_id, name=name, content=content)


async def run_episode(
    env: Env,
    task: Task,
    client: ModelClient,
    *,
    sampling: Sampling | None = None,
    limits: EpisodeLimits | None = None,
    trajectory_id: str | None = None,
    strategy: str = "direct",
    messages: Sequence[Message] | None = None,
    provenance: Provenance | None = None,
    on_turn: Callable[[Message], None] | None = None,
) -> Trajectory:
    """Run one episode of ``task`` in ``env`` with ``client`` and return its trajectory.

    ``messages`` replaces the env's first messages (strategies use it to continue a conversation).
    """
    episode = await env.open(task)
    async with episode:
        return await drive_episode(
            env,
            episode,
            task,
            client,
            sampling=sampling,
            limits=limits,
            trajectory_id=trajectory_id,
            strategy=strategy,
            messages=messages,
            provenance=provenance,
            on_turn=on_turn,
        )


async def drive_episode(
    env: Env,
    episode: Episode,
    task: Task,
    client: ModelClient,
    *,
    sampling: Sampling | None = None,
    limits: EpisodeLimits | None = None,
    trajectory_id: str | None = None,
    strategy: str = "direct",
    messages: Sequence[Message] | None = None,
    provenance: Provenance | None = None,
    on_turn: Callable[[Message], None] | None = None,
    verify: bool = True,
) -> Trajectory:
    """The loop itself, over an episode the caller has opened (and will close)."""
    sampling = sampling or Sampling()
    limits = limits or EpisodeLimits()
    tools = env.tools(task)
    history = list(messages) if messages is not None else env.initial_messages(task)
    stats = Stats()
    clock = _Clock()
    status: Status | None = None
    error: str | None = None
    token_ids: list[list[int]] = []
    logprobs: list[list[float]] = []
    raw_texts: list[str] = []
    prompt_counts: list[int] = []
    bad_turns = 0
    last_finish = "stop"

    while status is None:
        if stats.turns >= limits.max_turns:
            status = Status.max_turns
            break
        remaining = limits.max_seconds - clock.elapsed()
        if remaining <= 0:
            status = Status.timeout
            break
        budget = limits.max_completion_tokens - stats.completion_tokens
        if budget <= 0:
            status = Status.max_tokens
            break
        turn_sampling = Sampling(**{**sampling.__dict__, "max_tokens": min(sampling.max_tokens, budget)})
        started = time.perf_counter()
        deadline = asyncio.timeout(remaining)
        try:
            async with deadline:
                completion = await client.complete(history, tools, turn_sampling)
        except TimeoutError as exc:
            # Only the episode's own wall-time limit is the agent's timeout; a request that timed out inside
            # the client (a slow or stuck server) is an infrastructure failure: retried, never a reward of 0.
            if deadline.expired():
                status = Status.timeout
            else:
                status, error = Status.model_error, f"model request timed out: {exc or type(exc).__name__}"
            break
        except ContextExceeded as exc:
            status, error = Status.context_exceeded, str(exc)
            break
        except ModelError as exc:
            status, error = Status.model_error, str(exc)
            break
        finally:
            clock.seconds.model += time.perf_counter() - started
        stats.turns += 1
        stats.prompt_tokens += completion.prompt_tokens
        stats.completion_tokens += completion.completion_tokens
        last_finish = completion.finish_reason
        if completion.token_ids is not None:
            token_ids.append(completion.token_ids)
            logprobs.append(completion.logprobs or [])
            raw_texts.append(
                completion.generated_text if completion.generated_text is not None else completion.raw_text
            )
            prompt_counts.append(completion.prompt_tokens)
        if completion.tool_call_agreement is not None:
            stats.tool_call_checks += 1
            stats.tool_call_disagreements += int(not completion.tool_call_agreement)
        message = completion.message
        history.append(message)
        if on_turn:
            on_turn(message)
        calls = list(message.tool_calls or [])
        if not calls and not completion.parse_errors:
            next_user = getattr(episode, "next_user_message", None)
            follow_up = await next_user(history) if next_user and last_finish != "length" else None
            if follow_up is not None:  # multi-turn tasks: the user speaks again
                history.append(follow_up)
                continue
            status = Status.completed if last_finish != "length" else Status.max_tokens
            break
        # The model sees its own mistakes: parse errors, invalid arguments and failing tools.
        stats.parse_errors += len(completion.parse_errors)
        bad_turns = bad_turns + 1 if completion.parse_errors and not calls else 0
        for problem in completion.parse_errors:
            history.append(
                _observation(problem.call_id, None, f"error: {problem.message}", limits.observation_chars)
            )
        if bad_turns >= limits.max_parse_errors:
            status = Status.parse_error
            break
        for index, call in enumerate(calls):
            stats.tool_calls += 1
            if index >= limits.max_calls_per_turn:
                stats.tool_errors += 1
                history.append(
                    _observation(
                        call.id,
                        call.name,
                        f"error: at most {limits.max_calls_per_turn} tool calls per turn",
                        limits.observation_chars,
                    )
                )
                continue
            problem = validate_call(call, tools)
            if problem is not None:
                stats.tool_errors += 1
                history.append(
                    _observation(call.id, call.name, f"error: {problem}", limits.observation_chars)
                )
                continue
            started = time.perf_counter()
            try:
                output = await episode.call(call)
            except SandboxUnavailable as exc:
                status, error = Status.sandbox_error, str(exc)
                break
            finally:
                clock.seconds.tools += time.perf_counter() - started
            stats.tool_errors += int(output.error)
            history.append(_observation(call.id, call.name, output.content, limits.observation_chars))

    verdict: Verdict | None = None
    if status is not None and not status.is_infrastructure:
        if status == Status.completed and verify:
            started = time.perf_counter()
            try:
                verdict = await episode.verify(history)
            except VerifierError as exc:
                status, error = Status.verifier_error, str(exc)
            except SandboxUnavailable as exc:
                status, error = Status.sandbox_error, str(exc)
            finally:
                clock.seconds.verify += time.perf_counter() - started
        elif status != Status.completed:
            verdict = Verdict(
                passed=False, reward=0.0, reason=f"episode ended without an answer: {status.value}"
            )
    clock.seconds.total = clock.elapsed()
    stats.seconds = clock.seconds
    prov = provenance.model_copy() if provenance else Provenance()
    prov.model = prov.model or client.name
    prov.endpoint = prov.endpoint or client.endpoint_kind
    prov.sampling = prov.sampling or sampling.as_dict()
    prov.seed = prov.seed if prov.seed is not None else sampling.seed
    prov.strategy = prov.strategy or strategy
    prov.env_version = prov.env_version or f"{env.name}/{env.version}"
    prov.agentkit = __version__
    return Trajectory(
        id=trajectory_id or f"{task.env}/{task.id}",
        task=task,
        tools=tools,
        messages=history,
        status=status,
        reward=verdict.reward if verdict else None,
        verdict=verdict,
        error=error,
        stats=stats,
        provenance=prov,
        completion_token_ids=token_ids or None,
        logprobs=logprobs if token_ids and any(logprobs) else None,
        raw_completions=raw_texts or None,
        prompt_token_counts=prompt_counts or None,
    )


async def run_many(
    jobs: Sequence[tuple[Env, Task, ModelClient]],
    *,
    concurrency: int = 8,
    on_done: Callable[[Trajectory], None] | None = None,
    **kwargs,
) -> list[Trajectory]:
    """Run many episodes with at most ``concurrency`` in flight; results keep the jobs' order."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(env: Env, task: Task, client: ModelClient) -> Trajectory:
        async with semaphore:
            trajectory = await run_episode(env, task, client, **kwargs)
        if on_done:
            on_done(trajectory)
        return trajectory

    return await asyncio.gather(*(one(*job) for job in jobs))
