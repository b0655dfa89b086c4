"""Each stage trains for real on the micro MLA model: loss goes down, checkpoints load, resume is exact."""

import json
import math

import pytest
import torch
from train_helpers import MICRO_ARCH, MICRO_OVERRIDE, compose_train, stage_config

from agentkit.chat_template import YOUTU_CHAT_TEMPLATE, template_sha256
from agentkit.cli import main
from agentkit.errors import ConfigError
from agentkit.jsonl import write_jsonl
from agentkit.train.corpus import toy_trajectories
from agentkit.train.render import IGNORE, message_dicts
from agentkit.train.stages import REPORT, build_trainer, run_stage, sft_config, validate


def _report(out):
    return json.loads((out / REPORT).read_text())


def _loss_drop(report) -> float:
    """Mean loss of the last 4 logged steps over the first 2: below 1 means the stage learned."""
    losses = [h["loss"] for h in report["loss_history"]]
    return (sum(losses[-4:]) / 4) / (sum(losses[:2]) / 2)


def _heldout_loss(model, tokenizer, trajectories) -> float:
    """Mean assistant-token loss over ``trajectories`` (masks exactly as SFT trains them)."""
    from agentkit.train.data import render_item
    from agentkit.train.render import LossPolicy
    from agentkit.train.sources import Item

    total, count = 0.0, 0
    model.eval()
    for t in trajectories:
        item = Item(
            "heldout", messages=message_dicts(t.messages), tools=[s.model_dump() for s in t.tools] or None
        )
        example = render_item(item, tokenizer, LossPolicy())
        ids = torch.tensor([example["input_ids"]])
        labels = torch.tensor([example["labels"]])
        with torch.no_grad():
            logits = model(ids, use_cache=False).logits[0, :-1]
        target = labels[0, 1:]
        keep = target != IGNORE
        total += torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
        count += int(keep.sum())
    return total / count


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_sft_from_the_cli_learns_and_saves_a_servable_checkpoint(tmp_path, toy_synth):
    """SFT of an MLA checkpoint (``model=<path>``): held-out assistant loss halves, the output reloads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentkit.models import materialize

    start = materialize(MICRO_ARCH, tmp_path / "start")
    out = tmp_path / "sft"
    main(
        [
            "train",
            "stage=sft",
            f"model={start}",
            f"data={toy_synth}",
            f"out={out}",
            "trainer.max_steps=12",
            "trainer.learning_rate=3e-3",
            "trainer.gradient_accumulation_steps=1",
            "trainer.max_length=512",
            "trainer.logging_steps=2",
            "trainer.resume=never",
            "trainer.warmup_ratio=0.1",
        ]
    )
    report = _report(out)
    assert report["steps"] == 12 and report["mixture"]["sources"]["main"]["kept"] == 210
    assert _loss_drop(report) < 0.5
    assert 0.5 < report["packing"]["efficiency"] <= 1 and report["tokens"] > 0

    heldout = list(toy_trajectories(12, seed=99))
    tokenizer = AutoTokenizer.from_pretrained(out)
    before = _heldout_loss(AutoModelForCausalLM.from_pretrained(start), tokenizer, heldout)
    model = AutoModelForCausalLM.from_pretrained(out)
    after = _heldout_loss(model, tokenizer, heldout)
    assert after < 0.5 * before, (before, after)

    assert tokenizer.chat_template == YOUTU_CHAT_TEMPLATE and model.config.use_cache
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 12 + 30?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    generated = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert (
        generated.shape[1] == prompt["input_ids"].shape[1] + 5 or generated[0, -1] == tokenizer.eos_token_id
    )


def test_pretrain_wsd_packing_and_tensorboard(tmp_path):
    cfg = stage_config(
        tmp_path,
        "pretrain",
        trainer=dict(max_steps=20, max_length=256, learning_rate=5e-3, report_to=["tensorboard"]),
    )
    cfg.data.sources["main"].n = 600
    out = run_stage(cfg)
    report = _report(out)
    assert report["packing"]["strategy"] == "bfd_split" and report["packing"]["efficiency"] > 0.95
    assert _loss_drop(report) < 0.6
    rates = [h["learning_rate"] for h in report["loss_history"]]
    peak = max(rates)
    assert rates[0] < peak and math.isclose(peak, 5e-3)  # warmup, then the stable plateau
    stable = [r for r in rates if math.isclose(r, peak)]
    assert len(stable) >= 10 and rates[-1] < 0.5 * peak  # decay over the last 20%
    assert list((out / "runs").rglob("events.out.tfevents.*"))


def test_packed_rows_keep_documents_apart(tmp_path):
    """The exact batch the trainer feeds the model: each packed document's logits equal its logits alone."""
    cfg = stage_config(tmp_path, "pretrain", trainer=dict(max_length=128))
    cfg.data.sources["main"].n = 80
    trainer, _ = build_trainer(cfg)
    batch = next(iter(trainer.get_train_dataloader()))
    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist() + [len(positions)]
    assert len(starts) > 2, "the first row should hold several documents"
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        for begin, end in zip(starts, starts[1:], strict=False):
            alone = model(input_ids=batch["input_ids"][:, begin:end], use_cache=False).logits[0]
            assert torch.allclose(packed[begin:end], alone, atol=1e-4)
            assert batch["labels"][0, begin] == IGNORE  # no target across the boundary


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_midtrain_masks_observations_mixes_text_and_learns(tmp_path, toy_synth):
    cfg = stage_config(tmp_path, "midtrain", trainer=dict(max_steps=14, max_length=512))
    cfg.data.path = str(toy_synth)
    cfg.data.sources["general"].n = 400
    trainer, data = build_trainer(cfg)
    labelled = trainer.train_dataset[0]
    trained = trainer.processing_class.decode(
        [t for t, label in zip(labelled["input_ids"], labelled["labels"], strict=True) if label != IGNORE],
        skip_special_tokens=False,
    )
    assert "<tool_response>" not in trained and "What is" in trained and "<tool_call>" in trained
    out = run_stage(cfg)
    report = _report(out)
    sources = report["mixture"]["sources"]
    assert (
        sources["main"]["examples"]
        + sources["main"]["skipped"].get("nothing to train on within max_length", 0)
        == 210
        and sources["general"]["examples"] > 0
    )
    assert report["mixture"]["weights"] == {"main": 0.7, "general": 0.3}
    assert _loss_drop(report) < 0.6


