"""Where a model's weights are, and the embedded server as a real subprocess for synth, eval and tests."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from agentkit.config import ModelConfig
from agentkit.errors import ConfigError, ModelError
from agentkit.paths import cache_root


def resolve_model_path(model: ModelConfig) -> Path:
    """The checkpoint directory for ``model``: ``model.path``, or ``model.arch`` materialized (random
    init, cached under ``cache_root()/models/<name>-<hash>``) with ``model.tokenizer`` or the tiny one."""
    if model.path:
        path = Path(model.path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.path: {model.path} is not a checkpoint directory (no config.json)")
        return path.resolve()
    if not model.arch:
        raise ConfigError(f"model '{model.name}': set model.path (a checkpoint) or model.arch (to build one)")
    from agentkit.models import TINY_TOKENIZER, materialize

    tokenizer = Path(model.tokenizer).expanduser().resolve() if model.tokenizer else TINY_TOKENIZER
    if model.tokenizer and not tokenizer.exists():
        raise ConfigError(f"model.tokenizer: {model.tokenizer} does not exist")
    arch = dict(model.arch)
    key = hashlib.sha256(json.dumps([arch, str(tokenizer)], sort_keys=True, default=str).encode()).hexdigest()
    out = cache_root() / "models" / f"{model.name}-{key[:12]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:  # several processes may start at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return Path(materialize(arch, out, tokenizer=tokenizer))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _quote(value: str) -> str:
    """A Hydra override value that survives spaces, commas and quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def serve_command(
    model: ModelConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_batch_size: int = 8,
    port_file: str | Path | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The ``agentkit serve engine=transformers`` argv for ``model`` (materialized here, once)."""
    path = resolve_model_path(model)
    argv = [
        sys.executable,
        "-m",
        "agentkit.cli",
        "serve",
        "engine=transformers",
        "model=hf",
        f"model.path={_quote(str(path))}",
        f"model.name={_quote(model.name)}",
        f"host={host}",
        f"port={port}",
        f"max_batch_size={max_batch_size}",
    ]
    if port_file is not None:
        argv.append(f"port_file={_quote(str(port_file))}")
    return argv + list(extra or [])


def _log_tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def embedded_server(
    model: ModelConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_batch_size: int = 8,
    log_path: str | Path | None = None,
    timeout: float = 120.0,
    extra: list[str] | None = None,
) -> Iterator[str]:
    """Run ``agentkit serve engine=transformers`` for ``model`` as a subprocess; yield its base URL
    (``http://host:port/v1``) once ``/health`` answers; always stop it on exit. ``port=0``: any free port."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="agentkit-serve-") as tmp:
        port_file = Path(tmp) / "port"
        log_file = Path(log_path) if log_path else Path(tmp) / "server.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = serve_command(
            model, host=host, port=port, max_batch_size=max_batch_size, port_file=port_file, extra=extra
        )
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            deadline = time.monotonic() + timeout
            base_url = None
            while True:
                if proc.poll() is not None:
                    raise ModelError(
                        f"agentkit serve exited with code {proc.returncode}:\n{_log_tail(log_file)}"
                    )
                if time.monotonic() > deadline:
                    raise ModelError(
                        f"agentkit serve not healthy after {timeout:.0f}s:\n{_log_tail(log_file)}"
                    )
                if base_url is None and port_file.exists() and port_file.read_text().strip():
                    bound = int(port_file.read_text().strip())
                    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
                    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
                    base_url = f"http://{shown}:{bound}/v1"
                if base_url is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        if httpx.get(base_url[:-3] + "/health", timeout=2.0).status_code == 200:
                            break
                time.sleep(0.1)
            yield base_url
        finally:
            _stop(proc)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (for servers, like vLLM, that cannot report the port they bound)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def base_url_for(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/v1"


def wait_healthy(
    proc: subprocess.Popen, base_url: str, timeout: float, log_file: Path | None = None, what: str = "vllm"
) -> float:
    """Poll ``<root>/health`` until it answers 200; the seconds it took. A ModelError with the log's tail when
    the process exits or ``timeout`` passes first."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe would bury vLLM's own log
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise ModelError(
                f"{what} exited with code {proc.returncode} before it was healthy"
                + (f":\n{_log_tail(log_file)}" if log_file else "")
            )
        if time.monotonic() - started > timeout:
            raise ModelError(
                f"{what} not healthy after {timeout:.0f}s" + (f":\n{_log_tail(log_file)}" if log_file else "")
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base_url[:-3] + "/health", timeout=2.0).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.5)


def stop_process_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    _stop(proc, grace)


@contextlib.contextmanager
def vllm_server(
    model: ModelConfig | str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: str | Path | None = None,
    timeout: float | None = None,
    vllm=None,
    max_model_len: int | None = None,
    dtype: str = "float32",
    threads: int | None = None,
    served_model_name: str | None = None,
) -> Iterator[str]:
    """Run vLLM for ``model`` (a ``ModelConfig`` or a checkpoint directory) in its own process group; yield its
    base URL once ``/health`` answers; always stop the whole group on exit. ``vllm``: a ``VllmConfig``."""
    from agentkit.server.vllm import VllmConfig, plan_launch

    cfg = vllm or VllmConfig()
    if isinstance(model, ModelConfig):
        path, name = resolve_model_path(model), served_model_name or model.name
    else:
        path = Path(model).resolve()
        name = served_model_name or path.name
    port = port or free_port(host)
    launch = plan_launch(
        path,
        served_model_name=name,
        host=host,
        port=port,
        cfg=cfg,
        max_model_len=max_model_len,
        dtype=dtype,
        threads=threads,
    )
    base_url = base_url_for(host, port)
    with tempfile.TemporaryDirectory(prefix="agentkit-vllm-") as tmp:
        log_file = Path(log_path) if log_path else Path(tmp) / "vllm.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            log.write(f"agentkit: {launch.command_line()}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **launch.env},
                start_new_session=True,
            )
        try:
            wait_healthy(proc, base_url, timeout or cfg.startup_timeout, log_file)
            yield base_url
        finally:
            _stop(proc, 15.0)
