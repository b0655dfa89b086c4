"""APTBench-style likelihood items: built from real verified trajectories (the tool-use reference solver and teacher
run here; math comes from a shipped fixture written by one real ``agentkit synth env=math policy=reference`` run and
one ``strategy=teacher`` run, since math needs the sandbox), scored by a real checkpoint in this process."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.records import Trajectory
from agentkit.synth.aptbench import (
    KINDS,
    Continuation,
    TransformersScorer,
    answer_spans,
    build_items,
    build_report,
    perturb_digits,
    pick,
    trajectory_family,
    trajectory_keys,
)

ROOT = Path(__file__).resolve().parents[2]
MATH = Path(__file__).parent / "assets" / "aptbench_math.jsonl"
SMALL = {
    "preset": "tiny-mla",
    "num_hidden_layers": 2,
    "hidden_size": 128,
    "intermediate_size": 384,
    "kv_lora_rank": 64,
    "qk_rope_head_dim": 16,
}


def _synth(out: Path, *overrides: str) -> None:
    try:
        main(["synth", *overrides, "report.progress=false", "report.plots=false", f"out={out}"])
    except SystemExit as exc:
        assert exc.code in (0, None)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Real tool-use trajectories (reference solver and teacher mistakes, no sandbox) next to the math fixture."""
    root = tmp_path_factory.mktemp("aptbench")
    _synth(root / "ref", "env=tooluse", "policy=reference", "env.tasks.n=60")
    _synth(root / "teacher", "env=tooluse", "policy=reference", "strategy=teacher", "env.tasks.n=30")
    shards = root / "shards"
    shards.mkdir()
    for name in ("ref", "teacher"):
        text = "".join(p.read_text() for p in sorted((root / name / "data").glob("*.jsonl")))
        (shards / f"tooluse-{name}.jsonl").write_text(text)
    (shards / "math.jsonl").write_text(MATH.read_text())
    return shards


