"""Repository-level code tasks: a small Python project with an injected bug, bash and a file editor.

The workspace holds the project at ``/workspace/<project>``. ``bash`` keeps its state between calls
(working directory, variables, functions and aliases are saved to ``/workspace/.agentkit`` when a
command ends and restored before the next one; every call is a fresh process, so background jobs and
files outside ``/workspace`` do not survive it). ``edit`` views files with line numbers and edits them
by unique-match replacement, insertion or creation.

Verification copies the package's ``.py`` files out of the workspace into a fresh sandbox that holds
a pristine copy of the project (tests and configuration included), rejects patches that reach for the
test machinery (``suspicious_constructs``), and runs the suite there: every fail-to-pass and
pass-to-pass test must pass.
"""

from __future__ import annotations

import io
import json
import posixpath
import secrets
import shlex
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentkit.client import GeneratorClient
from agentkit.env import Tool, ToolOutput
from agentkit.envs.code.inject import Mutation, package_name, project_digest, project_files
from agentkit.envs.episode import SandboxEpisode
from agentkit.errors import SandboxUnavailable, ToolError, VerifierError
from agentkit.paths import atomic_write_text
from agentkit.records import Message, Task, Verdict
from agentkit.toolcalls import render_tool_call
from agentkit.tools import as_tool, spec_of, tool

if TYPE_CHECKING:
    from agentkit.envs.code.function import CodeSandboxes
    from agentkit.sandbox import Sandbox

WORKSPACE = "/workspace"
STATE_DIR = ".agentkit"
HARNESS_PATH = Path(__file__).with_name("pytest_harness.py")
TEST_TIMEOUT = 5
VIEW_LINES = 400

GUIDANCE = """You are working in a software repository inside a sandbox, with a bash tool and a file
editor. Explore the code, reproduce the problem by running the tests, locate the fault, fix it with
a small patch, and run the tests again to check the fix. When you are done, reply with a short
summary of the change and no tool call."""

SHELL_PRELUDE = r"""
__ak_state=/workspace/.agentkit
if [ -f "$__ak_state/env.sh" ]; then . "$__ak_state/env.sh" >/dev/null 2>&1; fi
cd "$(cat "$__ak_state/cwd" 2>/dev/null || echo /workspace)" 2>/dev/null || cd /workspace
__ak_save() {
  mkdir -p "$__ak_state"
  pwd > "$__ak_state/cwd"
  {
    for __ak_v in $(compgen -v); do
      case "$__ak_v" in
        BASH*|EUID|UID|PPID|SHELLOPTS|FUNCNAME|GROUPS|PIPESTATUS|HISTCMD|LINENO|RANDOM|SRANDOM|SECONDS|EPOCH*|COMP_*|DIRSTACK|OPTIND|OPTARG|OPTERR|IFS|PS1|PS2|PS4|PWD|OLDPWD|SHLVL|HOSTNAME|HOSTTYPE|MACHTYPE|OSTYPE|_|__ak_*) ;;
        *) declare -p "$__ak_v" 2>/dev/null ;;
      esac
    done
    declare -f
    alias -p
  } > "$__ak_state/env.sh.tmp" && mv "$__ak_state/env.sh.tmp" "$__ak_state/env.sh"
}
trap __ak_save EXIT
eval "$1"
"""

INITIAL_SHELL_ENV = "export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1\nexport PYTHONDONTWRITEBYTECODE=1\n"

