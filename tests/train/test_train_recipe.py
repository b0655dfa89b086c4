"""The multi-stage recipe: one schedule across stages, order kept through packing and sampling, resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from train_helpers import MICRO_ARCH, ROOT, compose_train

from agentkit.errors import ConfigError
from agentkit.train.pipeline import Document, pack_in_order, plan_stages

BIN = Path(sys.executable).parent

# The tiny recipe shrunk to seconds: the micro model, context 32 -> 128 (YaRN x4), a few steps per stage.
MICRO_RECIPE = [
    *(f"++model.arch.{k}={v}" for k, v in MICRO_ARCH.items() if k != "preset"),
    "++model.arch.max_position_embeddings=32",
    "recipe.eval_docs=2",
    "trainer.save_steps=2",
    "recipe.schedule.warmup_steps=2",
    *(f"recipe.stages.{s}.max_length=32" for s in ("commonsense", "stem")),
    "recipe.stages.commonsense.batch_size=2",
    "recipe.stages.stem.batch_size=8",
    "recipe.stages.long.batch_size=1",
    "recipe.stages.agentic.batch_size=2",
    *(f"recipe.stages.{s}.steps=4" for s in ("commonsense", "stem")),
    *(f"recipe.stages.{s}.max_length=128" for s in ("long", "agentic")),
    *(f"recipe.stages.{s}.steps=3" for s in ("long", "agentic")),
]


def test_recipe_composes_stages_in_order_with_one_schedule():
    cfg = compose_train(["recipe=tiny", "recipe.stages.stem.data.sources.code.weight=0.4"])
    assert cfg.recipe.stages["stem"].data.sources["code"].weight == 0.4
    plans, schedule = plan_stages(cfg)
    assert [p.name for p in plans] == ["commonsense", "stem", "long", "agentic"]
    assert [p.cfg.lr_phase for p in plans] == ["warmup", "stable", "decay", "decay"]
    for before, after in pairwise(plans):
        assert after.start == before.end
    assert plans[2].cfg.rope.type == "yarn" and plans[2].cfg.max_length == 4 * plans[1].cfg.max_length
    lrs = [schedule.lr(step) for step in range(plans[-1].end)]
    warm = schedule.warmup_steps
    assert all(a < b for a, b in pairwise(lrs[:warm]))  # warmup inside the first stage
    assert set(lrs[warm : plans[2].start]) == {cfg.recipe.schedule.peak_lr}  # stable through STEM
    decay = lrs[plans[2].start :]
    assert all(a > b for a, b in pairwise(decay))  # one decay across long-context and agentic
    assert decay[-1] == pytest.approx(cfg.recipe.schedule.peak_lr * cfg.recipe.schedule.min_lr_ratio)


def test_token_budget_becomes_steps():
    cfg = compose_train(["recipe=tiny", "recipe.stages.stem.steps=null", "recipe.stages.stem.tokens=20480"])
    plans, _ = plan_stages(cfg)
    assert plans[1].steps == 20480 // (8 * 128)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("recipe.stages.stem.lr_phase=cooldown", "recipe.stages.stem.lr_phase"),
        ("recipe.stages.stem.lr_phase=warmup", "recipe.stages.stem.lr_phase"),
        ("recipe.stages.agentic.lr_phase=stable", "recipe.stages.agentic.lr_phase"),
        ("recipe.stages.stem.tokens=1000", "recipe.stages.stem"),
        ("recipe.stages.agentic.curriculum.by=vibes", "recipe.stages.agentic.curriculum.by"),
        ("recipe.stages.long.rope.factor=1.0", "recipe.stages.long.rope.factor"),
        ("recipe.stages.long.rope.type=ntk-ish", "recipe.stages.long.rope.type"),
        ("recipe.schedule.decay_type=step", "recipe.schedule.decay_type"),
    ],
)
def test_recipe_config_errors_name_their_key(override, key):
    cfg = compose_train(["recipe=tiny", override])
    with pytest.raises(ConfigError) as err:
        plan_stages(cfg)
    assert str(err.value).startswith(key)


def test_packing_keeps_document_order_and_boundaries():
    docs = [
        Document(f"d{i}", "s", list(range(100 * i, 100 * i + n)), list(range(100 * i, 100 * i + n)))
        for i, n in enumerate([5, 9, 3, 20, 4])
    ]
    rows, names = pack_in_order(docs, 8, "stream")
    assert [t for r in rows for t in r["input_ids"]] == [t for d in docs for t in d.input_ids]
    assert all(len(r["input_ids"]) == 8 for r in rows[:-1]) and all(
        sum(r["seq_lengths"]) == len(r["input_ids"]) for r in rows
    )
    flat = [n for row in names for n in row]
    assert [n for i, n in enumerate(flat) if i == 0 or flat[i - 1] != n] == [d.id for d in docs]
    rows, names = pack_in_order(docs, 8, "whole")
    assert names == [["d0"], ["d1"], ["d2"], ["d3"], ["d4"]]
    assert rows[1]["input_ids"] == docs[1].input_ids[:8] and rows[3]["seq_lengths"] == [8]


def _trained_documents(stage_dir: Path) -> list[str]:
    """The documents a stage actually trained on, in order: the rows its collator saw, mapped to their documents."""
    rows = {r["row"]: r for r in map(json.loads, (stage_dir / "documents.jsonl").read_text().splitlines())}
    trained = json.loads((stage_dir / "trained_rows.json").read_text())["rows"]
    flat = [
        (doc, n)
        for row in trained
        for doc, n in zip(rows[row]["documents"], rows[row]["lengths"], strict=True)
    ]
    return flat


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_recipe_trains_every_stage_in_order_and_keeps_the_curriculum(tmp_path):
    from agentkit.train.pipeline import run_pipeline

    cfg = compose_train(
        ["recipe=tiny", f"out={tmp_path / 'r'}", *MICRO_RECIPE, "recipe.stages.stem.curriculum.by=sources"]
    )
    out = run_pipeline(cfg)
    report = json.loads((out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["commonsense", "stem", "long", "agentic"]
    assert [s["optimizer"] for s in report["stages"]] == ["fresh", "carried", "carried", "carried"]
    history = report["loss_history"]
    assert [h["step"] for h in history] == list(range(1, 15))
    plans, schedule = plan_stages(cfg)
    for h in history:  # the learning rate each step logged is the recipe's one schedule, across stages
        assert h["learning_rate"] == pytest.approx(schedule.lr(h["step"] - 1), rel=1e-6)
    stages = sorted((out / "stages").iterdir())
    assert [s.name for s in stages] == ["0-commonsense", "1-stem", "2-long", "3-agentic"]
    for stage in stages:  # every packed row read once, in order (the sequential sampler)
        trained = json.loads((stage / "trained_rows.json").read_text())["rows"]
        assert trained == list(range(len(trained)))
    # STEM stage with curriculum.by=sources: all math documents, then code, then commonsense, as trained.
    sources = [doc.split("/")[0] for doc, _ in _trained_documents(stages[1])]
    order = ["math", "code", "commonsense"]
    assert sources == sorted(sources, key=order.index) and len(set(sources)) == 3
    # Agentic stage with curriculum.by=length: documents trained short to long.
    lengths: dict[str, int] = {}
    seen: list[str] = []
    for doc, n in _trained_documents(stages[3]):
        lengths[doc] = lengths.get(doc, 0) + n
        if not seen or seen[-1] != doc:
            seen.append(doc)
    assert len(seen) == len(set(seen)) > 3
    complete = [lengths[d] for d in seen[:-1]]  # the last one may be cut by the budget
    assert complete == sorted(complete)
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["max_position_embeddings"] == 128
    assert config["rope_parameters"]["rope_type"] == "yarn" and config["rope_parameters"]["factor"] == 4.0
    assert config["rope_parameters"]["original_max_position_embeddings"] == 32
    from agentkit.server.vllm import deepseek_v3_config

    exported = deepseek_v3_config(config)  # what vLLM serves: the same RoPE scaling and context
    assert (
        exported["rope_parameters"] == config["rope_parameters"]
        and exported["max_position_embeddings"] == 128
    )
    long_context = report["long_context"]["long"]
    assert {"before", "after"} <= set(long_context) and long_context["old_context"] == 32
    assert set(long_context["after"]["passkey"]) == {"16", "32", "64", "128"}
    for name in ("report.md", "loss.png", "lr.png", "long_context_loss_long.png", "passkey_long.png"):
        assert (out / name).stat().st_size > 0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out / "final").config.model_type == "youtu"


def _run(out: Path, wait_for: Path | None = None) -> subprocess.CompletedProcess | None:
    env = {**os.environ, "AGENTKIT_CONF": str(ROOT / "conf"), "OMP_NUM_THREADS": "1"}
    args = [str(BIN / "agentkit"), "train", "recipe=tiny", f"out={out}", *MICRO_RECIPE]
    if wait_for is None:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not wait_for.exists():
            assert proc.poll() is None, "the run ended before the point where the test kills it"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return None


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three runs of the recipe (whole, killed, resumed)
def test_recipe_resumes_after_kill_with_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    whole = _run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = tmp_path / "killed"
    _run(killed, wait_for=killed / "stages" / "1-stem" / "checkpoint-2" / "trainer_state.json")
    assert not (killed / "stages" / "1-stem" / "done.json").exists()  # killed in the middle of the STEM stage
    # The run may have saved a later checkpoint before the signal landed: resume must take the last complete one.
    complete = []
    for state in (killed / "stages" / "1-stem").glob("checkpoint-*/trainer_state.json"):
        try:
            json.loads(state.read_text())
            complete.append(state.parent.name)
        except ValueError:  # killed while writing it: not a checkpoint to resume from
            pass
    last = max(complete, key=lambda name: int(name.split("-")[1]))
    resumed = _run(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((killed / "report.json").read_text())
    assert [s["resumed_from"] for s in report["stages"]] == [None, last, None, None]
    a = load_file(str(tmp_path / "whole" / "final" / "model.safetensors"))
    b = load_file(str(killed / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    losses = [
        [h["loss"] for h in json.loads((d / "report.json").read_text())["loss_history"]]
        for d in (tmp_path / "whole", killed)
    ]
    assert losses[0] == losses[1]
