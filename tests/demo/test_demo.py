"""``agentkit demo``: its config, the command lines it prints and runs, its drill corpus and its report."""

from __future__ import annotations

import asyncio
import json
import re
import shlex

import pytest

from agentkit.cli import conf_dir
from agentkit.config import TaskSourceConfig
from agentkit.errors import ConfigError
from agentkit.loop import run_episode
from agentkit.synth.demo import (
    Demo,
    DemoConfig,
    FamilyConfig,
    check_config,
    drill_corpus,
    hydra_value,
    markdown,
    paired_difference,
    pass_summary,
    register,
    shown,
)


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from agentkit.config import to_object

    register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return to_object(compose("demo", overrides=overrides))


def test_config_composes_and_rejects_unknown_keys():
    from hydra.errors import ConfigCompositionException

    cfg = _compose(["midtrain.max_steps=7", "families.arithmetic.test=3"])
    assert isinstance(cfg, DemoConfig) and isinstance(cfg.families["arithmetic"], FamilyConfig)
    assert cfg.midtrain.max_steps == 7 and cfg.families["arithmetic"].test == 3
    assert cfg.envs["tooluse"].options["tool_subset"] == "task"
    assert cfg.envs["math"].options["system_prompt"].endswith("\\boxed{}.")
    check_config(cfg)
    for bad in (["midtrain.max_step=7"], ["families.arithmetic.tset=3"], ["eval.max_tokens=many"]):
        with pytest.raises(ConfigCompositionException):
            _compose(bad)


def test_the_default_ablation_has_a_transfer_family_and_equal_sft():
    """Arms start from one checkpoint, share one SFT command but for the start and the name, and a family that is
    mid-trained on but not in the SFT set is the transfer family."""
    assert Demo(_compose([])).arms() == ["A", "B"]
    demo = Demo(_compose(["arms.half=true"]))
    assert demo.arms() == ["A", "B", "C"] and demo.transfer_families() == ["linear"]
    sft = {arm: demo.sft_args(arm) for arm in demo.arms()}
    starts = {arm: next(a for a in args if a.startswith("model.path=")) for arm, args in sft.items()}
    assert starts["A"].endswith("/ckpt/pretrain") and starts["B"].endswith("/ckpt/mid-B")

    def same(args):
        return [a for a in args if not a.startswith(("model.path=", "model.name=", "out="))]

    assert same(sft["A"]) == same(sft["B"]) == same(sft["C"])
    mids = {arm: demo.midtrain_args(arm) for arm in ("B", "C")}
    assert "trainer.max_steps=800" in mids["B"] and "trainer.max_steps=400" in mids["C"]
    jobs = list(demo.synth_jobs())
    assert ("sft", "linear", "reference", 0) not in jobs and not any(j[:2] == ("sft", "linear") for j in jobs)
    assert ("mid", "linear", "reference", 300) in jobs
    # held-out tasks are the test split, training tasks the train split with other seeds
    splits = {
        (split, family): next(
            a for a in demo.synth_args(split, family, "reference", 5) if a.startswith("env.tasks.")
        )
        for split, family, _, _ in jobs
    }
    assert all(v == "env.tasks.split=test" for (s, _), v in splits.items() if s == "heldout")
    assert all(v == "env.tasks.split=train" for (s, _), v in splits.items() if s != "heldout")
    assert "env.tasks.seed=1000" in demo.synth_args("sft", "arithmetic", "reference", 5)


