"""A pool of pre-warmed sandboxes: acquiring one is nearly free, and none is ever shared.

Each ``pool.sandbox()`` hands out a fresh sandbox (its Python session already started when
``warm_python``), closes it when the block exits, and starts a replacement in the background, keeping
``size`` ready beyond the current demand.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agentkit.errors import ConfigError, SandboxUnavailable
from agentkit.sandbox import Sandbox, SandboxLimits, create_sandbox


class SandboxPool:
    def __init__(
        self,
        backend: str = "bwrap",
        limits: SandboxLimits | None = None,
        size: int = 4,
        warm_python: bool = True,
        warm_concurrency: int | None = None,
        **options: Any,
    ):
        if size < 0:
            raise ValueError(f"SandboxPool size must be >= 0, got {size}")
        self.backend = backend
        self.limits = limits or SandboxLimits()
        validate_options(backend, options)
        self.size = size
        self.warm_python = warm_python
        self.options = options
        self.warm_concurrency = warm_concurrency or max(2, os.cpu_count() or 2)
        self._ready: asyncio.Queue | None = None
        self._pending: set[asyncio.Task] = set()
        self._waiters = 0
        self._semaphore: asyncio.Semaphore | None = None
        self._closed = False
        self.created = 0

    @classmethod
    def from_config(cls, cfg: Any, warm_python: bool = True) -> SandboxPool:
        """From an ``agentkit.config.SandboxConfig``."""
        limits = SandboxLimits(**{k: getattr(cfg.limits, k) for k in SandboxLimits.__dataclass_fields__})
        return cls(cfg.backend, limits, size=cfg.pool_size, warm_python=warm_python, **dict(cfg.options))

    def _top_up(self) -> None:
        if self._closed:
            return
        if self._ready is None:
            self._ready = asyncio.Queue()
            self._semaphore = asyncio.Semaphore(self.warm_concurrency)
        while len(self._pending) + self._ready.qsize() < self.size + self._waiters:
            task = asyncio.create_task(self._warm_one())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _warm_one(self) -> None:
        assert self._semaphore is not None and self._ready is not None
        try:
            async with self._semaphore:
                sandbox = create_sandbox(self.backend, limits=self.limits, **self.options)
                try:
                    if self.warm_python:
                        await sandbox.python()
                except BaseException:
                    await asyncio.shield(sandbox.close())
                    raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the waiter that would have got this sandbox
            # A configuration error stays one (never an infrastructure failure to retry).
            self._ready.put_nowait(
                exc
                if isinstance(exc, (SandboxUnavailable, ConfigError))
                else SandboxUnavailable(f"could not start a {self.backend} sandbox: {exc!r}")
            )
            return
        self.created += 1
        if self._closed:
            await sandbox.close()
        else:
            self._ready.put_nowait(sandbox)

    async def acquire(self) -> Sandbox:
        """A fresh sandbox, yours alone; close it (or use ``sandbox()``) when done."""
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is closed")
        self._waiters += 1
        try:
            self._top_up()
            assert self._ready is not None
            item = await self._ready.get()
        finally:
            self._waiters -= 1
        self._top_up()
        if isinstance(item, BaseException):
            raise item
        return item

    @asynccontextmanager
    async def sandbox(self) -> AsyncIterator[Sandbox]:
        sandbox = await self.acquire()
        try:
            yield sandbox
        finally:
            await asyncio.shield(sandbox.close())

    async def start(self) -> None:
        """Begin warming now instead of at the first ``sandbox()``."""
        self._top_up()

    async def close(self) -> None:
        self._closed = True
        pending = list(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        while self._ready is not None and not self._ready.empty():
            item = self._ready.get_nowait()
            if not isinstance(item, BaseException):
                await item.close()

    async def __aenter__(self) -> SandboxPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.close())


def validate_options(backend: str, options: dict[str, Any]) -> None:
    """Check a backend's options before anything starts: an unknown key or a bad value is a
    ``ConfigError`` here, not a ``SandboxUnavailable`` later (which callers retry as infrastructure)."""
    from agentkit.registry import SANDBOXES

    factory = SANDBOXES.get(backend)
    validate = getattr(factory, "validate", None)
    if validate is not None:
        validate(dict(options))
