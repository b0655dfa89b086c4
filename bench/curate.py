"""``agentkit curate`` at scale: peak memory and speed over generated shards with planted duplicates.

Writes N generated trajectory records (two-turn tool-use conversations of ~150 random words, ~2 KB
each) into four shard datasets, plants exact and near duplicates of records of one shard into the
others, and runs ``agentkit curate`` over the shards in a subprocess at two sizes. Peak memory is the
subprocess's maximum RSS less that of a subprocess that only imports the same modules (the baseline,
measured side by side); its growth between the two sizes, scaled to 100k, is the memory per 100k
trajectories. The planted duplicates must be exactly the ones dropped.

    python bench/curate.py [--records 100000] [--small 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 4
BASELINE = "import agentkit.cli, agentkit.synth.merge, agentkit.synth.config, datasketch, numpy, rich.progress, hydra"


def record(i: int, words: list[str], rng: random.Random, sample: int = 0, text: str | None = None) -> dict:
    text = text if text is not None else " ".join(rng.choice(words) for _ in range(150))
    task = f"gen-{i:07d}"
    return {
        "id": f"bench/{task}/s{sample}",
        "schema_version": 1,
        "task": {"id": task, "env": "bench", "prompt": f"Task {i}: combine the numbers", "meta": {}},
        "messages": [
            {"role": "system", "content": "You are a careful agent."},
            {"role": "user", "content": f"Task {i}: combine the numbers"},
            {
                "role": "assistant",
                "content": f"<think>{text[:400]}</think>",
                "tool_calls": [
                    {
                        "id": "c0",
                        "type": "function",
                        "function": {"name": "python", "arguments": json.dumps({"code": text[400:700]})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c0", "name": "python", "content": "42"},
            {"role": "assistant", "content": text[700:] + " The answer is \\boxed{42}."},
        ],
        "status": "completed",
        "reward": 1.0,
        "verdict": {"passed": True, "reason": "ok"},
        "stats": {"turns": 2, "tool_calls": 1},
        "meta": {"sample": sample, "key": f"k{i}-{sample}"},
    }


def generate(root: Path, n: int, planted: int, seed: int = 0) -> set[str]:
    """Four shard datasets of ``n`` records in all, plus ``planted`` copies (half exact, half near) of
    shard 0's records in the other shards. Returns the ids of the copies."""
    rng = random.Random(seed)
    words = [f"w{k}" for k in range(5000)]
    handles = []
    for shard in range(SHARDS):
        (root / f"shard{shard}" / "data").mkdir(parents=True)
        handles.append(open(root / f"shard{shard}" / "data" / "train-00000.jsonl", "w"))
    originals = []
    for i in range(n):
        row = record(i, words, rng)
        handles[i % SHARDS].write(json.dumps(row) + "\n")
        if i % SHARDS == 0 and len(originals) < planted:
            originals.append((i, row))
    copies = set()
    for number, (i, row) in enumerate(originals):
        text = (
            row["messages"][2]["content"][7:-8]
            + json.loads(row["messages"][2]["tool_calls"][0]["function"]["arguments"])["code"]
            + row["messages"][4]["content"][: -len(" The answer is \\boxed{42}.")]
        )
        copy = record(i, words, rng, sample=1, text=text)
        copy["messages"] = json.loads(json.dumps(row["messages"]))
        if number % 2:  # near: the same words, other punctuation
            copy["messages"][4]["content"] = copy["messages"][4]["content"].replace(".", "!")
        handles[1 + number % (SHARDS - 1)].write(json.dumps(copy) + "\n")
        copies.add(copy["id"])
    for handle in handles:
        handle.close()
    return copies


def peak_rss(command: list[str]) -> tuple[int, float]:
    """Max RSS (bytes) and wall seconds of one subprocess (each measured in a fresh wrapper process)."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, r.returncode)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True
    )
    rss, seconds, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}")
    return int(rss) * 1024, float(seconds)


def curate_once(root: Path, n: int, planted: int) -> dict:
    data = root / f"n{n}"
    copies = generate(data, n, planted)
    out = data / "merged"
    command = [
        sys.executable,
        "-m",
        "agentkit.cli",
        "curate",
        *(str(data / f"shard{s}") for s in range(SHARDS)),
        f"out={out}",
        "progress=false",
    ]
    rss, seconds = peak_rss(command)
    manifest = json.loads((out / "manifest.json").read_text())
    dropped = {json.loads(line)["id"] for line in (out / "dropped.jsonl").read_text().splitlines()}
    assert dropped == copies, (len(dropped), len(copies))
    assert manifest["counts"]["kept"] == n
    return {"rss": rss, "seconds": seconds, "manifest": manifest, "input": n + planted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--planted", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("AGENTKIT_CONF", str(ROOT / "conf"))
    with tempfile.TemporaryDirectory() as tmp:
        baseline, _ = peak_rss([sys.executable, "-c", BASELINE])
        small = curate_once(Path(tmp), args.small, args.planted)
        large = curate_once(Path(tmp), args.records, args.planted)
    per_100k = (large["rss"] - small["rss"]) / (large["input"] - small["input"]) * 100_000
    bytes_per_kept = (
        large["manifest"]["index_bytes_per_trajectory"] * large["input"] / large["manifest"]["counts"]["kept"]
    )
    print(
        f"\n{SHARDS} shards, {args.planted} planted cross-shard duplicates ({args.planted // 2} exact, "
        f"{args.planted - args.planted // 2} near) each run; all of them and nothing else dropped"
    )
    for run in (small, large):
        print(
            f"  {run['input']} records: {run['seconds']:.1f}s, peak RSS {run['rss'] / 2**20:.0f} MiB "
            f"(imports alone {baseline / 2**20:.0f} MiB), {run['input'] / run['seconds']:.0f} records/s"
        )
    print(f"curate_planted_duplicates_removed: {args.planted}")
    print(f"curate_index_bytes_per_kept_trajectory: {bytes_per_kept:.1f}")
    print(f"curate_peak_rss_mib_at_{args.records}: {large['rss'] / 2**20:.0f}")
    print(f"curate_peak_rss_above_imports_mib_at_{args.records}: {(large['rss'] - baseline) / 2**20:.0f}")
    print(f"curate_peak_rss_growth_mib_per_100k_trajectories: {per_100k / 2**20:.1f}")
    print(f"curate_records_per_s: {large['input'] / large['seconds']:.0f}")


if __name__ == "__main__":
    main()
