"""Answer extraction against gaming, math-verify in killable workers, and the task generator."""

from __future__ import annotations

import asyncio
import threading

import psutil
import pytest

from agentkit.envs.math.generator import GENERATORS, LEVELS, kinds_for, make_task
from agentkit.envs.math.verify import HardTimeoutPool, MathVerifier, extract_answer, split_assignments
from agentkit.errors import ConfigError, VerifierError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so the answer is \\boxed{42}.", "42"),
        ("first \\boxed{1}, no wait: \\boxed{42}", "42"),  # last box wins
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("$\\boxed{x^{2}}$", "x^{2}"),
        ("\\boxed 7 is it", "7"),
        ("\\fbox{9}", "9"),
        ("<think>it is \\boxed{42}</think>I am not sure.", None),  # reasoning is not an answer
        ("<think>\\boxed{1}</think>Answer: \\boxed{2}", "2"),
        ("```python\nprint('\\\\boxed{42}')\n```\nSee the code.", None),  # code output is not an answer
        ("Run `\\boxed{42}` to see.", None),
        ("<tool_response>\\boxed{42}</tool_response> done", None),  # pasted tool output
        ("\\boxed{42", None),  # unbalanced
        ("\\boxed{}", None),
        ("no answer here", None),
    ],
)
def test_boxed_extraction(text, expected):
    assert extract_answer(text) == expected


def test_configurable_conventions():
    text = "Reasoning...\n<answer>12</answer>\nFinal answer: 13"
    assert extract_answer(text, ["answer_tag"]) == "12"
    assert extract_answer(text, ["final_line"]) == "13"
    assert extract_answer(text, ["boxed", "final_line"]) == "13"  # first convention that finds one
    assert extract_answer("it is 4, then 5.", ["last_number"]) == "5"
    with pytest.raises(ValueError, match="unknown answer convention"):
        extract_answer("x", ["nonsense"])


def test_system_answers_are_split_per_variable():
    assert split_assignments("x = 2, y = -3", ["x", "y"]) == {"x": "2", "y": "-3"}
    assert split_assignments("y=-3 \\text{ and } x=2", ["x", "y"]) == {"x": "2", "y": "-3"}
    assert split_assignments("(2, -3)", ["x", "y"]) == {"x": "2", "y": "-3"}
    assert split_assignments("x = 2", ["x", "y"]) is None
    assert split_assignments("x = 2, x = 3", ["x", "y"]) is None


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(max_chars=60)
    yield v
    v.close()


CASES = [
    # (final message, gold, variables, passes)
    ("\\boxed{1651}", "1651", None, True),
    ("\\boxed{1,651}", "1651", None, True),
    ("\\boxed{0.75}", "\\frac{3}{4}", None, True),
    (
        "\\boxed{\\frac{1+\\sqrt{5}}{2}, \\frac{1-\\sqrt{5}}{2}}",
        "\\frac{1}{2} - \\frac{\\sqrt{5}}{2}, \\frac{1}{2} + \\frac{\\sqrt{5}}{2}",
        None,
        True,
    ),
    (
        "\\boxed{\\frac{1+\\sqrt{5}}{2}}",  # one root of two
        "\\frac{1}{2} - \\frac{\\sqrt{5}}{2}, \\frac{1}{2} + \\frac{\\sqrt{5}}{2}",
        None,
        False,
    ),
    ("\\boxed{2x\\ln x + x}", "2 x \\ln{\\left(x \\right)} + x", None, True),
    ("\\boxed{41, 42, 43}", "42", None, False),  # hedging with a list
    ("\\boxed{42 \\text{ or } 43}", "42", None, False),
    ("\\boxed{41} and finally \\boxed{42}", "42", None, True),
    ("\\boxed{42} and finally \\boxed{41}", "42", None, False),
    ("\\boxed{x}", "3", None, False),
    ("\\boxed{" + "1+" * 40 + "1}", "41", None, False),  # over max_chars: not parsed
    ("\\boxed{(2, 5)}", "x = 2, y = 5", ["x", "y"], True),
    ("\\boxed{(5, 2)}", "x = 2, y = 5", ["x", "y"], False),  # math-verify alone passes this
    ("\\boxed{y = 5, x = 2}", "x = 2, y = 5", ["x", "y"], True),
    ("\\boxed{x = 2}", "x = 2, y = 5", ["x", "y"], False),
]


def test_adversarial_answers(verifier):
    async def run_all():
        return [await verifier.check(text, gold, variables=variables) for text, gold, variables, _ in CASES]

    results = asyncio.run(run_all())
    wrong = [
        (case[0], case[1], r.reason) for case, r in zip(CASES, results, strict=True) if r.passed != case[3]
    ]
    assert not wrong


def test_checks_run_off_the_main_thread(verifier):
    """math-verify's own timeout needs the main thread; ours works from any thread."""
    outcome = {}

    def worker():
        outcome["check"] = asyncio.run(verifier.check("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    assert outcome["check"].passed, outcome["check"].reason


def test_hard_timeout_kills_and_replaces_the_worker():
    pool = HardTimeoutPool(workers=1)
    try:
        assert pool.call_sync("math:sqrt", (16,), timeout=30) == 4.0
        (stuck_pid,) = pool.pids()
        with pytest.raises(VerifierError, match="timed out"):
            pool.call_sync("time:sleep", (60,), timeout=0.5)
        assert not psutil.pid_exists(stuck_pid) or psutil.Process(stuck_pid).status() == psutil.STATUS_ZOMBIE
        (fresh_pid,) = pool.pids()
        assert fresh_pid != stuck_pid
        assert pool.call_sync("math:sqrt", (9,), timeout=30) == 3.0
        with pytest.raises(VerifierError, match="ZeroDivisionError"):
            pool.call_sync("operator:truediv", (1, 0), timeout=30)
    finally:
        pids = pool.pids()
        pool.close()
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)


def test_every_kind_prints_its_answer_and_levels_select_kinds():
    for seed in range(2):
        for kind in GENERATORS:
            task = make_task(seed, seed, [kind], check=True)  # runs the solution program in process
            assert task.meta["kind"] == kind and task.meta["level"] == LEVELS[kind]
            assert task.meta["answer"] and "print(" in task.meta["solution"]
    assert kinds_for({"levels": [4]}) == ["quadratic", "system"]
    assert kinds_for({"kinds": ["integral"], "levels": [5]}) == ["integral"]
    with pytest.raises(ConfigError, match="tasks.options.kinds"):
        kinds_for({"kinds": ["topology"]})
    with pytest.raises(ConfigError, match="unknown math generator option"):
        kinds_for({"level": [1]})
