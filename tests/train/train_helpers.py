"""Helpers of the training tests: a micro MLA architecture and config builders."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# YoutuForCausalLM (dense MLA) shrunk further than tiny-mla so every stage trains in seconds on a busy CPU.
MICRO_ARCH = {
    "preset": "tiny-mla",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "kv_lora_rank": 32,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 8,
    "v_head_dim": 16,
}
MICRO_OVERRIDE = "++model.arch={" + ", ".join(f"{k}: {v}" for k, v in MICRO_ARCH.items()) + "}"
FAST_TRAINER = dict(
    max_steps=12,
    logging_steps=1,
    learning_rate=3e-3,
    max_length=512,
    gradient_accumulation_steps=1,
    save_steps=1000,
    resume="never",
    warmup_ratio=0.1,
)


def compose_train(overrides: list[str]):
    """The typed ``TrainConfig`` that ``agentkit train <overrides>`` composes."""
    from agentkit.train.stages import compose_config

    return compose_config(overrides)


def stage_config(tmp_path: Path, stage: str, overrides: list[str] = (), **sections):
    """A stage as ``conf/stage/<stage>.yaml`` composes it, on the micro model, for a few fast steps."""
    cfg = compose_train([f"stage={stage}", MICRO_OVERRIDE, f"out={tmp_path / stage}", *overrides])
    trainer = dict(FAST_TRAINER)
    trainer.update(sections.pop("trainer", {}))
    for key, value in trainer.items():
        setattr(cfg.trainer, key, value)
    for section, values in sections.items():
        target = getattr(cfg, section)
        for key, value in values.items():
            setattr(target, key, value)
    return cfg
