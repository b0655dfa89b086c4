"""Harbor task directories as code-env tasks (``env=code env.tasks.source=harbor env.tasks.path=DIR``).

A Harbor task is a directory (Harbor's published layout, also Terminal-Bench 2's)::

    instruction.md        the prompt
    task.toml             version, [metadata] (difficulty, category, tags...), [verifier] timeout_sec,
                          [agent] timeout_sec, [environment] (build_timeout_sec, cpus, memory_mb...)
    environment/          the Docker build context (Dockerfile + files it COPYs)
    tests/test.sh         the verifier: run after the agent, writes /logs/verifier/reward.txt (or reward.json)
    solution/solve.sh     the oracle solution (optional)

``DIR`` is one task directory or a directory of them. In agentkit the episode runs in the code env's
sandbox (bwrap or docker) with the ``bash`` and ``edit`` tools of repository tasks. The image is not
built: the Dockerfile's ``WORKDIR`` and ``COPY``/``ADD`` of local files are applied to the workspace,
its ``RUN`` lines are not (they are listed in ``task.meta`` so a task that needs them is visible;
use a sandbox image that already has what they install). Harbor's fixed container paths live in the
workspace: ``WORKDIR`` (``/app`` by default) -> ``/workspace/app``, ``/tests``, ``/solution``,
``/logs`` -> ``/workspace/.harbor/...``; the instruction and the scripts are rewritten accordingly.

Verification is the task's own ``tests/test.sh``, copied in only after the agent finished and run in
the same sandbox; its reward file is the reward (passed when it is >= 1). A script that writes no
reward is a verifier error, never a silent 0. The reference solver runs ``solution/solve.sh``
through the ``bash`` tool, like an agent would.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit.client import GeneratorClient
from agentkit.config import TaskSourceConfig
from agentkit.errors import ConfigError, DataError, VerifierError
from agentkit.records import Message, Task, Verdict
from agentkit.toolcalls import render_tool_call

WORKSPACE = "/workspace"
HARBOR_DIR = f"{WORKSPACE}/.harbor"
REQUIRED = ("instruction.md", "task.toml", "tests/test.sh")
HIDDEN = ("tests", "solution")
"""Copied into the sandbox only when they are needed (verification, the reference solver)."""


def is_task_dir(path: Path) -> bool:
    return (path / "instruction.md").is_file() and (path / "task.toml").is_file()


def task_dirs(root: str | Path) -> list[Path]:
    """``root`` itself when it is a task directory, else its task subdirectories (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"env.tasks.path: {root} is not a directory of Harbor tasks")
    if is_task_dir(root):
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and is_task_dir(p))
    if not found:
        raise ConfigError(
            f"env.tasks.path: no Harbor task directories (instruction.md + task.toml) in {root}"
        )
    return found


def parse_dockerfile(text: str) -> dict[str, Any]:
    """``WORKDIR`` (the last one), local ``COPY``/``ADD`` pairs, and the ``RUN`` lines not applied."""
    workdir, copies, runs = "/app", [], []
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "WORKDIR":
            value = rest.strip()
            workdir = value if value.startswith("/") else f"{workdir.rstrip('/')}/{value}"
        elif word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            if len(parts) >= 2 and not any("://" in p for p in parts):
                copies.append([parts[:-1], parts[-1]])
        elif word == "RUN":
            runs.append(rest.strip())
    return {"workdir": workdir, "copies": copies, "runs": runs}


def path_mapping(workdir: str) -> list[tuple[str, str]]:
    """Harbor container paths -> workspace paths, longest first."""
    pairs = [
        ("/logs", f"{HARBOR_DIR}/logs"),
        ("/tests", f"{HARBOR_DIR}/tests"),
        ("/solution", f"{HARBOR_DIR}/solution"),
        (workdir.rstrip("/") or "/app", f"{WORKSPACE}/app"),
    ]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def map_paths(text: str, mapping: Sequence[tuple[str, str]]) -> str:
    """Rewrite absolute Harbor paths (``/tests/x``, ``cd /app``) in ``text``; other paths are left alone."""
    for old, new in mapping:
        text = re.sub(rf"(?<![\w./-]){re.escape(old)}(?=$|[/\s\"'`;:)|&>]|$)", new, text, flags=re.MULTILINE)
    return text


def to_workspace(path: str, workdir: str) -> str:
    """A Dockerfile destination as a workspace-relative path."""
    if not path.startswith("/"):
        path = f"{workdir.rstrip('/')}/{path}"
    mapped = map_paths(path, path_mapping(workdir))
    if not mapped.startswith(WORKSPACE + "/"):
        return ""  # outside anything the workspace mirrors
    return mapped[len(WORKSPACE) + 1 :]


