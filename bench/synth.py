"""Synthesis throughput against a zero-latency fake OpenAI server, side by side with a bare client.

The server (a plain ASGI app under uvicorn, in its own process) answers instantly: a tool call on
the first turn, the final answer on the second. ``agentkit synth`` (the full command minus Hydra:
rollouts, verification, the raw shard, curation, the dataset and its manifest) and a bare
``httpx.AsyncClient`` send the same two-turn conversations with the same concurrency. The ratio
says how much of the bare client's request rate the pipeline keeps.

    python bench/synth.py [--tasks 1500] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_PROMPT = re.compile(r"what is (\d+)\+(\d+)\?")
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
       "required": ["a", "b"], "additionalProperties": False}


# -- the fake server ------------------------------------------------------------------------------
async def fake_openai(scope, receive, send):
    """Zero-latency chat completions: call ``add`` on the first turn, answer on the second."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/models"):
        payload = {"object": "list", "data": [{"id": "fake", "object": "model"}]}
    else:
        request = json.loads(body)
        messages = request["messages"]
        a, b = (int(x) for x in _PROMPT.search(messages[1]["content"]).groups())
        if messages[-1]["role"] == "tool":
            message = {"role": "assistant", "content": f"The answer is \\boxed{{{messages[-1]['content']}}}."}
            finish = "stop"
        else:
            message = {"role": "assistant", "content": "<think>Add them.</think>",
                       "tool_calls": [{"id": "c0", "type": "function",
                                       "function": {"name": "add", "arguments": json.dumps({"a": a, "b": b})}}]}
            finish = "tool_calls"
        payload = {"id": "x", "object": "chat.completion", "model": "fake", "created": 0,
                   "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                   "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}}
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(fake_openai, host="127.0.0.1", port=port, log_level="error", access_log=False)


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the fake server did not start")


# -- the env the bench synthesizes from -----------------------------------------------------------
def register_env() -> None:
    from agentkit.env import Env, Episode, Tool
    from agentkit.records import Task, Verdict
    from agentkit.registry import ENVS

    class AddEpisode(Episode):
        @property
        def tools(self):
            return [Tool("add", "Add two integers", ADD, lambda a, b: str(a + b))]

        async def verify(self, messages):
            passed = f"\\boxed{{{self.task.meta['answer']}}}" in messages[-1].content
            return Verdict(passed=passed, reward=float(passed))

    class BenchEnv(Env):
        name = "bench-add"

        def tools(self, task):
            return [t.spec for t in AddEpisode(task).tools]

        async def open(self, task):
            return AddEpisode(task)

        def load_tasks(self, source):
            return [Task(id=f"t{i}", env=self.name, prompt=f"task {i}: what is {i}+{2 * i + 1}?",
                         meta={"answer": 3 * i + 1}) for i in range(source.n)]

    ENVS.register("bench-add")(BenchEnv)


def synth_config(base_url: str, tasks: int, concurrency: int, out: str):
    from agentkit.config import EnvConfig, TaskSourceConfig
    from agentkit.synth.config import ReportConfig, SynthConfig

    cfg = SynthConfig(env=EnvConfig(name="bench-add", tasks=TaskSourceConfig(n=tasks)), out=out,
                      concurrency=concurrency, report=ReportConfig(progress=False, plots=False))
    cfg.model.base_url, cfg.model.name, cfg.model.max_concurrency = base_url, "fake", max(64, concurrency)
    cfg.curation.dedup.near = False  # a set of 1,500 near-identical templated answers is not the point
    return cfg


# -- the baseline: a bare async client sending the same conversations -------------------------------
async def bare_client(base_url: str, tasks: int, concurrency: int) -> int:
    import httpx

    from agentkit.env import YOUTU_AGENT_PROMPT

    tools = [{"type": "function", "function": {"name": "add", "description": "Add two integers", "parameters": ADD}}]
    semaphore = asyncio.Semaphore(concurrency)
    requests = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def episode(i: int) -> None:
            nonlocal requests
            messages = [{"role": "system", "content": YOUTU_AGENT_PROMPT},
                        {"role": "user", "content": f"task {i}: what is {i}+{2 * i + 1}?"}]
            async with semaphore:
                while True:
                    body = {"model": "fake", "messages": messages, "tools": tools, "temperature": 0.7,
                            "top_p": 0.8, "max_tokens": 1024, "n": 1, "seed": i, "top_k": 20}
                    reply = (await http.post(base_url + "/chat/completions", json=body)).json()
                    requests += 1
                    message = reply["choices"][0]["message"]
                    messages.append(message)
                    if not message.get("tool_calls"):
                        return
                    call = message["tool_calls"][0]
                    args = json.loads(call["function"]["arguments"])
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(args["a"] + args["b"])})

        await asyncio.gather(*(episode(i) for i in range(tasks)))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed rounds of each side")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    import logging

    from agentkit.synth.cli import run

    register_env()
    proc, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run("synth", synth_config(base_url, 20, args.concurrency, os.path.join(tmp, "warmup")))  # imports
            asyncio.run(bare_client(base_url, 20, args.concurrency))
            logging.getLogger().setLevel(logging.WARNING)
            synth_times, bare_times = [], []
            for round_ in range(args.rounds):
                out = os.path.join(tmp, f"run{round_}")
                started = time.perf_counter()
                run("synth", synth_config(base_url, args.tasks, args.concurrency, out))
                synth_times.append(time.perf_counter() - started)
                manifest = json.loads(Path(out, "manifest.json").read_text())
                assert manifest["counts"]["curated"] == args.tasks, manifest["counts"]
                started = time.perf_counter()
                requests = asyncio.run(bare_client(base_url, args.tasks, args.concurrency))
                bare_times.append(time.perf_counter() - started)
                assert requests == 2 * args.tasks
    finally:
        proc.terminate()
        proc.wait()

    requests = 2 * args.tasks
    synth_rate = requests / min(synth_times)
    bare_rate = requests / min(bare_times)
    print(f"\n{args.tasks} two-turn episodes ({requests} requests), concurrency {args.concurrency}, best of "
          f"{args.rounds}: synth {min(synth_times):.2f}s (rollouts, verify, raw shard, curation, dataset, "
          f"manifest), bare httpx client {min(bare_times):.2f}s")
    print(f"synth_requests_per_s: {synth_rate:.1f}")
    print(f"bare_client_requests_per_s: {bare_rate:.1f}")
    print(f"synth_turns_per_s: {synth_rate:.1f}")
    print(f"synth_trajectories_per_s: {args.tasks / min(synth_times):.1f}")
    print(f"synth_vs_bare_throughput_ratio: {synth_rate / bare_rate:.3f}")


if __name__ == "__main__":
    main()
