"""Training throughput: ``agentkit train stage=sft`` versus a bare TRL ``SFTTrainer`` script, in one run.

Both train the same tiny MLA checkpoint on the same conversations (toy tool-use trajectories of varied
length, written like a synth run) with the same packing, batch and step count; the bare script lets TRL
tokenize the conversations itself (assistant-only loss through the template's generation markers), agentkit
renders them with its own prefix-derived masks. Runs alternate (TRL, agentkit, TRL, agentkit...) and each
side keeps its best, so load from other processes hurts both alike. Also reports the packing efficiency
of agentkit's packed rows (real tokens / (rows x max_length)).

    python bench/train.py [--steps 6] [--max-length 2048] [--examples 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is named like the ``train`` package: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def bare_trl(model_dir: Path, records: list, out: Path, steps: int, max_length: int) -> tuple[float, int]:
    """The reference: a plain TRL script. Returns (train seconds, tokens trained)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [
        {
            "messages": [m.model_dump(exclude_none=True) for m in r.messages],
            "tools": json.dumps([t.model_dump(exclude_none=True) for t in r.tools]),
        }
        for r in records
    ]
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        max_length=max_length,
        packing=True,
        packing_strategy="bfd",
        assistant_only_loss=True,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        bf16=False,
        activation_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        data_seed=0,
        dataloader_pin_memory=False,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h][-1]
    return seconds, int(tokens)


def agentkit_sft(model_dir: Path, data_dir: Path, out: Path, steps: int, max_length: int) -> dict:
    """``agentkit train stage=sft`` through the real command line entry point (in-process)."""
    from agentkit.cli import main

    main(
        [
            "train",
            "stage=sft",
            f"model={model_dir}",
            f"data={data_dir}",
            f"out={out}",
            f"trainer.max_steps={steps}",
            f"trainer.max_length={max_length}",
            "trainer.gradient_accumulation_steps=1",
            "trainer.save_steps=1000000",
            "trainer.logging_steps=1",
            "trainer.resume=never",
            "trainer.lr_scheduler=cosine",
            "trainer.learning_rate=2e-4",
        ]
    )
    return json.loads((out / "train_report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("AGENTKIT_CONF", str(ROOT / "conf"))

    from rich.console import Console
    from rich.table import Table

    from agentkit.jsonl import write_jsonl
    from agentkit.models import materialize
    from agentkit.train.corpus import toy_trajectories

    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        records = list(toy_trajectories(args.examples, seed=0))
        write_jsonl(tmp / "synth" / "data" / "train-00000.jsonl", records)
        model_dir = materialize({"preset": "tiny-mla"}, tmp / "model")
        trl_runs, ours_runs, reports = [], [], []
        for round_ in range(args.rounds):
            console.print(f"[bold]round {round_ + 1}/{args.rounds}[/bold]: bare TRL SFTTrainer")
            seconds, tokens = bare_trl(model_dir, records, tmp / f"trl{round_}", args.steps, args.max_length)
            trl_runs.append(tokens / seconds)
            console.print(f"[bold]round {round_ + 1}/{args.rounds}[/bold]: agentkit train stage=sft")
            report = agentkit_sft(
                model_dir, tmp / "synth", tmp / f"ours{round_}", args.steps, args.max_length
            )
            reports.append(report)
            ours_runs.append(report["tokens"] / report["seconds"])
            if report["tokens"] != tokens:
                console.print(
                    f"[yellow]note:[/yellow] token counts differ: agentkit {report['tokens']}, TRL {tokens}"
                )
        ours, trl = max(ours_runs), max(trl_runs)
        efficiency = reports[-1]["packing"]["efficiency"]
        table = Table(title=f"SFT on tiny-mla, {args.steps} steps x 1 packed row of {args.max_length} tokens")
        for column in ("", "tokens/s (best)", "all runs"):
            table.add_column(column)
        table.add_row("bare TRL SFTTrainer", f"{trl:.0f}", ", ".join(f"{x:.0f}" for x in trl_runs))
        table.add_row("agentkit train stage=sft", f"{ours:.0f}", ", ".join(f"{x:.0f}" for x in ours_runs))
        console.print(table)
        print(f"packed rows: {reports[-1]['packing']['rows']}, tokens per run: {reports[-1]['tokens']}")
        print(f"sft_tokens_per_s_agentkit: {ours:.1f}")
        print(f"sft_tokens_per_s_trl: {trl:.1f}")
        print(f"sft_throughput_ratio: {ours / trl:.3f}")
        print(f"packing_efficiency: {efficiency:.4f}")


if __name__ == "__main__":
    main()
