"""Models for training: a checkpoint, or a fresh MLA model from a preset (``agentkit.models``)."""

from __future__ import annotations

from pathlib import Path

from agentkit.errors import ConfigError
from agentkit.models import TINY_TOKENIZER, build_model, check_tokenizer_fits, load_tokenizer


def load_tokenizer_for(model_cfg):
    """The tokenizer a model config names: ``tokenizer``, else the checkpoint's own, else the shipped tiny one."""
    source = model_cfg.tokenizer or model_cfg.path or TINY_TOKENIZER
    if not Path(source).exists():
        key = "model.tokenizer" if model_cfg.tokenizer else "model.path"
        raise ConfigError(f"{key}: no such directory '{source}'")
    return load_tokenizer(source)


def load_model(model_cfg, seed: int = 0):
    """``(model, tokenizer)`` for training: a checkpoint at ``model.path`` or a fresh ``model.arch`` (float32)."""
    tokenizer = load_tokenizer_for(model_cfg)
    if model_cfg.path:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_cfg.path, dtype=torch.float32)
        weight = model.get_input_embeddings().weight
        assert isinstance(weight, torch.Tensor)
        rows = weight.shape[0]
        if len(tokenizer) > rows:
            raise ConfigError(
                f"model.tokenizer: {len(tokenizer)} tokens, but the checkpoint at '{model_cfg.path}' "
                f"embeds only {rows}; use the checkpoint's own tokenizer"
            )
        return model, tokenizer
    if not model_cfg.arch:
        raise ConfigError(
            "model: set model.path (a checkpoint) or model.arch (a preset, e.g. model=tiny-mla)"
        )
    check_tokenizer_fits(dict(model_cfg.arch), tokenizer, model_cfg.tokenizer or TINY_TOKENIZER)
    return build_model(dict(model_cfg.arch), tokenizer, seed=seed), tokenizer