def load_task(path: Path, env_name: str) -> Task:
    """One Harbor task directory as a code-env task (``meta.kind = "harbor"``)."""
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise DataError(f"not a Harbor task directory: missing {', '.join(missing)}", str(path))
    try:
        config = tomllib.loads((path / "task.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"task.toml is not valid TOML: {exc}", str(path / "task.toml")) from None
    dockerfile = path / "environment" / "Dockerfile"
    docker = (
        parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
        if dockerfile.is_file()
        else {"workdir": "/app", "copies": [], "runs": []}
    )
    workdir = docker["workdir"]
    instruction = (path / "instruction.md").read_text(encoding="utf-8").strip()
    metadata = config.get("metadata") or {}
    verifier = config.get("verifier") or {}
    agent = config.get("agent") or {}
    prompt = map_paths(instruction, path_mapping(workdir))
    if f"{WORKSPACE}/app" not in prompt:
        prompt += f"\n\n(Your working directory is {WORKSPACE}/app.)"
    return Task(
        id=path.name,
        env=env_name,
        prompt=prompt,
        meta={
            "kind": "harbor",
            "family": str(metadata.get("category") or "harbor"),
            "source": "harbor",
            "harbor": {
                "path": str(path.resolve()),
                "version": str(config.get("version", "")),
                "workdir": workdir,
                "metadata": metadata,
                "verifier_timeout": float(verifier.get("timeout_sec", 600.0)),
                "agent_timeout": float(agent.get("timeout_sec", 0.0) or 0.0),
                "environment": config.get("environment") or {},
                "copies": docker["copies"],
                "ignored_run_lines": docker["runs"],
                "has_solution": (path / "solution" / "solve.sh").is_file(),
            },
        },
    )


def load_harbor_tasks(source: TaskSourceConfig, env_name: str) -> list[Task]:
    """The tasks of ``source.path`` (split and sampled like every source)."""
    from agentkit.envs.tasks import select

    if not source.path:
        raise ConfigError(
            "env.tasks.path is required for env.tasks.source=harbor (a Harbor task dir or a dir of them)"
        )
    return select([load_task(p, env_name) for p in task_dirs(source.path)], source)


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def upload_environment(sandbox: Any, task: Task) -> None:
    """The Dockerfile's local COPY/ADD sources into the workspace (or the whole context when it has none)."""
    harbor = task.meta["harbor"]
    context = Path(harbor["path"]) / "environment"
    workdir = harbor["workdir"]
    await sandbox.write_file("app/.keep", b"")
    if not context.is_dir():
        return
    copies = harbor["copies"] or [[[p.name for p in context.iterdir() if p.name != "Dockerfile"], "."]]
    for sources, dest in copies:
        target = to_workspace(dest, workdir)
        if not target:
            continue
        for name in sources:
            source = (context / name).resolve()
            if not source.is_relative_to(context.resolve()) or not source.exists():
                continue
            files = [source] if source.is_file() else _files_under(source)
            into_dir = dest.endswith("/") or dest == "." or len(sources) > 1
            for file in files:
                if source.is_file():
                    rel = f"{target}/{source.name}" if into_dir else target
                else:
                    rel = f"{target}/{file.relative_to(source)}"
                await sandbox.write_file(rel, file.read_bytes())


async def upload_hidden(sandbox: Any, task: Task, name: str) -> None:
    """``tests/`` or ``solution/`` into ``.harbor/<name>``, scripts rewritten to the workspace paths."""
    harbor = task.meta["harbor"]
    root = Path(harbor["path"]) / name
    mapping = path_mapping(harbor["workdir"])
    for file in _files_under(root):
        data = file.read_bytes()
        if file.suffix in (".sh", ".py", ".bash", "") and b"\0" not in data:
            data = map_paths(data.decode("utf-8", errors="surrogateescape"), mapping).encode(
                "utf-8", errors="surrogateescape"
            )
        await sandbox.write_file(f".harbor/{name}/{file.relative_to(root)}", data)


def read_reward(text: str, kind: str) -> float:
    if kind == "json":
        value = json.loads(text)
        value = value.get("reward", next(iter(value.values()), None)) if isinstance(value, dict) else value
    else:
        value = text.strip()
    if not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


async def verify_in_sandbox(sandbox: Any, task: Task) -> Verdict:
    """Run the task's ``tests/test.sh`` in ``sandbox`` and read its reward."""
    harbor = task.meta["harbor"]
    await upload_hidden(sandbox, task, "tests")
    await sandbox.exec(
        ["bash", "-c", f"rm -rf {HARBOR_DIR}/logs/verifier && mkdir -p {HARBOR_DIR}/logs/verifier"]
    )
    result = await sandbox.exec(
        ["bash", f"{HARBOR_DIR}/tests/test.sh"], cwd="app", timeout=harbor["verifier_timeout"]
    )
    details = {
        "exit_code": result.exit_code,
        "status": str(result.status),
        "output": (result.stdout + ("\n[stderr]\n" + result.stderr if result.stderr else ""))[-2000:],
    }
    for name, kind in (("reward.txt", "text"), ("reward.json", "json")):
        try:
            raw = (await sandbox.read_file(f".harbor/logs/verifier/{name}")).decode("utf-8")
        except Exception:
            continue
        try:
            reward = read_reward(raw, kind)
        except (ValueError, TypeError, StopIteration):
            raise VerifierError(
                f"task {task.id}: tests/test.sh wrote an unreadable {name}: {raw[:80]!r}"
            ) from None
        passed = reward >= 1.0
        reason = f"tests/test.sh: reward {reward:g}" + ("" if passed else f" (exit {result.exit_code})")
        return Verdict(passed=passed, reward=reward, reason=reason, details=details)
    if str(result.status) == "timeout":
        return Verdict(
            passed=False,
            reward=0.0,
            reason=f"tests/test.sh timed out after {harbor['verifier_timeout']:g} s",
            details=details,
        )
    raise VerifierError(
        f"task {task.id}: tests/test.sh wrote no reward.txt/reward.json "
        f"(exit {result.exit_code}): {details['output'][-300:]}"
    )


def reference_solver(task: Task) -> GeneratorClient | None:
    """Run ``solution/solve.sh`` with the bash tool (written into the workspace with a heredoc)."""
    harbor = task.meta["harbor"]
    script = Path(harbor["path"]) / "solution" / "solve.sh"
    if not script.is_file():
        return None
    body = map_paths(script.read_text(encoding="utf-8"), path_mapping(harbor["workdir"]))
    marker = "AGENTKIT_HARBOR_SOLUTION_EOF"
    command = (
        f"mkdir -p {HARBOR_DIR}/solution && cat > {HARBOR_DIR}/solution/solve.sh <<'{marker}'\n{body}\n"
        f"{marker}\ncd {WORKSPACE}/app && bash {HARBOR_DIR}/solution/solve.sh"
    )

    def solve():
        observations = yield (
            "<think>Plan: the task ships a reference solution script; run it in the working "
            "directory.</think>\n" + render_tool_call("bash", {"command": command})
        )
        tail = observations[-1].content.strip().splitlines()[-1:] if observations else []
        yield (
            "<think>Reflection: the solution script ran"
            + (f"; its last output line: {tail[0][:200]}" if tail else "")
            + ".</think>\nDone."
        )

    return GeneratorClient(solve, name="reference")


class HarborEpisode:
    """Factory for the episode class, built on the repository episode's ``bash`` and ``edit`` tools."""

    @staticmethod
    def open(task: Task, env: Any) -> Any:
        from agentkit.envs.code.repo import INITIAL_SHELL_ENV, STATE_DIR, RepoEpisode
        from agentkit.envs.episode import SandboxEpisode

        class _HarborEpisode(RepoEpisode):
            def __init__(self, task: Task, env: Any):
                SandboxEpisode.__init__(self, task)
                self._env = env
                self.project = None
                self.workdir = f"{WORKSPACE}/app"

            async def _prepare(self, sandbox: Any) -> None:
                await upload_environment(sandbox, self.task)
                await sandbox.write_file(f"{STATE_DIR}/cwd", self.workdir + "\n")
                await sandbox.write_file(f"{STATE_DIR}/env.sh", INITIAL_SHELL_ENV)

            async def verify(self, messages: Sequence[Message]) -> Verdict:
                async with self._lock:
                    sandbox = await self._workspace()
                    return await verify_in_sandbox(sandbox, self.task)

            def feedback(self, verdict: Verdict) -> str:
                output = (verdict.details or {}).get("output", "")
                return (
                    f"The task's tests were run and they do not pass: {verdict.reason}.\n{output[-1200:]}\n"
                    "Keep working."
                )

        return _HarborEpisode(task, env)


__all__ = [
    "HarborEpisode",
    "load_harbor_tasks",
    "load_task",
    "map_paths",
    "parse_dockerfile",
    "reference_solver",
    "task_dirs",
    "verify_in_sandbox",
]
