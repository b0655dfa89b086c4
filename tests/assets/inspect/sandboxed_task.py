"""An inspect_ai task whose solver writes and runs a file in the sandbox (``--sandbox agentkit-bwrap``)."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import Score, accuracy, scorer
from inspect_ai.solver import solver
from inspect_ai.util import sandbox


@solver
def run_in_sandbox():
    async def solve(state, generate):
        await sandbox().write_file("answer.py", "print(6 * 7)")
        result = await sandbox().exec(["python3", "answer.py"])
        state.store.set("out", result.stdout.strip())
        return state

    return solve


@scorer(metrics=[accuracy()])
def matches():
    async def score(state, target):
        return Score(
            value="C" if state.store.get("out") == target.text else "I", answer=state.store.get("out")
        )

    return score


@task
def sandboxed():
    return Task(dataset=[Sample(input="compute", target="42")], solver=run_in_sandbox(), scorer=matches())