SUSPICIOUS_NAMES = frozenset(
    {
        "_exit",
        "exit",
        "quit",
        "abort",
        "kill",
        "killpg",
        "modules",
        "builtins",
        "__builtins__",
        "__import__",
        "settrace",
        "setprofile",
        "gettrace",
        "gc",
        "inspect",
        "ctypes",
        "atexit",
        "signal",
        "faulthandler",
        "subprocess",
        "importlib",
        "pytest",
        "_pytest",
        "pluggy",
        "exec",
        "eval",
        "compile",
        "globals",
        "vars",
        "__globals__",
        "__code__",
        "__subclasses__",
        "__dict__",
        "__eq__",
        "__ne__",
        "_getframe",
        "f_back",
        "f_globals",
        "f_locals",
        "setattr",
        "delattr",
        "__setattr__",
        "__class__",
        "mro",
        "__mro__",
    }
)
"""Identifiers (and string constants) through which code can end a test run early, or reach the test
runner, the interpreter's internals, or comparisons. A fix of an injected one-line bug needs none of
them: a patch that adds any is rejected (existing uses in the project are fine)."""


@lru_cache(maxsize=1)
def harness_source() -> str:
    return HARNESS_PATH.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Project:
    """A Python project: one package (``pkg`` or ``src/pkg``) plus a pytest suite; shipped in
    ``envs/code/projects``, or any directory or git checkout (``env.tasks.source=repo``)."""

    name: str
    path: Path
    package: str
    digest: str

    @classmethod
    @lru_cache(maxsize=32)
    def load(cls, path: Path, package: str | None = None) -> Project:
        return cls(path.name, path, package or package_name(path), project_digest(path))

    def files(self) -> dict[str, str]:
        return project_files(self.path)

    def describe(self) -> str:
        """The one-line description from the project's pyproject.toml, if any."""
        import tomllib

        try:
            data = tomllib.loads((self.path / "pyproject.toml").read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return ""
        return str(data.get("project", {}).get("description", "")).strip()


def _tokens(source: str) -> list[str]:
    """Names in ``source``, plus string literals that spell a suspicious name (``getattr(os, "_exit")``)."""
    import ast
    import re

    words: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME:
                words.append(token.string)
            elif token.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(token.string)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, str) and value.strip() in SUSPICIOUS_NAMES:
                    words.append(value.strip())
    except (tokenize.TokenError, IndentationError, SyntaxError):
        words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source)
    return words


def suspicious_constructs(original: str, candidate: str) -> list[str]:
    """Suspicious names used more often in ``candidate`` than in ``original``."""
    before, after = _tokens(original), _tokens(candidate)
    return sorted(name for name in SUSPICIOUS_NAMES if after.count(name) > before.count(name))


# --------------------------------------------------------------------------------------------- test runs


@dataclass
class RunReport:
    """Outcome of one pytest session: per-test outcomes, or why there are none."""

    outcomes: dict[str, str]
    errors: list[dict[str, Any]]
    collect_errors: list[dict[str, Any]]
    tampered: list[str]
    finished: Any = None
    """The child's exit code, or ``"timeout"``."""

    @property
    def complete(self) -> bool:
        return bool(self.outcomes) or bool(self.collect_errors)


async def run_suite(
    sandbox: Sandbox,
    project_dir: str,
    variants: list[dict[str, Any]],
    *,
    run_timeout: float = 60.0,
    pytest_args: Sequence[str] = (),
) -> dict[str, RunReport | None]:
    """Run the project's suite once per variant (``{"id", "files"}``); None for a run with no report."""
    nonce = secrets.token_hex(16)
    stdin = nonce + "\n" + json.dumps(variants)
    budget = run_timeout * len(variants) + 30.0
    try:
        result = await sandbox.exec(
            [
                "python3",
                "-I",
                "-c",
                harness_source(),
                project_dir,
                str(TEST_TIMEOUT),
                str(run_timeout),
                json.dumps(list(pytest_args)),
                f"{STATE_DIR}-{nonce}.jsonl",
            ],
            stdin=stdin,
            timeout=budget,
        )
        try:
            written = (await sandbox.read_file(f"{STATE_DIR}-{nonce}.jsonl")).decode("utf-8", "replace")
        except (OSError, ToolError):
            written = ""
    except SandboxUnavailable as exc:
        raise VerifierError(f"the sandbox failed while running the tests: {exc}") from exc
    started = False
    reports: dict[str, RunReport | None] = {v["id"]: None for v in variants}
    finished: dict[str, Any] = {}
    for line in (written + "\n" + result.stdout).splitlines():
        if not line.startswith(nonce + " "):
            continue
        parts = line.split(" ", 3)
        if parts[1] == "started":
            started = True
        elif parts[1] == "report" and len(parts) == 4 and parts[2] in reports:
            data = json.loads(parts[3])
            reports[parts[2]] = RunReport(
                data["outcomes"], data["errors"], data["collect_errors"], data["tampered"]
            )
        elif parts[1] == "finished" and len(parts) == 4:
            finished[parts[2]] = json.loads(parts[3])
    if not started:
        raise VerifierError(
            f"the test harness did not start ({result.status.value}): {result.observation(limit=1500)}"
        )
    for run_id, report in reports.items():
        if report is not None:
            report.finished = finished.get(run_id)
    return reports


