"""agentkit's sandbox backends as inspect_ai sandbox environments: ``agentkit-bwrap``, ``agentkit-docker``.

``inspect eval task.py --sandbox agentkit-bwrap`` runs each sample in a fresh agentkit sandbox (one per
sample, closed at sample cleanup). inspect finds this module through the ``inspect_ai`` entry-point
group in agentkit's ``pyproject.toml``; the ``inspect`` extra installs inspect_ai.

Everything goes through the backends' public API (``create_sandbox``, ``exec``, ``close``): inspect's
``env``/``cwd`` go to a ``/bin/sh`` wrapper launched by absolute path; ``read_file``/``write_file`` are
shell commands run in the sandbox, so absolute paths such as ``/tmp/x`` reach the sandbox's own
filesystem (agentkit's ``read_file``/``write_file`` only reach the workspace), with inspect's error
types (``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ``OutputLimitExceededError``).

The threat model is the backend's (see ``bwrap.py`` / ``docker.py``). What inspect asks and agentkit
does not do: ``exec(user=...)`` raises ``SandboxUserUnsupportedError`` (a sandbox runs everything as
one unprivileged uid; there is no root to switch to), and the sandbox has no network unless the
config allows it. Limits default to what inspect's checks expect of a provider (50 MiB files, 10 MiB
of output, long commands) rather than agentkit's per-tool-call limits; a sample config can change them.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path
from typing import Any

from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    SandboxUserUnsupportedError,
    sandboxenv,
)
from pydantic import BaseModel, Field

SHELL = "/bin/sh"
# Not ``exec "$@"``: the wrapper stays the parent, so a command that signals itself (``kill -TERM $$``)
# is not the namespace's pid 1 (which ignores such signals) and its death reads as 128 + signal.
_CD_EXEC = 'cd -- "$1" || exit 125; shift; "$@"'
_EXEC = '"$@"'
_READ = (
    'f="$1"; if [ -d "$f" ]; then echo "$f: is a directory" >&2; exit 21; fi; '
    'if [ ! -e "$f" ]; then echo "$f: no such file" >&2; exit 2; fi; '
    'if [ ! -r "$f" ]; then echo "$f: permission denied" >&2; exit 13; fi; '
    'size=$(wc -c < "$f") || exit 13; if [ "$size" -gt "$2" ]; then echo "$size" >&2; exit 27; fi; '
    'base64 < "$f"'
)
_WRITE = (
    'f="$1"; if [ -d "$f" ]; then echo "$f: is a directory" >&2; exit 21; fi; '
    'd=$(dirname -- "$f"); mkdir -p -- "$d" 2>/dev/null || { echo "$d: permission denied" >&2; exit 13; }; '
    'if [ -e "$f" ] && [ ! -w "$f" ]; then echo "$f: permission denied" >&2; exit 13; fi; '
    'cat > "$f" || { echo "$f: permission denied" >&2; exit 13; }'
)


class AgentkitSandboxConfig(BaseModel):
    """A sample's sandbox config: agentkit ``SandboxLimits`` fields and backend options."""

    limits: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


INSPECT_LIMITS = {
    "timeout": 600.0,
    "cpu_seconds": 600,
    "memory_mb": 2048,
    "max_processes": 256,
    "file_size_mb": 256,
    "open_files": 1024,
    "output_bytes": 96 * 1024 * 1024,
}
"""What inspect's providers are expected to handle (its self-check writes and reads 50 MiB files)."""


def _config(config: SandboxEnvironmentConfigType | None) -> AgentkitSandboxConfig:
    if config is None:
        return AgentkitSandboxConfig()
    if isinstance(config, AgentkitSandboxConfig):
        return config
    if isinstance(config, BaseModel):
        return AgentkitSandboxConfig.model_validate(config.model_dump())
    path = Path(str(config))
    if not path.is_file():
        raise ValueError(
            f"agentkit sandbox config: {path} is not a file (YAML or JSON with 'limits'/'options')"
        )
    import yaml

    return AgentkitSandboxConfig.model_validate(yaml.safe_load(path.read_text()) or {})