@pytest.fixture(scope="module")
def records(data) -> list[Trajectory]:
    return [
        Trajectory.model_validate_json(line)
        for path in sorted(data.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    from agentkit.models import materialize

    return materialize(SMALL, tmp_path_factory.mktemp("small-mla"))


def _key(message: dict) -> tuple:
    calls = tuple(
        (c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []
    )
    return (message.get("content", ""), calls)


def test_trajectory_family_reads_the_task_metadata():
    def record(env, meta, task_id="gen-x-00001"):
        return {"task": {"id": task_id, "env": env, "prompt": "", "meta": meta}}

    assert trajectory_family(record("math", {"kind": "linear"})) == "math/linear"
    assert trajectory_family(record("tooluse", {"template": "order_status"})) == "tooluse/order_status"
    assert trajectory_family(record("code", {"family": "strings", "kind": "function"})) == "code/strings"
    assert trajectory_family(record("code", {"kind": "function"})) == "code/function"
    assert trajectory_family(record("code", {}, "gen-sorting-00003")) == "code/sorting"
    assert trajectory_family(record("research", {"hops": 2})) == "research/hops2"
    assert trajectory_family(record("research", {}, "gen-bridge-00007")) == "research/bridge"
    assert trajectory_family(record("other", {}, "task-foo-12")) == "other/foo"


def test_perturbations_change_digits_and_keep_the_shape():
    rng = random.Random(0)
    for _ in range(50):
        changed = perturb_digits("order O1001 on 2025-12-07", rng)
        assert changed != "order O1001 on 2025-12-07" and len(changed) == len("order O1001 on 2025-12-07")
        assert changed.split()[1][1] != "0"  # a leading digit never becomes 0
    assert perturb_digits("no digits", rng) is None
    boxed = "<think>Reflection: 7.</think>\nSummary: the answer is $\\boxed{\\frac{3}{4}}$."
    ((start, end),) = answer_spans(boxed)
    assert boxed[start:end] == "\\frac{3}{4}"
    reply = (
        "<think>Reflection: counted 5 lines.</think>\nSummary: Order O1001 is shipped; its total was 246.46."
    )
    assert [reply[a:b] for a, b in answer_spans(reply)] == ["O1001", "246.46"]


def test_items_are_well_formed_deterministic_and_cover_every_kind(records):
    built = build_items(records, KINDS, choices=4, per_family=30, seed=0)
    kinds = {item.kind for item in built.items}
    assert kinds == set(KINDS), (kinds, built.skipped, built.dropped)
    families = {item.family for item in built.items}
    assert {"math/arithmetic", "math/linear", "math/system"} <= families
    assert len([f for f in families if f.startswith("tooluse/")]) >= 5
    by_id = dict(zip(trajectory_keys(records), records, strict=True))
    for item in built.items:
        assert by_id[item.trajectory].passed
        assert item.context and item.context[-1]["role"] != "assistant"
        if item.kind == "completion":
            assert item.choices == [
                by_id[item.trajectory].messages[len(item.context)].model_dump(exclude_none=True)
            ]
            assert item.answer_spans
            continue
        assert len(item.choices) == 4 and 0 <= item.gold < 4
        keys = [_key(c) for c in item.choices]
        assert len(set(keys)) == 4, item.id  # the gold is never among the distractors
        truth = by_id[item.trajectory].messages[len(item.context)].model_dump(exclude_none=True)
        assert _key(item.choices[item.gold]) == _key(truth)
        gold_ids = [c["id"] for c in item.choices[item.gold].get("tool_calls") or []]
        for choice in item.choices:  # distractors take the gold's call ids: ids never give it away
            ids = [c["id"] for c in choice.get("tool_calls") or []]
            assert ids[: len(gold_ids)] == gold_ids[: len(ids)]
        if item.kind == "error":
            mistake = by_id[item.trajectory].meta["mistake"]
            assert mistake["exposed"]
            assert item.choices[item.gold]["content"].startswith("<think>Reflection:")
        if item.kind == "answer":
            gold = item.choices[item.gold]["content"]
            for n, choice in enumerate(item.choices):
                if n != item.gold:  # only the answer values differ
                    spans = answer_spans(gold)
                    assert choice["content"][: spans[0][0]] == gold[: spans[0][0]]
        if item.kind == "plan":
            assert item.context == [
                m.model_dump(exclude_none=True) for m in by_id[item.trajectory].messages[:2]
            ]
    counts = {kind: sum(i.kind == kind for i in built.items) for kind in KINDS}
    error_sources = {k for k, r in by_id.items() if (r.meta.get("mistake") or {}).get("exposed")}
    assert {i.trajectory for i in built.items if i.kind == "error"} <= error_sources
    assert counts["answer"] + built.dropped["answer"] == counts["completion"]
    assert built.trajectories == sum(built.families.values())
    again = build_items(records, KINDS, choices=4, per_family=30, seed=0)
    assert [i.to_dict() for i in again.items] == [i.to_dict() for i in built.items]
    other = build_items(records, KINDS, choices=4, per_family=30, seed=1)
    assert [i.gold for i in other.items] != [i.gold for i in built.items]
    capped = build_items(records, KINDS, choices=4, per_family=3, seed=0)
    assert max(capped.families.values()) == 3
    assert len(build_items(records, ["plan"], choices=2, per_family=30).items) >= len(
        [i for i in built.items if i.kind == "plan"]
    )


def test_picking_uses_the_per_token_mean_and_the_sum(records):
    item = next(i for i in build_items(records, ["next_action"]).items)
    scores = []
    for n in range(4):
        if n == item.gold:  # the best per token, but the longest: the sum prefers a short distractor
            scores.append(Continuation([-0.5] * 10, [True] * 10))
        else:
            scores.append(Continuation([-1.0] * (2 + n), [False] * (2 + n)))
    row = pick(item, scores)
    assert row["picked_norm"] == item.gold and row["correct_norm"]
    assert row["picked"] != item.gold and not row["correct"]
    assert row["tokens"][item.gold] == 10 and row["logprob"][item.gold] == -5.0
    completion = next(i for i in build_items(records, ["completion"]).items)
    spanned = Continuation([-0.1, -3.0, -0.2], [True, False, True], span=[True, False, True])
    assert pick(completion, [spanned])["answer_greedy"] and not pick(completion, [spanned])["greedy"]
    missed = Continuation([-0.1, -3.0], [True, False], span=[False, True])
    assert not pick(completion, [missed])["correct_norm"]
    report = build_report([row, pick(completion, [spanned])])
    assert (
        report["overall"]["n"] == 2
        and report["overall"]["accuracy"] == 1.0
        and report["overall"]["acc"] == 0.5
    )
    assert report["per_kind"]["next_action"]["chance"] == 0.25


def test_scores_match_one_unbatched_forward_per_choice(records, small_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    built = build_items(records, KINDS, per_family=1, seed=0)
    items = [i for i in built.items if i.family == "math/linear"]
    # An error item from any tool-use trajectory with an exposed mistake (one sampled trajectory per family may
    # have none: which teacher episodes pass depends on the machine's load).
    errors = build_items(records, ["error"], seed=0).items
    items += [i for i in errors if i.family.startswith("tooluse/")][:1]
    assert {i.kind for i in items} == set(KINDS)
    batched = TransformersScorer(small_model, batch_size=3, max_length=4096).score(items)
    single = TransformersScorer(small_model, batch_size=1, max_length=4096).score(items)
    tokenizer = AutoTokenizer.from_pretrained(str(small_model))
    model = AutoModelForCausalLM.from_pretrained(str(small_model), dtype=torch.float32).eval()
    checked = 0
    for item, scores, alone in zip(items, batched, single, strict=True):
        prompt = tokenizer.apply_chat_template(
            item.context, tools=item.tools, tokenize=False, add_generation_prompt=True
        )
        start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for choice, score, one in zip(item.choices, scores, alone, strict=True):
            text = tokenizer.apply_chat_template([*item.context, choice], tools=item.tools, tokenize=False)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logprobs = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
            manual = [logprobs[p - 1, ids[p]].item() for p in range(start, len(ids))]
            assert len(score.logprobs) == len(manual) > 0
            assert max(abs(a - b) for a, b in zip(score.logprobs, manual, strict=True)) < 1e-4
            assert max(abs(a - b) for a, b in zip(score.logprobs, one.logprobs, strict=True)) < 1e-4
            greedy = [logprobs[p - 1].argmax().item() == ids[p] for p in range(start, len(ids))]
            assert score.greedy == greedy
            checked += 1
    assert checked >= 8


def _eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "eval", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_scores_a_checkpoint_and_writes_the_report(data, small_model, tmp_path):
    out = tmp_path / "apt"
    done = _eval(
        f"aptbench.data={data}/math*.jsonl",
        "aptbench.per_family=2",
        "model=hf",
        f"model.path={small_model}",
        f"out={out}",
    )
    assert done.returncode == 0, done.stderr
    assert (
        "aptbench accuracy:" in done.stdout and "completi" in done.stdout
    )  # the table (columns cut to the width)
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    report = json.loads((out / "aptbench.json").read_text())
    assert len(items) == len(scores) == report["items"] > 0
    assert report["items_sha256"] == hashlib.sha256((out / "items.jsonl").read_bytes()).hexdigest()
    assert report["checkpoint"] == str(Path(small_model).resolve())
    assert set(report["per_kind"]) == set(KINDS)
    for item, row in zip(items, scores, strict=True):
        assert {"id", "family", "kind", "context", "choices", "gold"} <= set(item) and row["id"] == item["id"]
        assert len(row["logprob"]) == len(item["choices"])
        if item["kind"] == "completion":
            assert {"greedy", "answer_greedy", "gold_logprob_per_token"} <= set(row)
        else:
            assert {"picked", "picked_norm", "correct", "correct_norm"} <= set(row)
    for group in [report["overall"], *report["per_family"].values(), *report["per_kind"].values()]:
        assert {"n", "accuracy", "acc", "wilson", "chance", "gold_logprob_per_token"} <= set(group)
        assert group["wilson"][0] <= group["accuracy"] <= group["wilson"][1]
    assert report["per_kind"]["plan"]["chance"] == 0.25
    assert sum(g["n"] for g in report["per_family"].values()) == report["overall"]["n"] == len(items)
    assert all(set(kinds) <= set(KINDS) for kinds in report["per_family_kind"].values())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["aptbench.data={tmp}/nothing-*.jsonl", "model.path={model}"], "aptbench.data: '"),
        (
            ["aptbench.data={failed}", "model.path={model}"],
            "aptbench.data: no trajectory with verdict.passed",
        ),
        (["aptbench.data={data}", "model.path={tmp}/missing"], "model.path: no such checkpoint directory"),
        (["aptbench.data={data}", "model.path={tmp}"], "model.path: '"),
        (
            ["aptbench.data={data}", "model.path={model}", "aptbench.kinds=[plan,nxt_action]"],
            "did you mean 'next_action'",
        ),
        (["aptbench.data={data}", "model.path={model}", "aptbench.choices=1"], "aptbench.choices:"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, data, small_model, tmp_path, args, expected):
    failed = tmp_path / "failed.jsonl"
    row = json.loads((data / "math.jsonl").read_text().splitlines()[0])
    row["verdict"]["passed"] = False
    failed.write_text(json.dumps(row) + "\n")
    values = {"tmp": tmp_path, "model": small_model, "data": data, "failed": failed}
    argv = ["eval", "model=hf", "report.progress=false", f"out={tmp_path / 'out'}"]
    argv += [arg.format(**values) for arg in args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
