"""What the backends share: option checking, the scrubbed environment, output capping, status
classification, and the host side of the warm Python worker protocol."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from agentkit.errors import ConfigError, SandboxUnavailable
from agentkit.sandbox import ExecResult, ExecStatus, SandboxLimits
from agentkit.envs.sandbox import files

WORKER_SOURCE = Path(__file__).with_name("worker.py")
DEFAULT_PRELOAD = ("sympy", "numpy")
READY_TIMEOUT = 120.0
"""Seconds a fresh worker may take to import its preloaded modules (many start at once on 2 cores)."""


def check_options(backend: str, options: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """``known`` defaults updated by ``options``; an unknown key is a ConfigError naming it."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"sandbox backend '{backend}': unknown option(s) "
                          f"{', '.join('options.' + k for k in unknown)}; known: {', '.join(sorted(known))}")
    return {**known, **options}


def exec_request(cmd: list[str] | str, cwd: str | None) -> tuple[list[str], str] | ExecResult:
    """An exec call normalized for any backend: the argv (a string runs through ``/bin/sh -c``) and
    the workspace-relative cwd, or the error result for an empty command or a cwd outside the workspace."""
    argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]
    if not argv:
        return ExecResult(status=ExecStatus.error, stderr="empty command")
    try:
        return argv, files.normalized(cwd or ".")
    except files.PathEscape as exc:
        return ExecResult(status=ExecStatus.error, stderr=str(exc))


def scrubbed_env(extra: dict[str, str] | None = None, path: str = "/usr/local/bin:/usr/bin:/bin") -> dict[str, str]:
    """The whole environment a sandboxed process gets: built from constants, never from ``os.environ``."""
    env = {
        "PATH": path,
        "HOME": "/workspace",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "MPLBACKEND": "Agg",
    }
    for key, value in (extra or {}).items():
        env[str(key)] = str(value)
    return env


