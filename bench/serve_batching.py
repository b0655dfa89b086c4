"""Batching benchmark for the embedded server: 8 requests sent one after another (the baseline) versus the
same 8 sent at once, against one real ``agentkit serve engine=transformers`` process on the tiny MLA model.

Every request generates exactly ``--max-tokens`` tokens (``ignore_eos``), so both sides do the same work.
Rounds alternate sequential and concurrent so that machine load hits both alike; the ratio is the
total sequential time over the total concurrent time. Target: >= 3x.

    .venv/bin/python bench/serve_batching.py [--requests 8] [--max-tokens 64] [--rounds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time


def request_body(i: int, max_tokens: int) -> dict:
    return {
        "model": "tiny-mla",
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


async def one(http, url: str, body: dict) -> int:
    response = await http.post(url + "/chat/completions", json=body)
    response.raise_for_status()
    return response.json()["usage"]["completion_tokens"]


async def measure(url: str, n: int, max_tokens: int, rounds: int, progress, task) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=600) as http:
        await one(http, url, request_body(99, 4))  # warm-up: first-call allocations, thread start
        sequential, concurrent, tokens = [], [], []
        for _ in range(rounds):
            started = time.perf_counter()
            for i in range(n):
                tokens.append(await one(http, url, request_body(i, max_tokens)))
            sequential.append(time.perf_counter() - started)
            progress.advance(task)
            started = time.perf_counter()
            tokens += await asyncio.gather(*(one(http, url, request_body(i, max_tokens)) for i in range(n)))
            concurrent.append(time.perf_counter() - started)
            progress.advance(task)
        stats = (await http.get(url[:-3] + "/health")).json()["stats"]
    if any(t != max_tokens for t in tokens):
        raise SystemExit(f"requests generated {sorted(set(tokens))} tokens, expected {max_tokens} each")
    return {"sequential": sequential, "concurrent": concurrent, "stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of the server")
    args = parser.parse_args()

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from agentkit.config import ModelConfig
    from agentkit.server.launch import embedded_server

    model = ModelConfig(name="tiny-mla", arch={"preset": "tiny-mla"})
    with (
        tempfile.TemporaryDirectory() as tmp,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        ) as progress,
    ):
        start = progress.add_task("starting agentkit serve", total=None)
        with embedded_server(
            model,
            max_batch_size=args.requests,
            log_path=f"{tmp}/server.log",
            timeout=300,
            extra=[f"threads={args.threads}"],
        ) as url:
            progress.remove_task(start)
            task = progress.add_task(
                f"{args.requests} requests x {args.max_tokens} tokens, sequential / concurrent",
                total=2 * args.rounds,
            )
            result = asyncio.run(measure(url, args.requests, args.max_tokens, args.rounds, progress, task))

    sequential, concurrent = sum(result["sequential"]), sum(result["concurrent"])
    tokens = args.requests * args.max_tokens * args.rounds
    print(
        f"server: tiny-mla, {args.threads} torch thread(s), max_batch_size={args.requests}; "
        f"{args.rounds} rounds of {args.requests} requests x {args.max_tokens} tokens each way"
    )
    print("per round, sequential s: " + ", ".join(f"{s:.2f}" for s in result["sequential"]))
    print("per round, concurrent s: " + ", ".join(f"{s:.2f}" for s in result["concurrent"]))
    rounds = zip(result["sequential"], result["concurrent"], strict=True)
    print("per round, speedup: " + ", ".join(f"{a / b:.2f}x" for a, b in rounds))
    print(
        f"server batches: {result['stats']['batches']} for {result['stats']['rows']} rows, "
        f"largest {result['stats']['largest_batch']}"
    )
    print(f"sequential_seconds_per_round: {sequential / args.rounds:.2f}")
    print(f"concurrent_seconds_per_round: {concurrent / args.rounds:.2f}")
    print(f"sequential_tokens_per_second: {tokens / sequential:.1f}")
    print(f"concurrent_tokens_per_second: {tokens / concurrent:.1f}")
    print(f"largest_batch: {result['stats']['largest_batch']}")
    print(f"batching_speedup_ratio: {sequential / concurrent:.2f}")


if __name__ == "__main__":
    main()
