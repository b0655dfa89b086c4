"""MLA model presets and random-init checkpoints: the bottom layer the server and training share.

Models are transformers' native ``YoutuForCausalLM`` (dense MLA + SwiGLU). ``model.arch`` is a preset
name plus overrides; every key is checked against ``YoutuConfig`` before anything is built, so a typo
fails with the nearest valid key instead of being stored silently.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from functools import cache
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError

ASSETS = Path(__file__).parent / "assets"
TINY_TOKENIZER = ASSETS / "tiny-tokenizer"

# The paper's 2B values (PAPER.md). Tiny/small sizes keep the same shape family for CPU runs, and the 2B's
# latent geometry (kv_lora_rank 512 + qk_rope_head_dim 64 = 576): vLLM's MLA kernels, CPU and GPU, take no other,
# so every checkpoint trained from a preset can be served by vLLM (``VLLM_MLA_GEOMETRY``).
YOUTU_2B: dict[str, Any] = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=6144,
    num_hidden_layers=32,
    num_attention_heads=16,
    num_key_value_heads=16,
    q_lora_rank=1536,
    kv_lora_rank=512,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
    max_position_embeddings=131072,
    rope_parameters={"rope_type": "default", "rope_theta": 1.6e6},
    rope_interleave=True,
    tie_word_embeddings=True,
)
TINY_MLA: dict[str, Any] = dict(
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    q_lora_rank=None,
    kv_lora_rank=512,
    qk_nope_head_dim=32,
    qk_rope_head_dim=64,
    v_head_dim=32,
    max_position_embeddings=4096,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    rope_interleave=True,
    tie_word_embeddings=True,
)
# ~27M parameters with the tiny tokenizer: q-LoRA on, like the 2B, still trainable on a laptop CPU.
SMALL_MLA: dict[str, Any] = dict(
    hidden_size=512,
    intermediate_size=1536,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=8,
    q_lora_rank=256,
    kv_lora_rank=512,
    qk_nope_head_dim=32,
    qk_rope_head_dim=64,
    v_head_dim=32,
    max_position_embeddings=8192,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    rope_interleave=True,
    tie_word_embeddings=True,
)
VLLM_MLA_GEOMETRY = {"kv_lora_rank": 512, "qk_rope_head_dim": 64}
"""The only MLA latent shape vLLM serves (``agentkit.server.vllm.check_servable`` refuses others)."""
PRESETS: dict[str, dict[str, Any]] = {"tiny-mla": TINY_MLA, "small-mla": SMALL_MLA, "youtu-2b": YOUTU_2B}


@cache
def arch_keys() -> frozenset[str]:
    """The keyword arguments ``YoutuConfig`` takes, plus the generic ``PretrainedConfig`` ones."""
    from transformers import PretrainedConfig, YoutuConfig

    names = set(inspect.signature(YoutuConfig.__init__).parameters) | set(YoutuConfig().to_dict())
    names |= set(inspect.signature(PretrainedConfig.__init__).parameters)
    return frozenset(names - {"self", "kwargs"})


def check_arch_keys(arch: dict[str, Any], key: str = "model.arch") -> None:
    """Refuse a key ``YoutuConfig`` does not know, naming the nearest valid one."""
    known = arch_keys()
    for name in arch:
        if name not in known:
            near = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"{key}.{name}: not a YoutuConfig field{hint}")


def resolve_arch(arch: dict[str, Any]) -> dict[str, Any]:
    """``{preset: name, **overrides}`` -> full, checked ``YoutuConfig`` keyword arguments."""
    arch = dict(arch)
    preset = arch.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"model.arch.preset: unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    check_arch_keys(arch)
    return {**PRESETS[preset], **arch} if preset is not None else arch


def load_tokenizer(path: str | Path = TINY_TOKENIZER):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def check_tokenizer_fits(arch: dict[str, Any], tokenizer, source: str | Path) -> None:
    """A preset that declares its vocabulary (``youtu-2b``) refuses a tokenizer of another size."""
    declared = resolve_arch(arch).get("vocab_size")
    if declared is not None and declared != len(tokenizer):
        raise ConfigError(
            f"model.tokenizer: '{source}' has {len(tokenizer)} tokens but model.arch declares "
            f"vocab_size={declared}; pass a tokenizer of that vocabulary (model.tokenizer=DIR) "
            f"or override model.arch.vocab_size"
        )


def build_model(arch: dict[str, Any], tokenizer=None, seed: int = 0):
    """A freshly initialised ``YoutuForCausalLM`` from ``arch``, sized to ``tokenizer`` when given."""
    import torch
    from transformers import YoutuConfig, YoutuForCausalLM

    arch = resolve_arch(arch)
    if tokenizer is not None:
        arch.update(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
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


def materialize(
    arch: dict[str, Any], out: str | Path, tokenizer: str | Path = TINY_TOKENIZER, seed: int = 0
) -> Path:
    """Write a randomly initialised MLA checkpoint for ``arch`` to ``out`` (reused if already there)."""
    out = Path(out)
    key = hashlib.sha256(
        json.dumps([arch, str(tokenizer), seed], sort_keys=True, default=str).encode()
    ).hexdigest()
    stamp = out / "agentkit-init.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return out
    tok = load_tokenizer(tokenizer)
    check_tokenizer_fits(arch, tok, tokenizer)
    save_model(build_model(arch, tok, seed=seed), tok, out)
    stamp.write_text(json.dumps({"key": key, "arch": arch, "seed": seed}, default=str))
    return out