async def upload_project(sandbox: Sandbox, project: Project, files: dict[str, str] | None = None) -> None:
    for rel, text in (files or project.files()).items():
        await sandbox.write_file(f"{project.name}/{rel}", text)


# --------------------------------------------------------------------------------------------- episode


def task_prompt(project: Project, fail_to_pass: Sequence[str], test_command: str = "python -m pytest") -> str:
    shown = "\n".join(f"- {test}" for test in list(fail_to_pass)[:5])
    more = f"\n- ... and {len(fail_to_pass) - 5} more" if len(fail_to_pass) > 5 else ""
    about = f" ({project.describe()})" if project.describe() else ""
    return (
        f"The Python project `{project.name}`{about} is checked out at `{WORKSPACE}/{project.name}`. "
        f"Some of its tests fail:\n\n{shown}{more}\n\n"
        f"Find the bug in the library code (the `{project.package}` package) and fix it. Do not change the "
        "tests: the fix is checked against the original test suite. Run the tests with "
        f"`{test_command}` from the project directory."
    )


class RepoEpisode(SandboxEpisode):
    """A repository task: the buggy project in a sandbox, a stateful ``bash`` and an ``edit`` tool."""

    def __init__(self, task: Task, env: CodeSandboxes, project: Project):
        super().__init__(task)
        self._env = env
        self.project = project
        self.workdir = f"{WORKSPACE}/{project.name}"

    @property
    def tools(self) -> list[Tool]:
        return [as_tool(self.bash), as_tool(self.edit)]

    def _pool(self) -> Any:
        return self._env.pool(python=False)

    async def _prepare(self, sandbox: Any) -> None:
        """Lay out the buggy project and the shell's starting state."""
        mutation = Mutation.from_dict(self.task.meta["mutation"])
        files = self.project.files()
        files[mutation.file] = mutation.apply(files[mutation.file])
        await upload_project(sandbox, self.project, files)
        await sandbox.write_file(f"{STATE_DIR}/cwd", self.workdir + "\n")
        shell_env = INITIAL_SHELL_ENV
        if self.project.package.startswith("src/"):  # a src layout imports from src/, as if installed
            shell_env += f"export PYTHONPATH={self.workdir}/src\n"
        await sandbox.write_file(f"{STATE_DIR}/env.sh", shell_env)

    @tool
    async def bash(self, command: str) -> ToolOutput:
        """Run a bash command in the workspace. The working directory, variables, functions and aliases
        persist between calls; each call is a new process (no background jobs survive, and only files
        under /workspace are kept). Returns stdout, stderr and the exit code.

        Args:
            command: The bash command(s) to run
        """
        async with self._lock:
            sandbox = await self._workspace()
            result = await sandbox.exec(
                ["bash", "-c", SHELL_PRELUDE, "bash", command], timeout=self._env.command_timeout
            )
        return ToolOutput(
            content=result.observation(), error=result.status.value in ("timeout", "oom", "killed")
        )

    async def _cwd(self) -> str:
        sandbox = await self._workspace()
        try:
            cwd = (await sandbox.read_file(f"{STATE_DIR}/cwd")).decode("utf-8").strip()
        except (OSError, ToolError):
            return self.workdir
        return cwd if cwd.startswith(WORKSPACE) else self.workdir

    async def _resolve(self, path: str) -> str:
        """A workspace-relative path ('.' for the root); escapes are a ToolError."""
        if not path.strip():
            raise ToolError("path is empty")
        absolute = path if path.startswith("/") else posixpath.join(await self._cwd(), path)
        absolute = posixpath.normpath(absolute)
        if absolute != WORKSPACE and not absolute.startswith(WORKSPACE + "/"):
            raise ToolError(f"{path} is outside {WORKSPACE}")
        return posixpath.relpath(absolute, WORKSPACE)

    async def _read(self, rel: str) -> str:
        sandbox = await self._workspace()
        try:
            data = await sandbox.read_file(rel)
        except FileNotFoundError:
            raise ToolError(f"{WORKSPACE}/{rel} does not exist") from None
        except OSError as exc:
            raise ToolError(f"{WORKSPACE}/{rel} cannot be read ({exc.strerror or exc})") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{WORKSPACE}/{rel} is not a UTF-8 text file") from None

    @staticmethod
    async def _write(sandbox: Any, rel: str, text: str) -> None:
        try:
            await sandbox.write_file(rel, text)
        except OSError as exc:
            raise ToolError(f"{WORKSPACE}/{rel} cannot be written ({exc.strerror or exc})") from None

    @tool(
        params={
            "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "insert_line": {"type": "integer", "minimum": 0},
        }
    )
    async def edit(
        self,
        command: Literal["view", "str_replace", "insert", "create"],
        path: str,
        view_range: list[int] | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: int | None = None,
        file_text: str | None = None,
    ) -> ToolOutput:
        """View and edit files. 'view' shows a file with line numbers (optionally view_range [start, end],
        end -1 for the end) or lists a directory; 'str_replace' replaces old_str, which must occur
        exactly once, with new_str; 'insert' puts new_str after line insert_line (0 for the top);
        'create' writes a new file with file_text. Relative paths start at the shell's current
        directory.

        Args:
            path: File or directory, absolute (/workspace/...) or relative
        """
        async with self._lock:
            sandbox = await self._workspace()
            rel = await self._resolve(path)
            shown = f"{WORKSPACE}/{rel}" if rel != "." else WORKSPACE
            if command == "view":
                return ToolOutput(content=await self._view(rel, shown, view_range))
            if rel == ".":
                raise ToolError(f"{command} needs a file path")
            if command == "create":
                if file_text is None:
                    raise ToolError("create needs file_text")
                if await self._exists(rel):
                    raise ToolError(f"{shown} already exists; use str_replace or insert to change it")
                await self._write(sandbox, rel, file_text)
                return ToolOutput(content=f"Created {shown} ({len(file_text.splitlines())} lines).")
            text = await self._read(rel)
            if command == "str_replace":
                if old_str is None or old_str == "":
                    raise ToolError("str_replace needs a non-empty old_str")
                count = text.count(old_str)
                if count == 0:
                    raise ToolError(
                        f"old_str was not found in {shown}; view the file and copy the text exactly "
                        "(whitespace included)"
                    )
                if count > 1:
                    lines = [text[:i].count("\n") + 1 for i in _find_all(text, old_str)]
                    raise ToolError(
                        f"old_str occurs {count} times in {shown} (lines {', '.join(map(str, lines))}); "
                        "include more surrounding lines to make it unique"
                    )
                start_line = text[: text.index(old_str)].count("\n") + 1
                updated = text.replace(old_str, new_str or "", 1)
                await self._write(sandbox, rel, updated)
                span = (new_str or "").count("\n") + 1
                return ToolOutput(
                    content=f"Edited {shown}. The changed region now reads:\n"
                    + _numbered(updated, start_line - 3, start_line + span + 2)
                )
            if command == "insert":
                if insert_line is None or new_str is None:
                    raise ToolError("insert needs insert_line and new_str")
                lines = text.split("\n")
                total = len(lines) - (1 if text.endswith("\n") else 0)
                if insert_line > total:
                    raise ToolError(f"insert_line {insert_line} is past the end of {shown} ({total} lines)")
                block = new_str if new_str.endswith("\n") else new_str + "\n"
                head = "".join(line + "\n" for line in lines[:insert_line])
                updated = head + block + text[len(head) :]
                await self._write(sandbox, rel, updated)
                return ToolOutput(
                    content=f"Inserted {block.count(chr(10))} line(s) into {shown}:\n"
                    + _numbered(updated, insert_line - 2, insert_line + block.count("\n") + 3)
                )
            raise ToolError(f"unknown edit command {command!r}")

    async def _exists(self, rel: str) -> bool:
        sandbox = await self._workspace()
        result = await sandbox.exec(["test", "-e", f"{WORKSPACE}/{rel}"], timeout=30)
        return result.ok

    async def _view(self, rel: str, shown: str, view_range: list[int] | None) -> str:
        sandbox = await self._workspace()
        listing = await sandbox.exec(
            [
                "bash",
                "-c",
                'if [ -d "$1" ]; then find "$1" -maxdepth 2 -not -path "*/.*" -not -name "__pycache__" '
                "| sort | head -n 300; else exit 3; fi",
                "bash",
                f"{WORKSPACE}/{rel}" if rel != "." else WORKSPACE,
            ],
            timeout=30,
        )
        if listing.ok:
            return f"Files and directories in {shown} (2 levels):\n{listing.stdout.rstrip()}"
        text = await self._read(rel)
        total = len(text.splitlines())
        start, end = 1, total
        if view_range:
            start, end = view_range
            end = total if end == -1 else end
            if start < 1 or start > max(total, 1) or end < start:
                raise ToolError(f"view_range {view_range} does not fit {shown} ({total} lines)")
        if end - start + 1 > VIEW_LINES:
            body = _numbered(text, start, start + VIEW_LINES - 1)
            return f"{body}\n[... showing lines {start}-{start + VIEW_LINES - 1} of {total}; use view_range]"
        return _numbered(text, start, end)

    async def _candidate_files(self) -> dict[str, str] | str:
        """The package's .py files in the workspace, or why they cannot be read."""
        package_dir = f"{WORKSPACE}/{self.project.name}/{self.project.package}"
        sandbox = await self._workspace()
        listing = await sandbox.exec(
            ["find", package_dir, "-type", "f", "-name", "*.py", "-not", "-path", "*/__pycache__/*"],
            timeout=60,
        )
        if not listing.ok:
            return f"the package directory could not be listed: {listing.observation(limit=500)}"
        files: dict[str, str] = {}
        prefix = f"{WORKSPACE}/{self.project.name}/"
        for path in sorted(listing.stdout.splitlines()):
            rel = path[len(prefix) :]
            try:
                files[rel] = (await sandbox.read_file(path)).decode("utf-8")
            except (ToolError, OSError, UnicodeDecodeError) as exc:
                return f"{rel} could not be read: {exc}"
        return files

    async def verify(self, messages: Sequence[Message]) -> Verdict:
        async with self._lock:
            candidate = await self._candidate_files()
        if isinstance(candidate, str):
            return Verdict(passed=False, reward=0.0, reason=candidate)
        return await verify_patch(self._env, self.project, self.task.meta, candidate)

    def feedback(self, verdict: Verdict) -> str:
        lines = [
            f"The fix was checked against the original test suite and it is not complete: {verdict.reason}."
        ]
        for error in verdict.details.get("errors", [])[:2]:
            lines.append(f"{error['test']}:\n{error['message'][-1200:]}")
        lines.append("Keep working on the fix.")
        return "\n".join(lines)