def test_lora_with_gradient_checkpointing_merges_into_a_plain_checkpoint(tmp_path, toy_synth):
    from transformers import AutoModelForCausalLM

    # The latent geometry vLLM's MLA kernels take (512 + 64), so the export below is servable.
    servable = ["++model.arch.kv_lora_rank=512", "++model.arch.qk_rope_head_dim=64"]
    cfg = stage_config(
        tmp_path,
        "sft",
        servable,
        trainer=dict(max_steps=10, learning_rate=1e-2, gradient_checkpointing=True),
        peft=dict(enabled=True, r=8, alpha=16),
    )
    cfg.data.path = str(toy_synth)
    out = run_stage(cfg)
    report = _report(out)
    assert 0 < report["trainable_parameters"] < 0.25 * report["parameters"]
    assert _loss_drop(report) < 0.9
    assert (out / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    from agentkit.server.vllm import export_for_vllm

    # what `agentkit serve engine=vllm model=<out>` hands vLLM: the same model as an all-dense DeepSeek-V3
    exported = AutoModelForCausalLM.from_pretrained(export_for_vllm(out, tmp_path / "vllm"))
    assert type(exported).__name__ == "DeepseekV3ForCausalLM"
    ids = torch.tensor([[0, 5, 17, 99, 230, 41]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, exported(ids).logits, atol=1e-5)


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_resume_after_a_crash_reaches_the_same_weights(tmp_path, toy_synth):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise RuntimeError("simulated crash")

    def config(name):
        cfg = stage_config(tmp_path / name, "sft", trainer=dict(max_steps=6, save_steps=2, resume="auto"))
        cfg.data.path = str(toy_synth)
        cfg.data.sources["main"].n = 40
        return cfg

    straight = run_stage(config("straight"))
    crashed = config("crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_stage(crashed, callbacks=[Crash()])
    assert (crashed_out := tmp_path / "crashed" / "sft" / "checkpoint-4").exists()
    resumed = run_stage(config("crashed"))
    assert _report(resumed)["resumed_from"] == str(crashed_out)
    from safetensors.torch import load_file

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_streaming_stage_trains_with_max_steps(tmp_path, toy_synth):
    cfg = stage_config(tmp_path, "sft", trainer=dict(max_steps=4))
    cfg.data.path = str(toy_synth)
    cfg.data.streaming = True
    report = _report(run_stage(cfg))
    assert report["steps"] == 4 and report["mixture"]["streaming"] and report["packing"]["efficiency"] > 0.5


def test_template_mismatch_fails_the_command_clearly(tmp_path, capsys):
    path = tmp_path / "stale.jsonl"
    write_jsonl(path, toy_trajectories(2, template_sha256=template_sha256("an older template")))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "stage=sft", MICRO_OVERRIDE, f"data={path}", f"out={tmp_path / 'o'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "stale.jsonl:1" in err and "data.allow_template_mismatch=true" in err


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_config_errors_name_their_key(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_train(["stage=sft", "trainer.learnig_rate=1e-3"])
    with pytest.raises(ConfigCompositionException):
        compose_train(["stage=sft", "++data.sources={extra: {path: x, wieght: 1}}"])
    extra = compose_train(
        ["stage=midtrain", "data=a.jsonl", "++data.sources={extra: {path: b.jsonl, weight: 0.2}}"]
    )
    assert extra.data.path == "a.jsonl" and extra.data.sources["extra"].weight == 0.2
    cases = {
        "trainer.packing_strategy": dict(trainer=dict(packing_strategy="wrapped")),
        "trainer.extra.no_such_field": dict(trainer=dict(extra={"no_such_field": 1})),
        "trainer.max_steps": dict(trainer=dict(max_steps=-1), data=dict(streaming=True)),
        "trainer.lr_scheduler": dict(trainer=dict(lr_scheduler="zigzag")),
    }
    for key, sections in cases.items():
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate(stage_config(tmp_path, "sft", **sections))
    cfg = stage_config(tmp_path, "sft")
    cfg.stage = "rl"
    with pytest.raises(ConfigError, match="stage: unknown stage 'rl'"):
        validate(cfg)


def test_bf16_is_off_on_cpu_and_sft_config_carries_the_stage(tmp_path):
    cfg = stage_config(tmp_path, "pretrain")
    args = sft_config(cfg)
    assert args.bf16 is False and args.use_cpu and not args.gradient_checkpointing
    assert (
        args.packing
        and args.packing_strategy == "bfd_split"
        and args.lr_scheduler_type == "warmup_stable_decay"
    )


def test_stage_defaults_compose(tmp_path):
    for stage, roles in {
        "pretrain": ["system", "user", "assistant", "tool"],
        "midtrain": ["system", "user", "assistant"],
        "sft": ["assistant"],
    }.items():
        cfg = compose_train([f"stage={stage}"])
        assert (
            cfg.stage == stage and cfg.data.loss_roles == roles and cfg.model.arch == {"preset": "tiny-mla"}
        )
    assert compose_train(["stage=sft", "model=small-mla"]).model.arch == {"preset": "small-mla"}