@pytest.mark.parametrize(
    "override, key",
    [
        ("mix.teacher_share=1.5", "mix.teacher_share"),
        ("loop.arm=D", "loop.arm"),
        ("families.arithmetic.test=0", "families.arithmetic"),
        ("families.arithmetic.env=chess", "families.arithmetic.env"),
        ("corpus.drill_weight=1", "corpus.drill_weight"),
        ("pretrain.max_steps=0", "pretrain.max_steps"),
        ("eval.engine=tgi", "eval.engine"),
        ("+extra.pretrian=[trainer.seed]", "extra.pretrian"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        check_config(_compose([override]))


def test_an_sft_set_with_no_family_is_refused():
    cfg = _compose([f"families.{name}.sft=0" for name in ("arithmetic", "order_status", "count_todos")])
    with pytest.raises(ConfigError, match="SFT set would be empty"):
        check_config(cfg)


@pytest.mark.parametrize(
    "value",
    [
        "Solve the task. Put the final answer in \\boxed{}.",
        "it's a 'quote'",
        "a, b: {c}",
        "ends with \\",
        "runs/demo/synth/*/data/*.jsonl",
        "plain",
        "true",
        "12",
        ["code", "argument"],
        {"kinds": ["arithmetic"]},
        {"preset": "tiny-mla", "intermediate_size": 512, "rope_parameters": {"rope_theta": 10000.0}},
        2.0e-3,
        None,
    ],
)
def test_hydra_values_parse_back_to_the_same_value(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(f"key={hydra_value(value)}")
    assert override.value() == value


def test_printed_commands_split_back_to_the_arguments():
    args = [
        "synth",
        "++env.options.system_prompt=" + hydra_value("Put it in \\boxed{}, then stop."),
        "data=" + hydra_value("runs/x/*/data/*.jsonl"),
        "x=" + hydra_value("it's"),
        "out=runs/demo",
    ]
    line = shown(args)
    assert line.startswith("agentkit synth ") and shlex.split(line) == ["agentkit", *args]


def test_drills_are_deterministic_and_correct():
    first, again, other = list(drill_corpus(200, 0)), list(drill_corpus(200, 0)), list(drill_corpus(200, 1))
    assert first == again and first != other and len(first) == 200
    text = "\n".join(first)
    assert "<|" not in text and "<tool_call>" not in text  # the agent format is left to mid-training
    checked = 0
    for code, printed in re.findall(r">>> print\(([^)\n]*(?:\)[^)\n]*)*)\)\n(-?\d+)", text):
        assert eval(code) == int(printed)
        checked += 1
    for tex, code, value in re.findall(
        r"In Python, \$(.+?)\$ is written (.+?)\. print\(.+?\) prints (-?\d+)", text
    ):
        assert tex.replace(" \\times ", "*") == code and eval(code) == int(value)
        checked += 1
    for record, said in re.findall(r"^(\{.*\})\nRecord \S+: (.+)\.$", text, flags=re.M):
        fields = json.loads(record)
        for key, value in re.findall(r"its (\w+) is ([^;]+)", said):
            assert str(fields[key]) == value
        checked += 1
    assert checked > 100


def test_paired_difference_resamples_tasks():
    first = {f"t{i}": 1.0 for i in range(40)}
    second = {f"t{i}": float(i < 10) for i in range(40)} | {"only-here": 1.0}
    row = paired_difference(first, second, confidence=0.95, resamples=2000, seed=0)
    assert row["tasks"] == 40 and row["diff"] == 0.75  # the unpaired task is left out
    assert 0.6 < row["ci"][0] < 0.75 < row["ci"][1] < 0.9
    same = paired_difference(first, first, confidence=0.95, resamples=500, seed=0)
    assert same["diff"] == 0 and same["ci"] == [0, 0]
    assert paired_difference(first, {}, confidence=0.95, resamples=10, seed=0) is None


def test_pass_summary_and_markdown_table():
    summary = pass_summary(27, 30, 0.95)
    assert summary["pass@1"] == 0.9 and summary["ci"][0] < 0.9 < summary["ci"][1]
    zero = pass_summary(0, 30, 0.95)
    report = {
        "seed": 0,
        "cpus": 2,
        "wall_seconds": 800.0,
        "engine": "transformers",
        "out": "runs/demo",
        "families": {"arith": {"sft": 32}, "linear": {"sft": 0}},
        "transfer": ["linear"],
        "targets": {
            "B - A overall >= 20%, interval excluding 0": {"met": True, "measured": "+45.0% [+30.0%, +60.0%]"}
        },
        "config": {"eval": {"confidence": 0.95}},
        "results": {
            "pretrain": {"families": {"arith": zero}, "overall": zero},
            "B": {
                "families": {"arith": summary, "linear": pass_summary(12, 30, 0.95)},
                "overall": pass_summary(39, 60, 0.95),
            },
        },
        "differences": {
            "B-A": {
                "arith": {"diff": 0.5, "ci": [0.3, 0.7], "tasks": 30},
                "linear": None,
                "overall": {"diff": 0.45, "ci": [0.3, 0.6], "tasks": 60},
            }
        },
        "aptbench": {
            "pretrain": {
                "overall": {"n": 40, "accuracy": 0.25},
                "per_kind": {"plan": {"n": 10, "accuracy": 0.3}},
            }
        },
        "loop": {},
        "datasets": {},
        "training": {},
        "steps": [],
        "plots": ["plots/loss.png"],
    }
    text = markdown(report)
    assert "| model | arith | linear (transfer) | overall |" in text
    assert "| B | 90% [" in text and "(39/60)" in text and "| pretrain | 0% [0%, 11%] (0/30) | - |" in text
    assert "| B-A | +50% [+30%, +70%] | - | +45% [+30%, +60%] |" in text
    assert "interval excluding 0: **met** (+45.0% [+30.0%, +60.0%])" in text
    assert "| pretrain | 30% (n=10) | 25.0% (n=40) |" in text and "![loss](plots/loss.png)" in text


def test_env_options_keep_prompts_and_tools_short():
    from agentkit.envs.math import MathEnv
    from agentkit.envs.tooluse import ToolUseEnv
    from agentkit.envs.tooluse.generator import TEMPLATES

    math = MathEnv(system_prompt="Use python. Answer in \\boxed{}.")
    task = math.load_tasks(TaskSourceConfig(n=1, options={"kinds": ["arithmetic"]}))[0]
    assert math.initial_messages(task)[0].content == "Use python. Answer in \\boxed{}."
    assert len(MathEnv().initial_messages(task)[0].content) > 500  # the default stays the full agent prompt
    with pytest.raises(ConfigError, match="system_prompt"):
        MathEnv(system_prompt=3)

    full, small = ToolUseEnv(), ToolUseEnv(tool_subset="task", system_prompt="Answer with the tools.")
    with pytest.raises(ConfigError, match="tool_subset"):
        ToolUseEnv(tool_subset="some")
    tasks = [
        t
        for name in TEMPLATES
        for t in small.load_tasks(TaskSourceConfig(n=2, seed=5, options={"templates": [name]}))
    ]
    for task in tasks:
        offered = [spec.name for spec in small.tools(task)]
        assert offered == [
            n for n in (s.name for s in full.tools(task)) if n in TEMPLATES[task.meta["template"]].tools
        ]
        assert small.initial_messages(task)[0].content == "Answer with the tools."
    status = next(t for t in tasks if t.meta["template"] == "order_status")
    assert [s.name for s in small.tools(status)] == ["get_order"] and len(full.tools(status)) > 3

    async def solve_all():
        return [await run_episode(small, task, small.reference_solver(task)) for task in tasks]

    failed = [(t.task.id, t.status, t.error) for t in asyncio.run(solve_all()) if not t.passed]
    assert not failed  # every template's reference solution needs only the tools it lists


def test_vllm_engine_needs_the_servable_latent_and_says_so_before_training():
    demo = Demo(_compose(["eval.engine=vllm", "arch.kv_lora_rank=64"]))
    with pytest.raises(ConfigError, match=r"arch.kv_lora_rank=512 arch.qk_rope_head_dim=64"):
        demo.engine()
    assert Demo(_compose(["eval.engine=transformers"])).engine() == "transformers"
    assert Demo(_compose(["arch.kv_lora_rank=64"])).engine() == "transformers"  # auto: what can serve it
