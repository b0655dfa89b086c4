"""A small env for testing the synthesis layer above the env protocol (the real envs live in envs/).

Tasks ask for ``a*b+c``. Tools: ``python`` (runs code in-process: a test fixture, not a sandbox) and
``add``. The reference solver multiplies with python, adds with ``add`` and answers ``\\boxed{N}``.
Options make it slow (``delay``) or lose its sandbox (``lose_sandbox``: task ids whose open fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re

from agentkit.client import GeneratorClient
from agentkit.env import Env, Episode, Tool, ToolOutput
from agentkit.errors import DataError, SandboxUnavailable, ToolError
from agentkit.jsonl import iter_json
from agentkit.records import Task, Verdict
from agentkit.registry import ENVS
from agentkit.toolcalls import render_tool_call

NAME = "toy-synth"
ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
PYTHON = {
    "type": "object",
    "properties": {"code": {"type": "string"}},
    "required": ["code"],
    "additionalProperties": False,
}
_BOXED = re.compile(r"\\boxed\{([^}]*)\}")


def make_task(number: int, a: int, b: int, c: int) -> Task:
    return Task(
        id=f"task-{number}",
        env=NAME,
        prompt=f"task-{number}: what is {a}*{b}+{c}?",
        meta={"a": a, "b": b, "c": c, "answer": a * b + c},
    )


class ToyEpisode(Episode):
    def __init__(self, task: Task, delay: float):
        super().__init__(task)
        self.delay = delay
        self.namespace: dict = {}

    @property
    def tools(self):
        return [
            Tool("python", "Run Python code; print what you need", PYTHON, self._python),
            Tool("add", "Add two integers", ADD, self._add),
        ]

    async def _python(self, code: str) -> ToolOutput:
        await asyncio.sleep(self.delay)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(code, self.namespace)  # test fixture, trusted code only
        except Exception as exc:  # the model sees its error
            return ToolOutput(
                content=out.getvalue() + f"Traceback (most recent call last):\n{type(exc).__name__}: {exc}",
                error=True,
            )
        return ToolOutput(content=out.getvalue() or "[no output]")

    async def _add(self, a: int, b: int) -> str:
        await asyncio.sleep(self.delay)
        if a < 0 or b < 0:
            raise ToolError("negative numbers are not supported")
        return str(a + b)

    async def verify(self, messages):
        text = messages[-1].content
        found = _BOXED.findall(text) or re.findall(r"-?\d+", text)
        answer = found[-1].strip() if found else ""
        expected = str(self.task.meta["answer"])
        passed = answer == expected
        return Verdict(passed=passed, reward=float(passed), reason=f"expected {expected}, got {answer!r}")


class ToySynthEnv(Env):
    name = NAME
    version = "3"

    def __init__(self, sandbox=None, delay: float = 0.0, lose_sandbox: list | None = None, n: int = 8):
        super().__init__(sandbox=sandbox)
        self.delay, self.lose_sandbox, self.n = delay, set(lose_sandbox or []), n
        self.opened = 0
        self.closed = False

    def tools(self, task):
        return [t.spec for t in ToyEpisode(task, 0).tools]

    async def open(self, task):
        self.opened += 1
        if task.id in self.lose_sandbox:
            raise SandboxUnavailable("sandbox pool lost its worker")
        return ToyEpisode(task, self.delay)

    def reference_solver(self, task):
        a, b, c = task.meta["a"], task.meta["b"], task.meta["c"]

        def solve():
            seen = yield (
                "<think>Plan: multiply with python, then add with the add tool.</think>"
                + render_tool_call("python", {"code": f"product = {a} * {b}\nprint(product)"})
            )
            product = int(seen[-1].content.strip())
            seen = yield render_tool_call("add", {"a": product, "b": c})
            yield f"<think>Reflection: the tools agree.</think>The answer is \\boxed{{{seen[-1].content.strip()}}}."

        return GeneratorClient(solve)

    def load_tasks(self, source):
        if source.source == "generated":
            count = source.n or self.n
            return [make_task(i, 3 + i % 7, 4 + (i * 5) % 11, 10 + i) for i in range(count)]
        if source.source == "jsonl":
            tasks = []
            for line, row in iter_json(source.path):
                try:
                    tasks.append(make_task(int(row["id"]), int(row["a"]), int(row["b"]), int(row["c"])))
                except (KeyError, TypeError, ValueError) as exc:
                    raise DataError(
                        f"bad task row ({type(exc).__name__}: {exc})", source.path, line
                    ) from None
            return tasks[: source.n] if source.n else tasks
        raise NotImplementedError(f"env '{NAME}' has no task source '{source.source}'")

    async def aclose(self):
        self.closed = True


def register(monkeypatch=None) -> None:
    """Make ``env=toy-synth`` work: the registry entry (undone by ``monkeypatch``, so other test
    directories never see this env) and the Hydra config group option."""
    from hydra.core.config_store import ConfigStore

    if monkeypatch is not None:
        monkeypatch.setitem(ENVS._entries, NAME, ToySynthEnv)
    elif NAME not in ENVS._entries:
        ENVS.register(NAME)(ToySynthEnv)
    ConfigStore.instance().store(group="env", name=NAME, node={"name": NAME})


def write_tasks(path, rows) -> str:
    with open(path, "w") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return str(path)
