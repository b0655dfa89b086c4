"""Mid-training from a pre-trained checkpoint versus from a random init of the same shape: same trajectories,
same steps, same recipe (`agentkit train stage=midtrain`, loss on the agent's turns).

What it measures on a finished demo run (`agentkit demo`): teacher-forced accuracy on held-out reference
trajectories (a tenth of the run's synthesized tasks, split by task id): the share of conversations whose every
agent token is predicted, per env, and the accuracy on the digits the agent writes (numbers copied into tool
calls and answers). Also the copy bias of each checkpoint: how much a digit placed at the start of a context
raises that digit's log-probability at its end (nats), and whether each init copies in plain text: the share of
digits predicted when an expression is restated as code ("In Python, $3 \\times 4$ is written 3*4.").
More checkpoints of the same shape (`--init name=path`: another pre-training corpus, a partly reset model) are
mid-trained and scored the same way, so a hypothesis about the init is one command.

    .venv/bin/python bench/midtrain_init.py [--run runs/demo] [--steps 300] [--init name=path ...]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path


def split_trajectories(run: Path, out: Path, held_share: float) -> tuple[Path, dict[str, Path]]:
    """Write the run's trajectories minus a held-out share of its tasks (by task id) to ``out/train``, and the
    held-out reference trajectories (no injected mistake) to ``out/held-<env>.jsonl``."""
    files = sorted(glob.glob(str(run / "synth" / "mid" / "*" / "data" / "*.jsonl")))
    if not files:
        raise SystemExit(
            f"{run}/synth/mid/*/data/*.jsonl: no trajectories (run `agentkit demo out={run}` first)"
        )
    (out / "train").mkdir(parents=True)
    held: dict[str, list[str]] = {}
    with open(out / "train" / "trajectories.jsonl", "w") as sink:
        for file in files:
            for line in open(file):
                row = json.loads(line)
                if zlib.crc32(row["task"]["id"].encode()) % 1000 >= held_share * 1000:
                    sink.write(line)
                elif not (row.get("meta") or {}).get("mistake"):
                    held.setdefault(row["task"]["env"], []).append(line)
    paths = {}
    for env, lines in held.items():
        paths[env] = out / f"held-{env}.jsonl"
        paths[env].write_text("".join(lines))
    return out / "train" / "trajectories.jsonl", paths


def fresh_copy(pretrained: Path, out: Path, seed: int) -> Path:
    """A random init with the pre-trained checkpoint's config and tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(pretrained))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(pretrained).save_pretrained(out)
    return out


def midtrain(init: Path, data: Path, out: Path, steps: int, seed: int) -> Path:
    command = [
        sys.executable,
        "-m",
        "agentkit.cli",
        "train",
        "stage=midtrain",
        "model=hf",
        f"model.path={init}",
        f"model.name={out.name}",
        f"out={out}",
        f"data={data}",
        "data.sources.main.weight=0.95",
        "data.sources.general.weight=0.05",
        "data.sources.general.n=1500",
        "data.loss_roles=[assistant]",
        f"trainer.max_steps={steps}",
        "trainer.learning_rate=0.001",
        "trainer.max_length=512",
        "trainer.per_device_train_batch_size=8",
        "trainer.gradient_accumulation_steps=1",
        "trainer.lr_scheduler=wsd",
        "trainer.warmup_ratio=0.03",
        "trainer.decay_ratio=0.3",
        "trainer.logging_steps=50",
        "trainer.save_steps=1000000",
        "trainer.resume=never",
        f"seed={seed}",
    ]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return out


