"""What the backends share: the ``SandboxBase`` lifecycle (options checked at construction, one warm
session, idempotent close, the limits report), the per-user runtime directory, the scrubbed environment,
output capping, status classification, and the host side of the warm Python worker protocol."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, Self

from agentkit.envs.sandbox import files
from agentkit.errors import ConfigError, SandboxUnavailable
from agentkit.sandbox import ExecResult, ExecStatus, SandboxLimits

WORKER_SOURCE = Path(__file__).with_name("worker.py")
DEFAULT_PRELOAD = ("sympy", "numpy")
READY_TIMEOUT = 120.0
"""Seconds a fresh worker may take to import its preloaded modules (many start at once on 2 cores)."""


def runtime_dir() -> Path:
    """This user's directory for agentkit's runtime files (sandbox workspaces): ``$XDG_RUNTIME_DIR/agentkit``
    when that runtime directory is this user's, else ``<temp dir>/agentkit-<uid>``; mode 700, created on
    first use. Several users and several agentkit processes share a machine without sharing a directory;
    a directory of that name that belongs to someone else (or is a symlink) is refused, never used."""
    uid = os.geteuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    candidates = []
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
            if st.st_uid == uid and os.access(xdg, os.W_OK):
                candidates.append(Path(xdg) / "agentkit")
        except OSError:
            pass
    candidates.append(Path(tempfile.gettempdir()) / f"agentkit-{uid}")
    path = candidates[0]
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot create the runtime directory {path} ({exc.strerror}); set TMPDIR to a directory you own"
        ) from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise SandboxUnavailable(
            f"the runtime directory {path} is not a directory owned by uid {uid}; "
            "remove it, or set TMPDIR to a directory you own"
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_options(backend: str, options: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """``known`` defaults updated by ``options``; an unknown key is a ConfigError naming it."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"sandbox backend '{backend}': unknown option(s) "
            f"{', '.join('options.' + k for k in unknown)}; known: {', '.join(sorted(known))}"
        )
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


def scrubbed_env(
    extra: dict[str, str] | None = None, path: str = "/usr/local/bin:/usr/bin:/bin"
) -> dict[str, str]:
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


