"""The episode of every sandboxed env (math, code functions, code repositories, Harbor tasks): one
sandbox taken from the env's pool at the first tool call, not before (an episode that never calls a tool
costs no sandbox), and given back when the episode closes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from agentkit.env import Episode
from agentkit.errors import SandboxUnavailable
from agentkit.records import Task


class SandboxEpisode(Episode):
    """An episode whose tools share one sandbox. A tool holds ``_lock`` while it uses
    ``await self._workspace()``, so calls of one episode never interleave in its sandbox; a call after
    ``close`` is a ``SandboxUnavailable`` (an infrastructure failure, retried like any lost sandbox).

    Subclasses say which pool the sandbox comes from (``_pool``) and what a fresh one needs laid out
    (``_prepare``)."""

    def __init__(self, task: Task):
        super().__init__(task)
        self._stack = contextlib.AsyncExitStack()
        self._sandbox: Any = None
        self._lock = asyncio.Lock()
        self.closed = False

    def _pool(self) -> Any:
        """The ``SandboxPool`` this episode's sandbox comes from."""
        raise NotImplementedError

    async def _prepare(self, sandbox: Any) -> None:
        """Lay out what the task needs in a fresh sandbox (nothing by default)."""

    async def _workspace(self) -> Any:
        """The episode's sandbox; the first call takes one from the pool and prepares it."""
        if self.closed:
            raise SandboxUnavailable("the episode is closed")
        if self._sandbox is None:
            sandbox = await self._stack.enter_async_context(self._pool().sandbox())
            await self._prepare(sandbox)
            self._sandbox = sandbox
        return self._sandbox

    async def close(self) -> None:
        async with self._lock:
            self.closed = True
            self._sandbox = None
            await self._stack.aclose()
