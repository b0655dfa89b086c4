"""Synthesis throughput against a zero-latency fake OpenAI server, side by side with a bare client.

The server (a plain ASGI app under uvicorn, in its own process) answers instantly: a tool call on
the first turn, the final answer on the second. ``agentkit synth`` (the full command minus Hydra:
rollouts, verification, the raw shard, curation, the dataset and its manifest) and a bare
``httpx.AsyncClient`` send the same two-turn conversations with the same concurrency. The ratio
says how much of the bare client's request rate the pipeline keeps.

Then ``executor=ray`` on a local two-node Ray cluster (``ray.cluster_utils.Cluster``, one CPU and one
rollout actor per node) against ``executor=local`` at the same total concurrency (64 and 256), side by
side on the same server. Throughput is episodes over the rollout phase (the executor's
``rollout_seconds``: from the first episode handed out to the last one written; joining the cluster
and starting the actors, a few seconds once per run, are outside it and printed apart).

    python bench/synth.py [--tasks 1500] [--concurrency 32] [--ray-tasks 600] [--no-ray]
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
ADD = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


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
            message = {
                "role": "assistant",
                "content": "<think>Add them.</think>",
                "tool_calls": [
                    {
                        "id": "c0",
                        "type": "function",
                        "function": {"name": "add", "arguments": json.dumps({"a": a, "b": b})},
                    }
                ],
            }
            finish = "tool_calls"
        payload = {
            "id": "x",
            "object": "chat.completion",
            "model": "fake",
            "created": 0,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
        }
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
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
    """Register ``bench-add`` (here, and in every Ray worker process through the setup hook)."""
    from agentkit.env import Env, Episode, Tool
    from agentkit.records import Task, Verdict
    from agentkit.registry import ENVS

    if "bench-add" in ENVS:
        return

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
            return [
                Task(
                    id=f"t{i}",
                    env=self.name,
                    prompt=f"task {i}: what is {i}+{2 * i + 1}?",
                    meta={"answer": 3 * i + 1},
                )
                for i in range(source.n)
            ]

    ENVS.register("bench-add")(BenchEnv)


def synth_config(base_url: str, tasks: int, concurrency: int, out: str, executor=None):
    from agentkit.config import EnvConfig, TaskSourceConfig
    from agentkit.synth.config import ExecutorConfig, ReportConfig, SynthConfig

    cfg = SynthConfig(
        env=EnvConfig(name="bench-add", tasks=TaskSourceConfig(n=tasks)),
        out=out,
        concurrency=concurrency,
        report=ReportConfig(progress=False, plots=False),
        executor=executor or ExecutorConfig(),
    )
    cfg.model.base_url, cfg.model.name, cfg.model.max_concurrency = base_url, "fake", max(64, concurrency)
    cfg.curation.dedup.near = False  # a set of 1,500 near-identical templated answers is not the point
    return cfg


# -- the baseline: a bare async client sending the same conversations -------------------------------
async def bare_client(base_url: str, tasks: int, concurrency: int) -> int:
    import httpx

    from agentkit.env import YOUTU_AGENT_PROMPT

    tools = [
        {
            "type": "function",
            "function": {"name": "add", "description": "Add two integers", "parameters": ADD},
        }
    ]
    semaphore = asyncio.Semaphore(concurrency)
    requests = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def episode(i: int) -> None:
            nonlocal requests
            messages = [
                {"role": "system", "content": YOUTU_AGENT_PROMPT},
                {"role": "user", "content": f"task {i}: what is {i}+{2 * i + 1}?"},
            ]
            async with semaphore:
                while True:
                    body = {
                        "model": "fake",
                        "messages": messages,
                        "tools": tools,
                        "temperature": 0.7,
                        "top_p": 0.8,
                        "max_tokens": 1024,
                        "n": 1,
                        "seed": i,
                        "top_k": 20,
                    }
                    reply = (await http.post(base_url + "/chat/completions", json=body)).json()
                    requests += 1
                    message = reply["choices"][0]["message"]
                    messages.append(message)
                    if not message.get("tool_calls"):
                        return
                    call = message["tool_calls"][0]
                    args = json.loads(call["function"]["arguments"])
                    messages.append(
                        {"role": "tool", "tool_call_id": call["id"], "content": str(args["a"] + args["b"])}
                    )

        await asyncio.gather(*(episode(i) for i in range(tasks)))
    return requests


# -- executor=ray against executor=local ------------------------------------------------------------
def ray_cluster():
    """A two-node Ray cluster on this machine, joined by this process (the actors register the env)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args=dict(node, include_dashboard=False))
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(ROOT)},
            "worker_process_setup_hook": "bench.synth.register_env",
        },
    )
    return cluster