BASH_TOOL = spec_of(RepoEpisode.bash)
EDIT_TOOL = spec_of(RepoEpisode.edit)


def _find_all(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start >= 0:
        found.append(start)
        start = text.find(needle, start + 1)
    return found


def _numbered(text: str, start: int, end: int) -> str:
    lines = text.splitlines()
    start, end = max(1, start), min(len(lines), end)
    return "\n".join(f"{n:6d}\t{lines[n - 1]}" for n in range(start, end + 1))


async def verify_patch(
    env: CodeSandboxes, project: Project, meta: dict[str, Any], candidate: dict[str, str]
) -> Verdict:
    """Run the pristine suite against the candidate's package files in a fresh sandbox."""
    fail_to_pass, pass_to_pass = list(meta["fail_to_pass"]), list(meta["pass_to_pass"])
    if not fail_to_pass:
        raise VerifierError(f"task for {project.name} has no fail-to-pass tests")
    pristine = project.files()
    if not any(rel.startswith(project.package + "/") for rel in candidate):
        return Verdict(
            passed=False, reward=0.0, reason=f"the {project.package} package has no Python files left"
        )
    flagged = {
        rel: hits
        for rel, text in candidate.items()
        if (hits := suspicious_constructs(pristine.get(rel, ""), text))
    }
    if flagged:
        shown = "; ".join(f"{rel}: {', '.join(hits)}" for rel, hits in flagged.items())
        return Verdict(
            passed=False,
            reward=0.0,
            reason=f"the patch adds constructs that can tamper with the test run ({shown})",
            details={"suspicious": flagged},
        )
    removed = [
        rel
        for rel in pristine
        if rel.startswith(project.package + "/") and rel.endswith(".py") and rel not in candidate
    ]
    files = {rel: text for rel, text in pristine.items() if rel not in removed} | candidate
    async with env.pool(python=False).sandbox() as fresh:
        await upload_project(fresh, project, files)
        report = (
            await run_suite(
                fresh,
                project.name,
                [{"id": "candidate", "files": {}}],
                pytest_args=meta.get("pytest_args", ()),
            )
        )["candidate"]
    return verdict_from_report(report, fail_to_pass, pass_to_pass)


def verdict_from_report(
    report: RunReport | None, fail_to_pass: list[str], pass_to_pass: list[str]
) -> Verdict:
    if report is None:
        return Verdict(
            passed=False,
            reward=0.0,
            reason="the test run ended without a report (the code exited early or crashed pytest)",
        )
    if report.tampered:
        return Verdict(
            passed=False,
            reward=0.0,
            reason="the code under test replaced parts of the test runner: " + ", ".join(report.tampered[:5]),
            details={"tampered": report.tampered},
        )
    failing_f2p = [t for t in fail_to_pass if report.outcomes.get(t) != "passed"]
    failing_p2p = [t for t in pass_to_pass if report.outcomes.get(t) != "passed"]
    ok = not failing_f2p and not failing_p2p
    details = {
        "fail_to_pass": {"passed": len(fail_to_pass) - len(failing_f2p), "total": len(fail_to_pass)},
        "pass_to_pass": {"passed": len(pass_to_pass) - len(failing_p2p), "total": len(pass_to_pass)},
        "failing": (failing_f2p + failing_p2p)[:20],
        "errors": report.errors[:3],
    }
    if report.collect_errors:
        details["collect_errors"] = report.collect_errors[:2]
    if ok:
        reason = f"all {len(fail_to_pass)} fail-to-pass and {len(pass_to_pass)} pass-to-pass tests pass"
    else:
        parts = []
        if failing_f2p:
            parts.append(
                f"{len(failing_f2p)} of {len(fail_to_pass)} fail-to-pass tests still fail "
                f"({', '.join(failing_f2p[:3])})"
            )
        if failing_p2p:
            parts.append(
                f"{len(failing_p2p)} of {len(pass_to_pass)} pass-to-pass tests now fail "
                f"({', '.join(failing_p2p[:3])})"
            )
        reason = "; ".join(parts)
    return Verdict(passed=ok, reward=1.0 if ok else 0.0, reason=reason, details=details)


# --------------------------------------------------------------------------------------------- reference


def reference_solver(task: Task) -> GeneratorClient:
    """Explore with bash, run a failing test, view the faulty code, undo the bug with edit, rerun, answer."""
    meta = task.meta
    mutation = Mutation.from_dict(meta["mutation"])
    project, package = meta["project"], meta["package"]
    workdir = f"{WORKSPACE}/{project}"
    failing = meta["fail_to_pass"][0]
    path = f"{workdir}/{mutation.file}"
    old_str, new_str = mutation.new, mutation.old
    symbol = (mutation.function or "").split(".")[-1]
    window = [max(1, mutation.line - 8), mutation.line + 8]

    def solve():
        layout = f"ls {package} tests" if meta.get("tests_dir", "tests") == "tests" else f"ls {package}"
        yield (
            "<think>Analysis: some tests of the project fail, so the library code has a bug.\n"
            "Plan: look at the layout, run one failing test to see the error, find the code it exercises, "
            "fix it, then run the whole suite.</think>\n"
            + render_tool_call("bash", {"command": f"cd {workdir} && ls && {layout}"})
        )
        yield (
            "<think>Reproduce the failure first.</think>\n"
            + render_tool_call(
                "bash", {"command": f"python -m pytest -q -x {shlex.quote(failing)} 2>&1 | tail -n 25"}
            )
        )
        target = f"def {symbol}" if symbol else mutation.file.rsplit("/", 1)[-1]
        grep = f"grep -rn '{target}' {package}" if symbol else f"ls {package}"
        yield (
            "<think>Reflection: the failure points into the library. Locate the function involved.</think>\n"
            + render_tool_call("bash", {"command": grep})
        )
        yield (
            "<think>Read the code around it.</think>\n"
            + render_tool_call("edit", {"command": "view", "path": path, "view_range": window})
        )
        yield (
            "<think>Reflection: this line is wrong for what the tests expect; restore the intended logic "
            "with a minimal edit.</think>\n"
            + render_tool_call(
                "edit", {"command": "str_replace", "path": path, "old_str": old_str, "new_str": new_str}
            )
        )
        observations = yield (
            "<think>Check the fix against the whole suite.</think>\n"
            + render_tool_call("bash", {"command": "python -m pytest -q 2>&1 | tail -n 5"})
        )
        summary = observations[-1].content.strip().splitlines()[-1] if observations else ""
        yield (
            f"<think>Reflection: the suite now reports: {summary}</think>\n"
            f"Summary: fixed the bug in `{mutation.file}`"
            + (f" (in `{mutation.function}`)" if mutation.function else "")
            + f" around line {mutation.line}; the previously failing tests pass and the rest still pass."
        )

    return GeneratorClient(solve, name="reference")


# --------------------------------------------------------------------------------------------- generation


@dataclass
class MutantCheck:
    """Whether the project's tests catch a mutant, and which tests tell the bug apart."""

    valid: bool
    reason: str
    fail_to_pass: list[str]
    pass_to_pass: list[str]


def _check_from(report: RunReport | None, baseline: RunReport) -> MutantCheck:
    if report is None:
        return MutantCheck(False, "the test run produced no report", [], [])
    if report.finished == "timeout" or any("Timeout" in e.get("message", "") for e in report.errors):
        return MutantCheck(False, "a test timed out on the mutant", [], [])
    failing = sorted(t for t in baseline.outcomes if report.outcomes.get(t) != "passed")
    passing = sorted(t for t in baseline.outcomes if report.outcomes.get(t) == "passed")
    if not failing:
        return MutantCheck(False, "no test catches the mutant", [], passing)
    return MutantCheck(True, f"{len(failing)} test(s) catch the mutant", failing, passing)


_BASELINES: dict[tuple[str, str], RunReport] = {}


async def check_mutants(
    project: Project, mutations: Sequence[Mutation], sandbox_factory: Any, pytest_args: Sequence[str] = ()
) -> dict[str, MutantCheck]:
    """Run the suite on each mutant (and once on the pristine project) in one sandbox; keep what tests catch."""
    files = project.files()
    key = (project.digest, hash_text(harness_source() + json.dumps(list(pytest_args))))
    variants = [] if key in _BASELINES else [{"id": "baseline", "files": {}}]
    variants += [{"id": m.id, "files": {m.file: m.apply(files[m.file])}} for m in mutations]
    async with sandbox_factory() as sandbox:
        await upload_project(sandbox, project, files)
        reports = await run_suite(sandbox, project.name, variants, pytest_args=pytest_args)
    if key not in _BASELINES:
        baseline = reports["baseline"]
        passing = {t: v for t, v in (baseline.outcomes if baseline else {}).items() if v == "passed"}
        if baseline is None or not passing:
            detail = (
                f"{len(baseline.outcomes)} collected, none passed; first collection error: "
                f"{(baseline.collect_errors or [{}])[0].get('message', '-')[:200]}"
                if baseline
                else "no report"
            )
            raise VerifierError(
                f"no test of the pristine project {project.name} passes in the sandbox ({detail})"
            )
        # Tests that fail on the pristine project (missing optional dependencies, network) are left out.
        _BASELINES[key] = RunReport(passing, [], [], [], baseline.finished)
    return {m.id: _check_from(reports[m.id], _BASELINES[key]) for m in mutations}


class MutantCache:
    """Validation results by (project digest, mutation id), in memory and optionally on disk."""

    _memory: dict[tuple[str, str, str], MutantCheck] = {}

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.version = hash_text(harness_source())

    def _file(self, project: Project) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{project.name}-{project.digest}-{self.version}.json"

    def get(self, project: Project, mutation_id: str) -> MutantCheck | None:
        key = (project.digest, mutation_id, self.version)
        if key not in self._memory:
            self._load(project)
        return self._memory.get(key)

    def _load(self, project: Project) -> None:
        path = self._file(project)
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            for mutation_id, item in data.items():
                self._memory.setdefault((project.digest, mutation_id, self.version), MutantCheck(**item))
        except (OSError, ValueError, TypeError):
            return  # an unreadable cache is only a slower start

    def put(self, project: Project, results: dict[str, MutantCheck]) -> None:
        for mutation_id, check in results.items():
            self._memory[(project.digest, mutation_id, self.version)] = check
        path = self._file(project)
        if path is None:
            return
        known = {
            mid: vars(c)
            for (digest, mid, version), c in self._memory.items()
            if digest == project.digest and version == self.version
        }
        try:
            atomic_write_text(path, json.dumps(known, sort_keys=True), fsync=False)
        except OSError:
            pass


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


REPO_ABILITIES = ("exploration", "localisation", "patching", "testing", "env_comprehension")
"""What a repository fix exercises: look around with bash, find the fault, edit it, run the tests; a
reflected mistake adds ``self_correction``."""


def mutant_task(
    project: Project,
    mutation: Mutation,
    check: MutantCheck,
    env_name: str,
    external: bool = False,
    test_command: str | None = None,
    pytest_args: Sequence[str] = (),
) -> Task:
    meta = {
        "kind": "repo",
        "source": "repo" if external else "generated",
        "project": project.name,
        "package": project.package,
        "project_digest": project.digest,
        "bug_kind": mutation.operator,
        "mutation": mutation.to_dict(),
        "fail_to_pass": check.fail_to_pass,
        "pass_to_pass": check.pass_to_pass,
    }
    if external:  # a user's repository: the episode and the verifier read it from where it is
        meta |= {
            "project_path": str(project.path.resolve()),
            "tests_dir": "tests" if (project.path / "tests").is_dir() else "",
            "pytest_args": list(pytest_args),
        }
    prompt = task_prompt(project, check.fail_to_pass, test_command or "python -m pytest")
    return Task(
        id=f"{project.name}-{mutation.id}",
        env=env_name,
        prompt=prompt,
        meta=meta,
        abilities=list(REPO_ABILITIES),
    )