class AgentkitSandboxEnvironment(SandboxEnvironment):
    """One agentkit sandbox behind inspect's ``SandboxEnvironment`` API."""

    BACKEND = ""

    def __init__(self, sandbox: Any):
        super().__init__()
        self.sandbox = sandbox

    # -- lifecycle ----------------------------------------------------------------------------------
    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> BaseModel:
        return AgentkitSandboxConfig.model_validate(config)

    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        from agentkit.envs.sandbox.base import SandboxBase
        from agentkit.sandbox import SandboxLimits, create_sandbox

        settings = _config(config)
        limits = SandboxLimits(**{**INSPECT_LIMITS, **settings.limits})
        sandbox = create_sandbox(cls.BACKEND, limits, **settings.options)
        assert isinstance(sandbox, SandboxBase)  # the built-in backends this provider serves
        try:
            await sandbox.start()
        except BaseException:
            await sandbox.close()
            raise
        return {"default": cls(sandbox)}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for environment in environments.values():
            if isinstance(environment, AgentkitSandboxEnvironment):
                await environment.sandbox.close()

    # -- exec and files -----------------------------------------------------------------------------
    async def _run(
        self,
        cmd: list[str],
        *,
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ):
        if env:
            cmd = ["/usr/bin/env", *(f"{key}={value}" for key, value in env.items()), *cmd]
        if cwd and cwd.startswith("/"):
            # The backends take a workspace-relative cwd; an absolute one is entered by the wrapper.
            argv, where = [SHELL, "-c", _CD_EXEC, "agentkit-exec", cwd, *cmd], None
        else:
            argv, where = [SHELL, "-c", _EXEC, "agentkit-exec", *cmd], cwd
        return await self.sandbox.exec(argv, stdin=input, timeout=timeout, cwd=where)

    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        if user is not None:
            raise SandboxUserUnsupportedError(
                f"agentkit-{self.BACKEND} runs every command as the sandbox's one unprivileged user; "
                f"user={user!r} is not supported"
            )
        result = await self._run(list(cmd), input=input, cwd=cwd, env=env, timeout=timeout)
        if result.status == "timeout":
            raise TimeoutError(
                f"command timed out after {timeout or self.sandbox.limits.timeout} s: {shlex.join(cmd)}"
            )
        code = result.exit_code if result.exit_code is not None else 1
        if code == 126 and "ermission denied" in result.stderr:
            raise PermissionError(f"{cmd[0]}: permission denied (not executable)")
        if result.stdout_truncated or result.stderr_truncated:
            raise OutputLimitExceededError(f"{self.sandbox.limits.output_bytes} bytes", result.stdout)
        return ExecResult(success=code == 0, returncode=code, stdout=result.stdout, stderr=result.stderr)

    async def write_file(self, file: str, contents: str | bytes) -> None:
        data = contents.encode("utf-8") if isinstance(contents, str) else contents
        result = await self._run([SHELL, "-c", _WRITE, "agentkit-write", file], input=data)
        self._raise_for_file(result, file)

    async def read_file(self, file: str, text: bool = True):
        limit = SandboxEnvironmentLimits.MAX_READ_FILE_SIZE
        result = await self._run([SHELL, "-c", _READ, "agentkit-read", file, str(limit)])
        if result.exit_code == 27:
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, None)
        self._raise_for_file(result, file)
        data = base64.b64decode(result.stdout)
        return data.decode("utf-8") if text else data

    def _raise_for_file(self, result: Any, file: str) -> None:
        if result.status == "timeout":
            raise TimeoutError(f"file operation on {file} timed out")
        code = result.exit_code
        if code == 0:
            return
        if code == 2:
            raise FileNotFoundError(f"file not found: {file}")
        if code == 13:
            raise PermissionError(f"permission denied: {file}")
        if code == 21:
            raise IsADirectoryError(f"is a directory: {file}")
        if result.stdout_truncated:
            raise OutputLimitExceededError(f"{self.sandbox.limits.output_bytes} bytes", None)
        raise RuntimeError(
            f"file operation on {file} failed ({result.status}, exit {code}): {result.stderr[-500:]}"
        )


@sandboxenv(name="agentkit-bwrap")
class AgentkitBwrapSandboxEnvironment(AgentkitSandboxEnvironment):
    """agentkit's bubblewrap backend (namespaces, seccomp, rlimits, cgroups; no network)."""

    BACKEND = "bwrap"


@sandboxenv(name="agentkit-docker")
class AgentkitDockerSandboxEnvironment(AgentkitSandboxEnvironment):
    """agentkit's Docker-API backend (Docker or Podman's socket; ``DOCKER_HOST``)."""

    BACKEND = "docker"


__all__ = [
    "AgentkitBwrapSandboxEnvironment",
    "AgentkitDockerSandboxEnvironment",
    "AgentkitSandboxConfig",
    "AgentkitSandboxEnvironment",
]
