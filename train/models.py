"""MLA model construction: transformers' native ``YoutuForCausalLM`` (dense MLA + SwiGLU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The paper's 2B values (PAPER.md). Tiny/small sizes keep the same shape family for CPU runs.
YOUTU_2B: dict[str, Any] = dict(
    vocab_size=128256, hidden_size=2048, intermediate_size=6144, num_hidden_layers=32, num_attention_heads=16,
    num_key_value_heads=16, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
    v_head_dim=128, max_position_embeddings=131072, rope_parameters={"rope_type": "default", "rope_theta": 1.6e6},
    rope_interleave=True, tie_word_embeddings=True,
)
TINY_MLA: dict[str, Any] = dict(
    hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
    q_lora_rank=None, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
    max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    rope_interleave=True, tie_word_embeddings=True,
)


# ~25M parameters with a 4k vocabulary: q-LoRA on, like the 2B, still trainable on a laptop CPU.
SMALL_MLA: dict[str, Any] = dict(
    hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
    q_lora_rank=256, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
    max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    rope_interleave=True, tie_word_embeddings=True,
)


PRESETS: dict[str, dict[str, Any]] = {"tiny-mla": TINY_MLA, "small-mla": SMALL_MLA, "youtu-2b": YOUTU_2B}


def resolve_arch(arch: dict[str, Any]) -> dict[str, Any]:
    """``{preset: name, **overrides}`` -> full YoutuConfig keyword arguments."""
    arch = dict(arch)
    preset = arch.pop("preset", None)
    if preset is None:
        return arch
    if preset not in PRESETS:
        from agentkit.errors import ConfigError

        raise ConfigError(f"model.arch.preset: unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    return {**PRESETS[preset], **arch}


def build_model(arch: dict[str, Any], tokenizer=None, seed: int = 0):
    """A freshly initialised ``YoutuForCausalLM`` from ``arch``, sized to ``tokenizer`` when given."""
    import torch
    from transformers import YoutuConfig, YoutuForCausalLM

    arch = resolve_arch(arch)
    if tokenizer is not None:
        arch.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = YoutuForCausalLM(YoutuConfig(**arch))
    if tokenizer is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def save_model(model, tokenizer, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def load_tokenizer_for(model_cfg):
    """The tokenizer a model config names: ``tokenizer``, else the checkpoint's own, else the shipped tiny one."""
    from train.assets import TINY_TOKENIZER, load_tokenizer

    source = model_cfg.tokenizer or model_cfg.path or TINY_TOKENIZER
    if not Path(source).exists():
        from agentkit.errors import ConfigError

        key = "model.tokenizer" if model_cfg.tokenizer else "model.path"
        raise ConfigError(f"{key}: no such directory '{source}'")
    return load_tokenizer(source)


def load_model(model_cfg, seed: int = 0):
    """``(model, tokenizer)`` for training: a checkpoint at ``model.path`` or a fresh ``model.arch`` (float32)."""
    from agentkit.errors import ConfigError

    tokenizer = load_tokenizer_for(model_cfg)
    if model_cfg.path:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_cfg.path, dtype=torch.float32)
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            raise ConfigError(f"model.tokenizer: {len(tokenizer)} tokens, but the checkpoint at '{model_cfg.path}' "
                              f"embeds only {rows}; use the checkpoint's own tokenizer")
        return model, tokenizer
    if not model_cfg.arch:
        raise ConfigError("model: set model.path (a checkpoint) or model.arch (a preset, e.g. model=tiny-mla)")
    return build_model(dict(model_cfg.arch), tokenizer, seed=seed), tokenizer