def teacher_forced(path: Path, held: dict[str, Path]) -> dict[str, float]:
    """Per env, the share of held-out trajectories whose every agent token is the argmax; and the accuracy on
    the digits the agent writes. Rendered by the training loader, exactly as mid-training renders its data."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentkit.train.config import SourceConfig
    from agentkit.train.data import render_item
    from agentkit.train.render import IGNORE, LossPolicy
    from agentkit.train.sources import SourceStats, TemplateCheck, iter_items

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    policy = LossPolicy.of(["assistant"], False)
    digits = torch.tensor(sorted(set(tokenizer.convert_tokens_to_ids(list("0123456789")))))
    result: dict[str, float] = {}
    right = total = 0
    with torch.no_grad():
        for env, file in held.items():
            items = iter_items(env, SourceConfig(path=str(file)), TemplateCheck(None), SourceStats(env))
            exact = count = 0
            for item in items:
                example = render_item(item, tokenizer, policy)
                ids, labels = torch.tensor([example["input_ids"]]), torch.tensor(example["labels"])
                predicted = model(ids).logits[0, :-1].argmax(-1)
                target, mask = labels[1:], labels[1:] != IGNORE
                hit = predicted == target
                exact += bool((hit | ~mask).all())
                count += 1
                on_digits = mask & torch.isin(target, digits)
                right += int((hit & on_digits).sum())
                total += int(on_digits.sum())
            result[f"exact_{env}"] = exact / max(1, count)
    result["digit_acc"] = right / max(1, total)
    return result


def copy_bias(path: Path, seed: int = 0) -> float:
    """Mean over digits d of log p(d | BOS d <text>) - log p(d | BOS e <text>) for another digit e (nats)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    digits = tokenizer.convert_tokens_to_ids(list("0123456789"))
    text = tokenizer("The answer to the question about the order is", add_special_tokens=False)["input_ids"]
    rng, effects = random.Random(seed), []
    with torch.no_grad():
        for d in digits:
            other = rng.choice([e for e in digits if e != d])
            with_d, without = ([[tokenizer.bos_token_id, first, *text]] for first in (d, other))
            logp = [
                torch.log_softmax(model(torch.tensor(ctx)).logits[0, -1], -1)[d].item()
                for ctx in (with_d, without)
            ]
            effects.append(logp[0] - logp[1])
    return sum(effects) / len(effects)


def text_copy(path: Path, n: int = 60, seed: int = 123) -> float:
    """Share of the digits of ``code`` predicted in "In Python, $<tex>$ is written <code>." (teacher-forced): does
    the checkpoint copy numbers in plain text, the way pre-training drills show it?"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentkit.synth.demo.corpus import integer_expression

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    rng, right, total = random.Random(seed), 0, 0
    with torch.no_grad():
        for _ in range(n):
            tex, code, _value = integer_expression(rng)
            head = tokenizer(f"In Python, ${tex}$ is written ", add_special_tokens=False)["input_ids"]
            tail = tokenizer(f"{code}.", add_special_tokens=False)["input_ids"]
            predicted = (
                model(torch.tensor([[tokenizer.bos_token_id, *head, *tail]])).logits[0, :-1].argmax(-1)
            )
            for i, token in enumerate(tail):
                if tokenizer.convert_ids_to_tokens(token).isdigit():
                    total += 1
                    right += int(predicted[len(head) + i].item() == token)
    return right / max(1, total)


def named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"--init {text!r}: expected name=<checkpoint directory>")
    if name in ("pretrained", "random"):
        raise argparse.ArgumentTypeError(f"--init {text!r}: '{name}' is taken by the built-in inits")
    return name, Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished `agentkit demo` run")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--held-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument(
        "--init",
        type=named_path,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkpoint of the same shape to mid-train and score (repeatable)",
    )
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from rich.console import Console
    from rich.table import Table

    work = args.out or Path(tempfile.mkdtemp(prefix="midtrain-init-"))
    data, held = split_trajectories(args.run, work / "data", args.held_share)
    counts = ", ".join(f"{env} {sum(1 for _ in open(file))}" for env, file in held.items())
    print(f"held-out reference trajectories: {counts}; training data {data}", flush=True)
    inits = {
        "pretrained": args.run / "ckpt" / "pretrain",
        "random": fresh_copy(args.run / "ckpt" / "pretrain", work / "random-init", args.seed),
    }
    inits.update(dict(args.init))
    results = {}
    for name, init in inits.items():
        trained = midtrain(init, data, work / f"midtrain-{name}", args.steps, args.seed)
        results[name] = {
            "copy_bias_init": copy_bias(init),
            "text_copy_init": text_copy(init),
            **teacher_forced(trained, held),
            "copy_bias_trained": copy_bias(trained),
        }

    table = Table(title=f"mid-training {args.steps} steps: from {args.run}/ckpt/pretrain vs a random init")
    keys = list(results["pretrained"])
    table.add_column("init")
    for key in keys:
        table.add_column(key, justify="right")
    for name, row in results.items():
        table.add_row(name, *(f"{row.get(k, float('nan')):.3f}" for k in keys))
    Console().print(table)
    pre, rnd = results["pretrained"], results["random"]
    print(f"copy_bias_pretrained_init: {pre['copy_bias_init']:.3f}")
    print(f"copy_bias_random_init: {rnd['copy_bias_init']:.3f}")
    print(f"digit_acc_pretrained_init: {pre['digit_acc']:.3f}")
    print(f"digit_acc_random_init: {rnd['digit_acc']:.3f}")
    for name, _path in args.init:
        print(f"digit_acc_{name}_init: {results[name]['digit_acc']:.3f}")
    print(f"digit_acc_ratio_pretrained_over_random: {pre['digit_acc'] / max(rnd['digit_acc'], 1e-9):.3f}")


if __name__ == "__main__":
    main()