class CappedBuffer:
    """Keeps the first ``cap`` bytes written to it and counts the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        return decode(bytes(self.data))


def decode(data: bytes) -> str:
    """Output bytes as text; invalid UTF-8 becomes U+FFFD instead of an error."""
    return data.decode("utf-8", "replace")


async def read_capped(stream: asyncio.StreamReader, buffer: CappedBuffer) -> None:
    while True:
        chunk = await stream.read(1 << 16)
        if not chunk:
            return
        buffer.add(chunk)


def _memory_error(stderr: str) -> bool:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return bool(lines) and lines[-1].startswith("MemoryError")


def classify(exit_code: int | None, *, timed_out: bool, oom: bool, stderr: str = "") -> ExecStatus:
    """The status of a finished process. ``exit_code`` > 128 (shell style) or < 0 means a signal."""
    if timed_out:
        return ExecStatus.timeout
    if oom:
        return ExecStatus.oom
    if exit_code == 0:
        return ExecStatus.ok
    sig = None
    if exit_code is not None and exit_code < 0:
        sig = -exit_code
    elif exit_code is not None and 128 < exit_code < 128 + 65:
        sig = exit_code - 128
    if sig == signal.SIGXCPU:
        return ExecStatus.timeout
    if _memory_error(stderr):
        return ExecStatus.oom
    if sig is not None:
        return ExecStatus.killed
    return ExecStatus.error


def shell_exit_code(returncode: int | None) -> int | None:
    """asyncio's ``-N`` for a signal death, as the shell's ``128+N``."""
    if returncode is not None and returncode < 0:
        return 128 - returncode
    return returncode


class WorkerProcess(Protocol):
    """One running worker inside a sandbox, as the session sees it (backend specific)."""

    async def send(self, data: bytes) -> None: ...

    async def readline(self) -> bytes: ...

    async def kill(self) -> None: ...

    async def crash_status(self) -> tuple[ExecStatus, int | None, str]:
        """After EOF: (status, exit code, the worker's own stderr tail)."""
        ...


class WorkerSession:
    """The host side of a warm Python session: cells over JSON lines, a deadline per cell, and a
    restart after a timeout or a crash (the result then says ``state_lost``)."""

    def __init__(self, launch: Callable[[list[str]], Awaitable[WorkerProcess]], limits: SandboxLimits,
                 preload: tuple[str, ...] = DEFAULT_PRELOAD):
        self._launch = launch
        self.limits = limits
        self.preload = tuple(preload)
        self._proc: WorkerProcess | None = None
        self._starting: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.info: dict[str, Any] = {}
        self.restarts = 0

    def worker_args(self) -> list[str]:
        return ["--cap", str(self.limits.output_bytes), "--preload", ",".join(self.preload)]

    async def start(self) -> None:
        """Start the worker (if needed) and wait until its preloaded modules are imported."""
        if self._proc is not None:
            return
        if self._starting is None:
            self._starting = asyncio.create_task(self._start())
        task = self._starting
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._starting is task:
                self._starting = None

    async def _start(self) -> None:
        if self._closed:
            raise SandboxUnavailable("the Python session is closed")
        proc = await self._launch(self.worker_args())
        try:
            try:
                line = await asyncio.wait_for(proc.readline(), READY_TIMEOUT)
                info = json.loads(line) if line else {}
            except (TimeoutError, ValueError):
                info = {}
        except BaseException:
            await asyncio.shield(proc.kill())
            raise
        if not info.get("ready"):
            _, code, tail = await proc.crash_status()
            await proc.kill()
            raise SandboxUnavailable(f"the Python worker did not start (exit code {code}): {tail.strip()[-2000:]}")
        self.info = info
        self._proc = proc

    def _restart_later(self) -> None:
        self.restarts += 1
        if not self._closed and self._starting is None:
            self._starting = asyncio.create_task(self._start())
            self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await proc.kill()

    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        timeout = self.limits.timeout if timeout is None else timeout
        async with self._lock:
            await self.start()
            proc = self._proc
            assert proc is not None
            cell_id = secrets.token_hex(8)
            request = json.dumps({"id": cell_id, "code": code, "cpu": self.limits.cpu_seconds}) + "\n"
            started = time.monotonic()
            try:
                await proc.send(request.encode())
                line = await asyncio.wait_for(proc.readline(), timeout)
            except TimeoutError:
                await self._discard()
                self._restart_later()
                return ExecResult(status=ExecStatus.timeout, duration=time.monotonic() - started,
                                  stderr=f"cell timed out after {timeout:g} s; the session was restarted",
                                  state_lost=True)
            except asyncio.CancelledError:
                await asyncio.shield(self._discard())
                self._restart_later()
                raise
            except (BrokenPipeError, ConnectionError, OSError):
                line = b""
            duration = time.monotonic() - started
            reply = None
            if line:
                try:
                    reply = json.loads(line)
                except ValueError:
                    reply = None
            if not reply or reply.get("id") != cell_id:
                return await self._crashed(proc, duration)
            return ExecResult(status=ExecStatus(reply["status"]), exit_code=reply.get("exit_code"),
                              stdout=reply.get("stdout", ""), stderr=reply.get("stderr", ""),
                              stdout_truncated=bool(reply.get("stdout_truncated")),
                              stderr_truncated=bool(reply.get("stderr_truncated")), duration=duration)

    async def _crashed(self, proc: WorkerProcess, duration: float) -> ExecResult:
        status, code, tail = await proc.crash_status()
        await self._discard()
        self._restart_later()
        if status == ExecStatus.ok:
            status = ExecStatus.error
        note = {ExecStatus.oom: "the Python session ran out of memory and was restarted",
                ExecStatus.timeout: "the Python session hit its CPU limit and was restarted"}.get(
            status, f"the Python session died (exit code {code}) and was restarted")
        stderr = (tail.strip() + "\n" + note).strip() if tail.strip() else note
        return ExecResult(status=status, exit_code=code, stderr=stderr, duration=duration, state_lost=True)

    async def close(self) -> None:
        self._closed = True
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.cancel()
            try:
                await starting
            except BaseException:  # noqa: BLE001 - a failed or cancelled start has nothing left to clean
                pass
        await self._discard()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
