"""``agentkit serve engine=vllm``: the ``vllm serve`` command line, and a Youtu checkpoint in a form vLLM loads.

vLLM is a GPU server that lives in its own environment; agentkit only builds its command and talks
to it over HTTP. vLLM has no Youtu architecture, but a dense Youtu model is exactly a DeepSeek-V3
model whose layers are all dense (``first_k_dense_replace == num_hidden_layers``), which vLLM
serves: ``export_for_vllm`` writes that copy (same weights, an untied ``lm_head``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agentkit.errors import ConfigError


@dataclass
class VllmConfig:
    """Flags for ``vllm serve``; ``max_model_len`` and the served name come from the serve config."""

    executable: str = "vllm"
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    tool_call_parser: str = "hermes"
    enable_auto_tool_choice: bool = True
    chat_template: str | None = None
    """None: the tokenizer's own template; ``agentkit``: agentkit's Youtu template; else a file path."""
    dtype: str = "auto"
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    seed: int | None = None
    attention_backend: str | None = None
    """E.g. ``TRITON_MLA`` for MLA models whose latent size is not DeepSeek's 512 + 64 (the tiny model)."""
    convert_youtu: bool = True
    """Serve a Youtu checkpoint through its exact DeepSeek-V3 (all dense) equivalent."""
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    """Print the command (and prepare the checkpoint) without starting vLLM."""


def build_vllm_command(model_path: str | Path, *, served_model_name: str, host: str, port: int,
                       cfg: VllmConfig, max_model_len: int | None = None,
                       chat_template_path: str | Path | None = None) -> list[str]:
    """The ``vllm serve`` argv for ``model_path``."""
    if cfg.tensor_parallel_size < 1 or cfg.data_parallel_size < 1:
        raise ConfigError("vllm.tensor_parallel_size and vllm.data_parallel_size must be >= 1")
    if max_model_len is not None and max_model_len < 1:
        raise ConfigError(f"max_model_len must be >= 1, got {max_model_len}")
    argv = [cfg.executable, "serve", str(model_path),
            "--served-model-name", served_model_name,
            "--host", host, "--port", str(port),
            "--tensor-parallel-size", str(cfg.tensor_parallel_size),
            "--dtype", cfg.dtype]
    if cfg.data_parallel_size > 1:
        argv += ["--data-parallel-size", str(cfg.data_parallel_size)]
    if max_model_len is not None:
        argv += ["--max-model-len", str(max_model_len)]
    if cfg.enable_auto_tool_choice:
        if not cfg.tool_call_parser:
            raise ConfigError("vllm.enable_auto_tool_choice needs vllm.tool_call_parser (hermes for Youtu)")
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", cfg.tool_call_parser]
    if chat_template_path is not None:
        argv += ["--chat-template", str(chat_template_path)]
    if cfg.gpu_memory_utilization is not None:
        if not 0 < cfg.gpu_memory_utilization <= 1:
            raise ConfigError("vllm.gpu_memory_utilization must be in (0, 1]")
        argv += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    if cfg.max_num_seqs is not None:
        argv += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.seed is not None:
        argv += ["--seed", str(cfg.seed)]
    if cfg.attention_backend:
        argv += ["--attention-backend", cfg.attention_backend]
    return argv + [str(a) for a in cfg.extra_args]


def chat_template_file(spec: str | None, cache_dir: Path) -> Path | None:
    """The ``--chat-template`` file for ``vllm.chat_template`` (None keeps the tokenizer's)."""
    if spec is None:
        return None
    if spec == "agentkit":
        from agentkit.chat_template import YOUTU_CHAT_TEMPLATE, template_sha256

        path = cache_dir / f"youtu-{template_sha256()[:12]}.jinja"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(YOUTU_CHAT_TEMPLATE, encoding="utf-8")
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"vllm.chat_template: {spec} is not a file (or use 'agentkit', or null)")
    return path.resolve()


def model_type(path: str | Path) -> str | None:
    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError):
        return None


_MOE_PLACEHOLDERS = {"n_routed_experts": 1, "n_shared_experts": 1, "num_experts_per_tok": 1, "n_group": 1,
                     "topk_group": 1, "routed_scaling_factor": 1.0, "norm_topk_prob": True}
_YOUTU_ONLY = {"embedding_initializer_range", "head_dim", "qk_head_dim", "architectures", "model_type",
               "transformers_version", "auto_map"}


def deepseek_v3_config(youtu_config: dict) -> dict:
    """A DeepSeek-V3 ``config.json`` equivalent to a dense Youtu one (every layer dense, lm_head untied)."""
    config = {k: v for k, v in youtu_config.items() if k not in _YOUTU_ONLY}
    config.update(_MOE_PLACEHOLDERS)
    config.update(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3",
                  first_k_dense_replace=youtu_config["num_hidden_layers"],
                  moe_intermediate_size=youtu_config["intermediate_size"], tie_word_embeddings=False)
    return config


def export_for_vllm(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the DeepSeek-V3 form of the Youtu checkpoint at ``path`` (reused when already there)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path).resolve()
    source_config = json.loads((path / "config.json").read_text())
    if source_config.get("model_type") != "youtu":
        raise ConfigError(f"{path}: model_type is {source_config.get('model_type')!r}, not 'youtu'")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ConfigError(f"{path}: no *.safetensors weights to export")
    stamp_key = hashlib.sha256(json.dumps(
        [str(path), *[(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]]).encode()).hexdigest()
    if out is None:
        from agentkit.server.launch import cache_root

        out = cache_root() / "vllm" / f"{path.name}-{stamp_key[:12]}"
    out = Path(out)
    stamp = out / "agentkit-export.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == stamp_key:
        return out
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for file in weights:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[key] = handle.get_tensor(key)
    if "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(deepseek_v3_config(source_config), indent=2))
    for file in path.iterdir():
        if file.is_file() and file.suffix != ".safetensors" and file.name not in (
                "config.json", "model.safetensors.index.json", "agentkit-init.json"):
            shutil.copy2(file, out / file.name)
    stamp.write_text(json.dumps({"key": stamp_key, "source": str(path)}))
    return out
