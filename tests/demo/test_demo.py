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
    DemoConfig,
    DemoEnvConfig,
    check_config,
    drill_corpus,
    hydra_value,
    markdown,
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

    cfg = _compose(["midtrain.max_steps=7", "envs.math.test=3"])
    assert isinstance(cfg, DemoConfig) and isinstance(cfg.envs["math"], DemoEnvConfig)
    assert cfg.midtrain.max_steps == 7 and cfg.envs["math"].test == 3
    assert cfg.envs["tooluse"].options["tool_subset"] == "task"
    assert cfg.envs["math"].options["system_prompt"].endswith("\\boxed{}.")
    check_config(cfg)
    for bad in (["midtrain.max_step=7"], ["envs.math.trian=3"], ["eval.max_tokens=many"]):
        with pytest.raises(ConfigCompositionException):
            _compose(bad)


@pytest.mark.parametrize(
    "override, key",
    [
        ("teacher.share=1.5", "teacher.share"),
        ("loop.model=base", "loop.model"),
        ("envs.math.test=0", "envs.math"),
        ("corpus.drill_weight=1", "corpus.drill_weight"),
        ("pretrain.max_steps=0", "pretrain.max_steps"),
        ("+extra.pretrian=[trainer.seed]", "extra.pretrian"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        check_config(_compose([override]))


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


def test_pass_summary_and_markdown_table():
    summary = pass_summary(45, 50, 0.95)
    assert summary["pass@1"] == 0.9 and summary["ci"][0] < 0.9 < summary["ci"][1]
    report = {
        "seed": 0,
        "cpus": 2,
        "wall_seconds": 800.0,
        "targets": {"midtrain_at_least_0.8": True},
        "config": {"envs": {"math": {}, "tooluse": {}}, "eval": {"confidence": 0.95}},
        "results": {
            "pretrain": {"envs": {"math": pass_summary(0, 50, 0.95)}, "overall": pass_summary(0, 50, 0.95)},
            "midtrain": {
                "envs": {"math": summary, "tooluse": pass_summary(40, 50, 0.95)},
                "overall": pass_summary(85, 100, 0.95),
            },
        },
        "loop": {},
        "datasets": {},
        "training": {},
        "steps": [],
        "plots": ["plots/loss.png"],
    }
    text = markdown(report)
    assert "| midtrain | 90.0% [" in text and "(85/100)" in text and "| pretrain | 0.0% [0.0%, " in text
    assert "| pretrain | 0.0% [0.0%, 7.1%] (0/50) | - |" in text
    assert "midtrain at least 0.8: met" in text and "![loss](plots/loss.png)" in text


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
