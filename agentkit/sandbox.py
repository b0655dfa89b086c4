"""The sandbox protocol: where model-written code runs. Backends live in ``agentkit.envs.sandbox``.

``exec`` and ``PythonSession.run`` return an ``ExecResult`` whose ``status`` says what happened; they
raise only ``SandboxUnavailable``, when the sandbox itself can no longer be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Self, runtime_checkable

from agentkit.records import Record


class ExecStatus(StrEnum):
    ok = "ok"  # exit code 0
    error = "error"  # non-zero exit or an exception in a session cell
    timeout = "timeout"  # wall-clock or CPU limit hit; the whole process tree was killed
    oom = "oom"  # memory limit hit
    killed = "killed"  # killed by a signal for another reason (process cap, file size, ...)


class ExecResult(Record):
    status: ExecStatus
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration: float = 0.0
    state_lost: bool = False
    """For sessions: the worker was restarted (after a timeout or crash) and earlier state is gone."""

    @property
    def ok(self) -> bool:
        return self.status == ExecStatus.ok

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    def observation(self, limit: int = 8000) -> str:
        """The text a model sees for this result: output, then what went wrong, bounded in size."""
        parts = []
        if self.stdout:
            parts.append(self.stdout)
        if self.stderr:
            parts.append(self.stderr if not self.stdout else f"[stderr]\n{self.stderr}")
        if self.truncated:
            parts.append("[output truncated]")
        if self.status != ExecStatus.ok:
            code = f" (exit code {self.exit_code})" if self.exit_code not in (None, 0) else ""
            parts.append(f"[{self.status.value}{code}]")
        if self.state_lost:
            parts.append("[the Python session was restarted: earlier variables and imports are lost]")
        text = "\n".join(p.rstrip("\n") for p in parts) or "[no output]"
        if len(text) > limit:
            half = limit // 2
            text = text[:half] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[-half:]
        return text


@dataclass
class SandboxLimits:
    """Resource limits for one sandbox. Every backend enforces all of them or lists the gap."""

    timeout: float = 10.0  # wall-clock seconds per exec / cell
    cpu_seconds: int = 30  # CPU seconds per exec
    memory_mb: int = 1024  # address space / cgroup memory
    max_processes: int = 64
    file_size_mb: int = 64
    open_files: int = 256
    output_bytes: int = 65536  # per stream
    network: bool = False


@runtime_checkable
class PythonSession(Protocol):
    """A warm Python worker inside a sandbox; globals persist across ``run`` calls."""

    async def run(self, code: str, timeout: float | None = None) -> ExecResult: ...

    async def close(self) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """An isolated workspace. Paths are relative to the workspace root; escapes are rejected."""

    limits: SandboxLimits

    async def exec(
        self,
        cmd: list[str] | str,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        cwd: str | None = None,
    ) -> ExecResult: ...

    async def write_file(self, path: str, content: str | bytes) -> None: ...

    async def read_file(self, path: str) -> bytes: ...

    async def upload(self, source_dir: str, dest: str = ".") -> None: ...

    async def python(self) -> PythonSession: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        """Start the sandbox (``async with create_sandbox(...) as sandbox``)."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Close it, whatever happened inside."""
        ...


def create_sandbox(backend: str = "bwrap", limits: SandboxLimits | None = None, **options: Any) -> Sandbox:
    """Build a sandbox by its registered name (``bwrap``, ``docker``, ...)."""
    from agentkit.registry import SANDBOXES

    factory = SANDBOXES.get(backend)
    return factory(limits=limits or SandboxLimits(), **options)
