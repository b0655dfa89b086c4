import random

import pytest

from agentkit.records import Message, Stats, Status, Task, ToolCall, Trajectory, Verdict
from agentkit.synth.config import CurationConfig, DedupConfig
from agentkit.synth.curate import DecontamIndex, curate, format_problem, scan
from agentkit.synth.strategies import build_strategy

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
    "upsilon phi chi psi omega"
).split()


def prose(seed: int, n: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n))


def trajectory(
    task_id="t0",
    sample=0,
    answer=None,
    passed=True,
    status=Status.completed,
    prompt=None,
    calls=0,
    tool_errors=0,
    parse_errors=0,
    extra_turns=(),
    meta=None,
) -> Trajectory:
    prompt = prompt or f"question {task_id}"
    messages = [Message(role="system", content="sys"), Message(role="user", content=prompt)]
    for i in range(calls):
        messages.append(
            Message(
                role="assistant", content="", tool_calls=[ToolCall.make(f"call_{i}", "add", {"a": i, "b": 1})]
            )
        )
        messages.append(Message(role="tool", tool_call_id=f"call_{i}", name="add", content=str(i + 1)))
    messages += [Message(role="assistant", content=t) for t in extra_turns]
    messages.append(
        Message(role="assistant", content=answer if answer is not None else prose(hash((task_id, sample))))
    )
    return Trajectory(
        id=f"toy/{task_id}/s{sample}",
        task=Task(id=task_id, env="toy", prompt=prompt),
        messages=messages,
        status=status,
        reward=float(passed),
        verdict=Verdict(passed=passed, reward=float(passed)),
        stats=Stats(
            turns=calls + 1 + len(extra_turns),
            tool_calls=calls,
            tool_errors=tool_errors,
            parse_errors=parse_errors,
        ),
        meta={"key": f"{task_id}-{sample}", "sample": sample} | (meta or {}),
    )


def raw(trajectories):
    return [(i, t.model_dump(mode="json", exclude_none=True)) for i, t in enumerate(trajectories)]


def run(trajectories, cfg=None, strategy="direct", decontam=None):
    cfg = cfg or CurationConfig()
    entries = scan(raw(trajectories), cfg, build_strategy(strategy), decontam)
    return curate(entries, cfg, build_strategy(strategy))


def kept_ids(result):
    return [e.id for e in result.kept]


@pytest.mark.parametrize(
    ("bad", "cfg", "reason"),
    [
        (dict(passed=False), {}, "verdict"),
        (dict(status=Status.max_turns, passed=False), {"require_passed": False}, "status"),
        (dict(calls=5), {"max_turns": 4}, "turns"),
        (dict(answer="x" * 5000), {"max_chars": 4000}, "length"),
        (dict(calls=4, tool_errors=3), {"max_tool_error_rate": 0.5}, "tool errors"),
        (dict(parse_errors=1), {}, "format"),
        (dict(answer="<think>unclosed reasoning"), {}, "format"),
        (dict(answer='<tool_call>{"name": "add"'), {}, "format"),
    ],
)
def test_each_filter_drops_what_it_should(bad, cfg, reason):
    result = run([trajectory("good"), trajectory("bad", **bad)], CurationConfig(**cfg))
    assert kept_ids(result) == ["toy/good/s0"]
    assert dict(result.dropped) == {reason: 1}


def test_format_problem_accepts_a_clean_trajectory():
    assert format_problem(trajectory(calls=2, answer="<think>ok</think>The answer is 3")) is None
    assert format_problem(trajectory(answer="")) == "no final answer"


def test_strategy_format_check_is_applied():
    plain = trajectory("t1", extra_turns=())
    result = run([plain], strategy="agentic_cot")
    assert result.kept == [] and "format" in result.dropped


def test_exact_and_near_duplicates_are_removed_in_a_stable_order():
    base = prose(1, 120)
    near = " ".join(base.split()[:-1] + ["omega99"])
    items = [
        trajectory("t1", 0, answer=base),
        trajectory("t1", 1, answer=base),  # exact
        trajectory("t2", 0, answer=near, prompt="question t1"),  # near, other task
        trajectory("t3", 0, answer=prose(2, 120)),
    ]
    result = run(items)
    assert kept_ids(result) == ["toy/t1/s0", "toy/t3/s0"]
    assert dict(result.dropped) == {"duplicate": 1, "near_duplicate": 1}
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    assert kept_ids(run(shuffled)) == kept_ids(result)
    off = CurationConfig(dedup=DedupConfig(exact=False, near=False))
    assert len(run(items, off).kept) == 4


def test_decontamination_by_ngram_overlap():
    leaked = "Compute the integral of x squared from zero to three and give an exact fraction"
    index = DecontamIndex([("eval/1", leaked), ("eval/2", "hi")], n=8, threshold=0.5)
    assert len(index) == 1  # too-short evaluation texts are ignored
    assert index.match(
        "Please: compute the integral of x squared from zero to three, and give an exact fraction!"
    )
    assert index.match("compute the derivative of x cubed at two") is None
    items = [trajectory("clean"), trajectory("dirty", prompt=leaked.lower())]
    result = run(items, decontam=index)
    assert kept_ids(result) == ["toy/clean/s0"] and dict(result.dropped) == {"contaminated": 1}


def test_pass_rates_difficulty_bounds_selection_and_caps():
    items = (
        [trajectory("easy", s) for s in range(4)]
        + [trajectory("hard", s, passed=s == 0) for s in range(4)]
        + [trajectory("never", s, passed=False) for s in range(2)]
    )
    result = run(items, CurationConfig(max_per_task=2))
    assert result.pass_rates == {"easy": (4, 4), "hard": (1, 4), "never": (0, 2)}
    assert kept_ids(result) == ["toy/easy/s0", "toy/easy/s1", "toy/hard/s0"]
    assert result.dropped["per_task_cap"] == 2 and result.dropped["verdict"] == 5
    bounded = run(items, CurationConfig(max_pass_rate=0.9))
    assert kept_ids(bounded) == ["toy/hard/s0"] and bounded.dropped["difficulty"] == 4
    rejection = run(items, strategy="rejection")
    assert kept_ids(rejection) == [
        "toy/easy/s" + str(min(range(4), key=lambda s: len(items[s].messages[-1].content))),
        "toy/hard/s0",
    ]
    assert rejection.dropped["selection"] == 3


def test_curation_off_keeps_everything():
    items = [trajectory("a", passed=False), trajectory("b", status=Status.max_turns, passed=False)]
    assert len(run(items, CurationConfig(enabled=False)).kept) == 2