def ray_versus_local(base_url: str, tasks: int, concurrencies: list[int], rounds: int, tmp: str) -> dict:
    from agentkit.synth.cli import run
    from agentkit.synth.config import ExecutorConfig

    cluster = ray_cluster()
    import ray

    try:
        ray_executor = ExecutorConfig(name="ray", address=cluster.address)
        rates: dict[tuple[str, int], float] = {}
        startup: list[float] = []
        for concurrency in concurrencies:
            for round_ in range(rounds):
                for name, executor in (("local", None), ("ray", ray_executor)):
                    out = os.path.join(tmp, f"{name}-{concurrency}-{round_}")
                    started = time.perf_counter()
                    run("synth", synth_config(base_url, tasks, concurrency, out, executor))
                    wall = time.perf_counter() - started
                    counts = json.loads(Path(out, "manifest.json").read_text())["counts"]
                    assert counts["curated"] == tasks and counts["episodes_finished"] == tasks, counts
                    seconds = counts["execution"]["rollout_seconds"]
                    rates[name, concurrency] = max(rates.get((name, concurrency), 0.0), tasks / seconds)
                    if name == "ray":
                        startup.append(wall - seconds)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"rates": rates, "startup": startup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed rounds of each side")
    parser.add_argument("--ray-tasks", type=int, default=600, help="episodes per executor=ray/local run")
    parser.add_argument("--ray-rounds", type=int, default=1)
    parser.add_argument("--no-ray", action="store_true", help="skip executor=ray against executor=local")
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
            versus = (
                None
                if args.no_ray
                else ray_versus_local(base_url, args.ray_tasks, [64, 256], args.ray_rounds, tmp)
            )
    finally:
        proc.terminate()
        proc.wait()

    requests = 2 * args.tasks
    synth_rate = requests / min(synth_times)
    bare_rate = requests / min(bare_times)
    print(
        f"\n{args.tasks} two-turn episodes ({requests} requests), concurrency {args.concurrency}, best of "
        f"{args.rounds}: synth {min(synth_times):.2f}s (rollouts, verify, raw shard, curation, dataset, "
        f"manifest), bare httpx client {min(bare_times):.2f}s"
    )
    print(f"synth_requests_per_s: {synth_rate:.1f}")
    print(f"bare_client_requests_per_s: {bare_rate:.1f}")
    print(f"synth_turns_per_s: {synth_rate:.1f}")
    print(f"synth_trajectories_per_s: {args.tasks / min(synth_times):.1f}")
    print(f"synth_vs_bare_throughput_ratio: {synth_rate / bare_rate:.3f}")
    if versus is None:
        return
    rates = versus["rates"]
    print(
        f"\nexecutor=ray (2-node local cluster, 1 actor per node) vs executor=local, {args.ray_tasks} episodes, "
        f"best of {args.ray_rounds}; ray cluster join + actor start per run: "
        f"{min(versus['startup']):.1f}-{max(versus['startup']):.1f}s (outside the rates)"
    )
    ratios = []
    for concurrency in (64, 256):
        local, ray_rate = rates["local", concurrency], rates["ray", concurrency]
        ratios.append(ray_rate / local)
        print(f"local_trajectories_per_s_at_{concurrency}: {local:.1f}")
        print(f"ray_trajectories_per_s_at_{concurrency}: {ray_rate:.1f}")
        print(f"ray_vs_local_throughput_ratio_at_{concurrency}: {ray_rate / local:.3f}")
    print(f"ray_vs_local_throughput_ratio: {min(ratios):.3f}")


if __name__ == "__main__":
    main()
