"""``agentkit serve``: the embedded OpenAI-compatible server, or ``vllm serve`` with the right flags.

    agentkit serve engine=transformers model=tiny-mla port=8000
    agentkit serve engine=transformers model=/path/to/checkpoint
    agentkit serve engine=vllm model=youtu-2b model.path=/ckpt vllm.tensor_parallel_size=2
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agentkit.config import ModelConfig
from agentkit.errors import ConfigError
from agentkit.server.vllm import VllmConfig

ENGINES = ("transformers", "vllm")


@dataclass
class ServeConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: str = "transformers"
    """``transformers`` (the embedded server, CPU or one GPU) or ``vllm``."""
    host: str = "127.0.0.1"
    port: int = 8000
    """0 picks a free port (see ``port_file``)."""
    served_model_name: str | None = None
    """The name clients send as ``model``; default ``model.name``."""
    max_model_len: int | None = None
    """Context length; default the model's ``max_position_embeddings``."""
    max_batch_size: int = 8
    batch_wait_ms: float = 20.0
    """How long a new batch waits for more requests before it starts."""
    dtype: str = "float32"
    device: str = "cpu"
    threads: int | None = None
    """torch CPU threads for the transformers engine (None: torch's default)."""
    log_level: str = "info"
    access_log: bool = False
    port_file: str | None = None
    """Write the bound port here once listening (for launchers using port=0)."""
    vllm: VllmConfig = field(default_factory=VllmConfig)


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="serve_schema", node=ServeConfig)


def serve(cfg: ServeConfig) -> int:
    try:
        if cfg.engine not in ENGINES:
            raise ConfigError(f"engine: unknown engine '{cfg.engine}'; choose one of {', '.join(ENGINES)}")
        if cfg.engine == "vllm":
            return _serve_vllm(cfg)
        return _serve_transformers(cfg)
    except ConfigError as exc:
        print(f"agentkit serve: {exc}", file=sys.stderr)
        return 2


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(f"port: cannot listen on {host}:{port} ({exc.strerror})") from None


def _serve_transformers(cfg: ServeConfig) -> int:
    import uvicorn

    from agentkit.server.app import create_app
    from agentkit.server.engine import GenerationEngine
    from agentkit.server.launch import resolve_model_path

    logging.basicConfig(level=cfg.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    sock = _bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    path = resolve_model_path(cfg.model)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    engine = GenerationEngine.from_pretrained(
        path, device=cfg.device, dtype=cfg.dtype, name=cfg.model.name, max_batch_size=cfg.max_batch_size,
        batch_wait_ms=cfg.batch_wait_ms, max_model_len=cfg.max_model_len)
    try:
        name = cfg.served_model_name or cfg.model.name
        app = create_app(engine, served_model_name=name, root=str(path))
        shown = f"[{host}]" if ":" in host else host
        print(f"agentkit serve: {name} ({path}) on http://{shown}:{port}/v1; engine=transformers "
              f"device={cfg.device} dtype={cfg.dtype} max_batch_size={cfg.max_batch_size} "
              f"max_model_len={engine.max_model_len} chat_template_sha256={engine.chat_template_sha256[:12]}",
              flush=True)
        if cfg.port_file:
            tmp = Path(cfg.port_file).with_suffix(".tmp")
            tmp.write_text(str(port))
            tmp.replace(cfg.port_file)
        config = uvicorn.Config(app, log_level=cfg.log_level.lower(), access_log=cfg.access_log,
                                timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        engine.close()
        sock.close()
    return 0


def _serve_vllm(cfg: ServeConfig) -> int:
    from agentkit.server.launch import cache_root, resolve_model_path
    from agentkit.server.vllm import build_vllm_command, chat_template_file, export_for_vllm, model_type

    path = resolve_model_path(cfg.model)
    if cfg.vllm.convert_youtu and model_type(path) == "youtu":
        path = export_for_vllm(path)
        print(f"agentkit serve: serving the Youtu checkpoint as its DeepSeek-V3 equivalent at {path}")
    argv = build_vllm_command(
        path, served_model_name=cfg.served_model_name or cfg.model.name, host=cfg.host, port=cfg.port,
        cfg=cfg.vllm, max_model_len=cfg.max_model_len,
        chat_template_path=chat_template_file(cfg.vllm.chat_template, cache_root() / "templates"))
    env_prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in cfg.vllm.env.items())
    print(f"agentkit serve: {(env_prefix + ' ') if env_prefix else ''}{shlex.join(argv)}", flush=True)
    if cfg.vllm.dry_run:
        return 0
    executable = shutil.which(argv[0])
    if executable is None:
        raise ConfigError(f"vllm.executable: '{argv[0]}' is not on PATH; install vLLM in its own environment "
                          "and set vllm.executable=/path/to/that/env/bin/vllm")
    os.execve(executable, argv, {**os.environ, **cfg.vllm.env})
    return 0  # pragma: no cover - execve does not return
