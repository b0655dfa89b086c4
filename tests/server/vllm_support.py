"""What the vLLM test modules share: finding vLLM (skip, or fail under ``AGENTKIT_REQUIRE_VLLM=1``), running the
CLI, and ``agentkit serve engine=vllm`` as a user starts it, with a check that stopping it takes vLLM's whole
process group down."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def require_vllm():
    """The vLLM install ``agentkit serve engine=vllm`` would use; skip without one, fail if CI requires it."""
    from agentkit.errors import ConfigError
    from agentkit.server.vllm import VllmConfig, find_vllm

    try:
        return find_vllm(VllmConfig())
    except ConfigError as exc:
        if os.environ.get("AGENTKIT_REQUIRE_VLLM") == "1":
            pytest.fail(f"AGENTKIT_REQUIRE_VLLM=1 but {exc}")
        pytest.skip(str(exc))


def run_agentkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=1200
    )


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def serve_vllm(checkpoint: Path, workdir: Path, *args: str, startup_limit: float = 1500.0):
    """``agentkit serve engine=vllm model=<checkpoint>`` until the body ends; yields ``url``, ``name``,
    ``checkpoint``, ``startup`` (seconds to healthy) and ``log``. On exit SIGTERM goes to agentkit serve alone,
    which must take vLLM's whole process group down."""
    require_vllm()
    port_file, log_file = workdir / "port", workdir / "serve.log"
    started = time.monotonic()
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentkit.cli",
                "serve",
                "engine=vllm",
                f"model={checkpoint}",
                "port=0",
                f"port_file={port_file}",
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while not port_file.exists():
            assert proc.poll() is None, log_file.read_text()[-4000:]
            assert time.monotonic() - started < startup_limit, (
                f"vLLM not healthy after {startup_limit:.0f} s:\n" + log_file.read_text()[-4000:]
            )
            time.sleep(1)
        startup = time.monotonic() - started
        print(f"\nvLLM startup (agentkit serve to healthy): {startup:.1f} s")
        assert children(proc.pid), "agentkit serve has no vLLM child"
        yield {
            "url": f"http://127.0.0.1:{int(port_file.read_text())}/v1",
            "name": Path(checkpoint).name,
            "checkpoint": Path(checkpoint),
            "startup": startup,
            "log": log_file,
        }
    finally:
        vllm_pids = children(proc.pid) if proc.poll() is None else []
        proc.send_signal(signal.SIGTERM)  # to agentkit serve only, not its group
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(group_alive(pid) for pid in vllm_pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        leftover = [pid for pid in vllm_pids if group_alive(pid)]
        for pid in leftover:
            os.killpg(pid, signal.SIGKILL)
    assert not leftover, f"vLLM process group(s) {leftover} outlived agentkit serve"


def chat(url: str, name: str, messages, tools, max_tokens: int, **extra) -> dict:
    """A greedy chat completion with logprobs and token ids (vLLM's ``return_token_ids``), as JSON."""
    import httpx

    body = {
        "model": name,
        "messages": messages,
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "logprobs": True,
        "return_token_ids": True,
        **extra,
    }
    if tools:
        body["tools"] = tools
    response = httpx.post(url + "/chat/completions", json=body, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()


def shortened_references(reference: Path, out: Path) -> Path:
    """Reference trajectories as conversations short enough for a CPU test: the system prompt dropped, only the
    tools each one calls offered, cut after its second assistant turn (``<think>``, a tool call, the tool's
    response, the next turn)."""
    import json

    lines = []
    for line in (reference / "data" / "train-00000.jsonl").read_text().splitlines():
        row = json.loads(line)
        messages = [m for m in row["messages"] if m["role"] != "system"]
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        messages = messages[: turns[1] + 1] if len(turns) > 1 else messages
        used = {c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
        tools = [t for t in row["tools"] if t["function"]["name"] in used]
        lines.append(json.dumps({"messages": messages, "tools": tools}))
    out.write_text("\n".join(lines) + "\n")
    return out
