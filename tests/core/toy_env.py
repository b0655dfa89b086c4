"""A small env for testing the layers above the env protocol (the real envs live in envs/)."""

from __future__ import annotations

from agentkit.client import GeneratorClient
from agentkit.env import Env, Episode, Tool
from agentkit.errors import SandboxUnavailable, ToolError, VerifierError
from agentkit.records import Task, Verdict
from agentkit.toolcalls import render_tool_call

ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


class AddEpisode(Episode):
    closed = 0

    def __init__(self, task: Task):
        super().__init__(task)
        self.calls = 0

    @property
    def tools(self):
        return [
            Tool("add", "Add two integers", ADD_SCHEMA, self._add),
            Tool("explode", "Lose the sandbox", {"type": "object", "properties": {}}, self._explode),
        ]

    def _add(self, a: int, b: int) -> str:
        self.calls += 1
        if a < 0 or b < 0:
            raise ToolError("negative numbers are not supported")
        return str(a + b)

    def _explode(self) -> str:
        raise SandboxUnavailable("sandbox lost")

    async def verify(self, messages):
        if self.task.meta.get("broken_verifier"):
            raise VerifierError("verifier crashed")
        answer = messages[-1].content.strip().split()[-1] if messages[-1].content.strip() else ""
        passed = answer == str(self.task.meta["answer"])
        return Verdict(
            passed=passed, reward=float(passed), reason=f"expected {self.task.meta['answer']}, got {answer!r}"
        )

    async def close(self):
        AddEpisode.closed += 1


class AddEnv(Env):
    name = "toy-add"

    def tools(self, task):
        return [t.spec for t in AddEpisode(task).tools]

    async def open(self, task):
        return AddEpisode(task)

    def reference_solver(self, task):
        a, b = task.meta["a"], task.meta["b"]

        def solve():
            observations = yield "<think>Plan: add with the tool.</think>" + render_tool_call(
                "add", {"a": a, "b": b}
            )
            yield f"The answer is {observations[0].content}"

        return GeneratorClient(solve)


def add_task(a: int = 2, b: int = 3, **meta) -> Task:
    return Task(
        id=f"add-{a}-{b}",
        env="toy-add",
        prompt=f"What is {a}+{b}?",
        meta={"a": a, "b": b, "answer": a + b} | meta,
    )