def exec_result(
    code: int | None,
    out: CappedBuffer,
    err: CappedBuffer,
    *,
    timeout: float,
    timed_out: bool,
    oom: bool,
    duration: float,
    cpu_limit: int | None = None,
) -> ExecResult:
    """The result of a finished command: its status, no exit code after a wall-clock timeout, and a note
    on stderr naming the limit that killed it. ``cpu_limit`` is the CPU-time limit when the backend's
    counter shows the command reached it, so that a SIGKILL there reads as a timeout, not a crash."""
    stderr = err.text()
    status = classify(code, timed_out=timed_out, oom=oom, stderr=stderr)
    if status == ExecStatus.killed and cpu_limit is not None:
        status = ExecStatus.timeout
        stderr += f"[killed at the CPU-time limit of {cpu_limit} s]"
    if timed_out:
        separator = "\n" if stderr and not stderr.endswith("\n") else ""
        stderr += f"{separator}[killed after {timeout:g} s wall-clock timeout]"
    return ExecResult(
        status=status,
        exit_code=None if timed_out else code,
        stdout=out.text(),
        stderr=stderr,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        duration=duration,
    )


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

    def __init__(
        self,
        launch: Callable[[list[str]], Awaitable[WorkerProcess]],
        limits: SandboxLimits,
        preload: tuple[str, ...] = DEFAULT_PRELOAD,
    ):
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
            raise SandboxUnavailable(
                f"the Python worker did not start (exit code {code}): {tail.strip()[-2000:]}"
            )
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
                return ExecResult(
                    status=ExecStatus.timeout,
                    duration=time.monotonic() - started,
                    stderr=f"cell timed out after {timeout:g} s; the session was restarted",
                    state_lost=True,
                )
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
            return ExecResult(
                status=ExecStatus(reply["status"]),
                exit_code=reply.get("exit_code"),
                stdout=reply.get("stdout", ""),
                stderr=reply.get("stderr", ""),
                stdout_truncated=bool(reply.get("stdout_truncated")),
                stderr_truncated=bool(reply.get("stderr_truncated")),
                duration=duration,
            )

    async def _crashed(self, proc: WorkerProcess, duration: float) -> ExecResult:
        status, code, tail = await proc.crash_status()
        await self._discard()
        self._restart_later()
        if status == ExecStatus.ok:
            status = ExecStatus.error
        note = {
            ExecStatus.oom: "the Python session ran out of memory and was restarted",
            ExecStatus.timeout: "the Python session hit its CPU limit and was restarted",
        }.get(status, f"the Python session died (exit code {code}) and was restarted")
        stderr = (tail.strip() + "\n" + note).strip() if tail.strip() else note
        return ExecResult(status=status, exit_code=code, stderr=stderr, duration=duration, state_lost=True)

    async def close(self) -> None:
        self._closed = True
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.cancel()
            try:
                await starting
            except BaseException:  # a failed or cancelled start has nothing left to clean
                pass
        await self._discard()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists (a process of another user counts: signalling it is refused, not failed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LIMIT_ROWS = (
    "mode",
    "processes",
    "memory",
    "cpu",
    "wall clock",
    "file size",
    "open files",
    "output",
    "network",
    "system calls",
    "disk total",
    "cpu share",
)
"""The rows of every backend's ``limits_report``, in the order ``agentkit sandbox check`` prints them."""


class SandboxBase:
    """What every backend's sandbox shares: options checked against ``OPTIONS`` when it is built (a typo
    is a ``ConfigError`` there, before anything starts, never a ``SandboxUnavailable`` retried later),
    a lazily started backend (``_start``), one warm Python session (``_launch_worker``), an idempotent
    ``close`` (session first, then ``_teardown``), the async context manager, ``exec``'s argument
    checks, and ``limits_report``.

    A backend module keeps only what differs: how an instance starts and stops, how a command
    (``_exec``) and a worker run, how files reach the workspace, and the mechanisms behind its limits
    (``_limit_mechanisms``)."""

    BACKEND = ""
    OPTIONS: dict[str, Any] = {}

    def __init__(self, limits: SandboxLimits | None, options: dict[str, Any]):
        self.limits = limits or SandboxLimits()
        self.options = self.validate(options)
        self.preload = tuple(self.options.get("preload", DEFAULT_PRELOAD))
        self._session: WorkerSession | None = None
        self._closed = False

    @classmethod
    def validate(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``OPTIONS`` updated by ``options``; a ``ConfigError`` naming an unknown key or a bad value."""
        return check_options(cls.BACKEND, options, cls.OPTIONS)

    # -- what a backend provides ----------------------------------------------------------------------

    async def _start(self) -> None:
        """Bring the instance up (nothing for backends that start per exec)."""

    async def _teardown(self) -> None:
        """Stop everything the instance runs and remove what it made on the host."""

    async def _launch_worker(self, worker_args: list[str]) -> WorkerProcess:
        raise NotImplementedError

    def refusal(self) -> str | None:
        """Why this backend cannot run on this host, as one line that says how to fix it; None if it can."""
        return None

    def diagnosis_facts(self) -> dict[str, str]:
        """What the backend found on this host (printed by ``agentkit sandbox check`` before any check)."""
        return {}

    def _limit_mechanisms(self) -> dict[str, str]:
        """The rows of ``limits_report`` that differ by backend (every key of ``LIMIT_ROWS`` but the
        rlimits and the output cap), or ``{"refused": why}`` where the backend cannot run here."""
        raise NotImplementedError

    def _has_dir(self, workdir: str) -> bool:
        """Whether ``workdir`` (workspace-relative) is a directory; backends that cannot tell cheaply
        leave it to the command, which then fails in the missing directory."""
        return True

    async def _exec(self, argv: list[str], workdir: str, data: bytes | None, timeout: float) -> ExecResult:
        """Run one normalized command (``exec`` has checked the argv and the cwd)."""
        raise NotImplementedError

    def limits_report(self) -> dict[str, str]:
        """Each limit and isolation property -> the mechanism that enforces it on this host, or
        ``NOT ENFORCED (why)``; shown by ``agentkit sandbox check``, one row per ``LIMIT_ROWS``."""
        mechanisms = self._limit_mechanisms()
        if "refused" in mechanisms:
            return mechanisms
        limits = self.limits
        rows = {
            **mechanisms,
            "file size": f"RLIMIT_FSIZE {limits.file_size_mb} MiB per file",
            "open files": f"RLIMIT_NOFILE {limits.open_files}",
            "output": f"{limits.output_bytes} bytes per stream, the rest counted and flagged",
        }
        return {row: rows[row] for row in LIMIT_ROWS}

    # -- the protocol ---------------------------------------------------------------------------------

    async def exec(
        self,
        cmd: list[str] | str,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        request = exec_request(cmd, cwd)
        if isinstance(request, ExecResult):
            return request
        argv, workdir = request
        if workdir != "." and not self._has_dir(workdir):
            return ExecResult(
                status=ExecStatus.error, stderr=f"cwd {cwd!r} is not a directory in the workspace"
            )
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return await self._exec(argv, workdir, data, self.limits.timeout if timeout is None else timeout)

    # -- the shared lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxUnavailable("the sandbox is closed")

    async def start(self) -> None:
        self._check_open()
        await self._start()

    async def python(self) -> WorkerSession:
        self._check_open()
        await self._start()
        if self._session is None:
            self._session = WorkerSession(self._launch_worker, self.limits, self.preload)
        await self._session.start()
        return self._session

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await self._teardown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.close())
