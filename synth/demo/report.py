"""The demo's report: pass@1 per arm and family, B - A with paired bootstrap intervals, the transfer family,
likelihood (APTBench-style) scores before SFT, loss curves, dataset statistics; ``report.md``/``.json`` + PNGs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from agentkit.synth.demo.corpus import trajectory_rows
from agentkit.synth.demo.steps import StepRecord

Demo = Any
"""``agentkit.synth.demo.pipeline.Demo`` (the pipeline imports this module, never the other way)."""

COMPARISONS = (("B", "A"), ("C", "A"), ("B", "C"))
"""Differences the report gives intervals for (when both arms ran)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pass_summary(passed: int, samples: int, confidence: float) -> dict[str, Any]:
    from agentkit.synth.metrics import wilson_interval

    low, high = wilson_interval(passed, samples, confidence)
    return {
        "passed": passed,
        "samples": samples,
        "pass@1": passed / samples if samples else None,
        "ci": [round(low, 4), round(high, 4)] if samples else None,
    }


def paired_difference(
    first: dict[str, float], second: dict[str, float], *, confidence: float, resamples: int, seed: int
) -> dict[str, Any] | None:
    """Mean of ``first - second`` over the tasks both were evaluated on, with a percentile bootstrap interval
    that resamples tasks (the arms answered the same tasks, so the difference is paired per task)."""
    tasks = sorted(set(first) & set(second))
    if not tasks:
        return None
    diffs = [first[t] - second[t] for t in tasks]
    mean = sum(diffs) / len(diffs)
    out: dict[str, Any] = {"diff": round(mean, 4), "tasks": len(tasks), "ci": None}
    if resamples > 0:
        rng = random.Random(seed)
        size = len(diffs)
        means = sorted(sum(diffs[rng.randrange(size)] for _ in range(size)) / size for _ in range(resamples))
        alpha = (1 - confidence) / 2
        low = means[max(0, int(math.floor(alpha * resamples)))]
        high = means[min(resamples - 1, int(math.ceil((1 - alpha) * resamples)) - 1)]
        out["ci"] = [round(low, 4), round(high, 4)]
    return out


def eval_results(demo: Demo) -> dict[str, Any]:
    """Per model: per family pass@1 (Wilson interval) and per-task outcomes; overall over all families."""
    confidence = demo.cfg.eval.confidence
    results: dict[str, Any] = {}
    for model in demo.models():
        families: dict[str, Any] = {}
        passed = samples = checks = disagreements = 0
        for family in demo.cfg.families:
            report = _read_json(demo.path("eval", model, family, "report.json"))
            if not report:
                continue
            m = report["metrics"]
            per_task = {f"{family}/{row['task']}": row["pass@1"] for row in report.get("per_task") or []}
            families[family] = pass_summary(m["passed"], m["samples"], confidence) | {
                "status": report.get("status"),
                "completion_tokens": (report.get("tokens") or {}).get("completion"),
                "wall_s": (report.get("seconds") or {}).get("wall"),
                "per_task": per_task,
            }
            passed += m["passed"]
            samples += m["samples"]
            tools = report.get("tools") or {}
            checks += tools.get("parser_checks", 0)
            disagreements += tools.get("parser_disagreements", 0)
        if families:
            results[model] = {
                "families": families,
                "overall": pass_summary(passed, samples, confidence),
                # vLLM's tool-call parser against agentkit's on every turn it parsed (none on the embedded server).
                "tool_call_parsers": {"checks": checks, "disagreements": disagreements},
            }
    return results


def differences(demo: Demo, results: dict[str, Any]) -> dict[str, Any]:
    """``B-A`` (and ``C-A``, ``B-C``) per family and overall, paired over tasks, bootstrap intervals."""
    e = demo.cfg.eval
    out: dict[str, Any] = {}
    for first, second in COMPARISONS:
        if first not in results or second not in results:
            continue
        rows: dict[str, Any] = {}
        pooled_first: dict[str, float] = {}
        pooled_second: dict[str, float] = {}
        for family in demo.cfg.families:
            a = (results[first]["families"].get(family) or {}).get("per_task") or {}
            b = (results[second]["families"].get(family) or {}).get("per_task") or {}
            rows[family] = paired_difference(
                a, b, confidence=e.confidence, resamples=e.bootstrap, seed=demo.seed
            )
            pooled_first |= a
            pooled_second |= b
        rows["overall"] = paired_difference(
            pooled_first, pooled_second, confidence=e.confidence, resamples=e.bootstrap, seed=demo.seed
        )
        out[f"{first}-{second}"] = rows
    return out


def aptbench_results(demo: Demo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in demo.likelihood_models():
        report = _read_json(demo.path("aptbench", model, "aptbench.json"))
        if report:
            out[model] = report
    return out


def _score(node: Any) -> tuple[float | None, int | None]:
    """(accuracy, items) of an APTBench report node (acc_norm is the headline, like lm-eval-harness)."""
    if not isinstance(node, dict):
        return None, None
    for key in ("accuracy", "acc_norm", "acc"):
        value = node.get(key)
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, int | float):
            return float(value), node.get("n")
    return None, node.get("n")


def dataset_stats(demo: Demo) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for path in sorted(demo.path("synth").glob("*/*")):
        manifest = _read_json(path / "manifest.json") or {}
        report = _read_json(path / "report.json") or {}
        mistakes: Counter = Counter()
        phases = 0
        chars = []
        rows = list(trajectory_rows(str(path / "data" / "*.jsonl")))
        for row in rows:
            meta = row.get("meta") or {}
            mistake = meta.get("mistake")
            mistakes[mistake["kind"] if mistake else "none"] += 1
            phases += bool(meta.get("phases"))
            chars.append(sum(len(m.get("content") or "") for m in row["messages"]))
        counts = manifest.get("counts", {})
        stats[f"{path.parent.name}/{path.name}"] = {
            "tasks": counts.get("tasks"),
            "kept": counts.get("curated"),
            "pass_rate": report.get("pass_rate"),
            "turns_mean": (report.get("turns") or {}).get("mean"),
            "tool_calls": (report.get("tools") or {}).get("calls"),
            "tool_errors": (report.get("tools") or {}).get("errors"),
            "mistakes": dict(mistakes),
            "chars_mean": round(sum(chars) / len(chars), 1) if chars else None,
            "wall_s": (report.get("seconds") or {}).get("wall"),
        }
    return stats


def train_stats(demo: Demo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tok = _read_json(demo.path("tokenizer", "tokenizer_report.json"))
    if tok:
        out["tokenizer"] = {k: tok.get(k) for k in ("vocab_size", "docs", "seconds", "compression")}
    for model in ("pretrain", *(f"mid-{a}" for a in demo.arms() if a != "A"), *demo.arms()):
        report = _read_json(demo.ckpt(model) / "train_report.json")
        if not report:
            continue
        out[model] = {
            "stage": report.get("stage"),
            "steps": report.get("steps"),
            "parameters": report.get("parameters"),
            "seconds": report.get("seconds"),
            "tokens": report.get("tokens"),
            "tokens_per_second": report.get("tokens_per_second"),
            "first_loss": report.get("first_loss"),
            "last_loss": report.get("last_loss"),
            "loss_history": report.get("loss_history") or [],
        }
    return out


def loop_results(demo: Demo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(demo.path("loop").glob("*")):
        manifest = _read_json(path / "manifest.json") or {}
        report = _read_json(path / "report.json") or {}
        counts = manifest.get("counts", {})
        out[path.name] = {
            "model": demo.cfg.loop.arm,
            "episodes": counts.get("rollouts"),
            "passed": report.get("passed"),
            "pass_rate": report.get("pass_rate"),
            "kept": counts.get("curated"),
            "tool_call_parsers": {
                "checks": (report.get("tools") or {}).get("parser_checks", 0),
                "disagreements": (report.get("tools") or {}).get("parser_disagreements", 0),
            },
            "dataset": str(path / "data"),
        }
    return out


def check_targets(demo: Demo, results: dict[str, Any], diffs: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured value it was judged on (None: it could not be judged)."""
    t = demo.cfg.targets

    def rate(model: str) -> float | None:
        return ((results.get(model) or {}).get("overall") or {}).get("pass@1")

    targets: dict[str, Any] = {}
    gain = (diffs.get("B-A") or {}).get("overall")
    if gain and gain["ci"]:
        targets[f"B - A overall >= {t.gain:.0%}, interval excluding 0"] = {
            "met": gain["diff"] >= t.gain and gain["ci"][0] > 0,
            "measured": f"{gain['diff']:+.1%} [{gain['ci'][0]:+.1%}, {gain['ci'][1]:+.1%}]",
        }
    for family in demo.transfer_families():
        row = (diffs.get("B-A") or {}).get(family)
        if row and row["ci"]:
            targets[f"B beats A on the transfer family {family}"] = {
                "met": row["diff"] > 0 and row["ci"][0] > 0,
                "measured": f"{row['diff']:+.1%} [{row['ci'][0]:+.1%}, {row['ci'][1]:+.1%}]",
            }
    base = rate("pretrain")
    for arm in ("A", "B"):
        value = rate(arm)
        if value is not None and base is not None:
            targets[f"{arm} at least {t.above_pretrain:.0%} above the pre-trained model"] = {
                "met": value - base >= t.above_pretrain,
                "measured": f"{value:.1%} vs {base:.1%}",
            }
    return targets


def build_report(demo: Demo, records: list[StepRecord], wall: float, engine: str) -> dict[str, Any]:
    from agentkit import __version__

    results = eval_results(demo)
    diffs = differences(demo, results)
    return {
        "agentkit": __version__,
        "seed": demo.seed,
        "out": str(demo.out),
        "engine": engine,
        "wall_seconds": round(wall, 1),
        "cpus": os.cpu_count(),
        "families": {
            name: {"env": f.env, "tasks": f.tasks, "mid": f.mid, "sft": f.sft, "test": f.test}
            for name, f in demo.cfg.families.items()
        },
        "transfer": demo.transfer_families(),
        "results": results,
        "differences": diffs,
        "targets": check_targets(demo, results, diffs),
        "aptbench": aptbench_results(demo),
        "loop": loop_results(demo),
        "datasets": dataset_stats(demo),
        "training": train_stats(demo),
        "steps": [dataclasses.asdict(r) | {"seconds": round(r.seconds, 1)} for r in records],
        "config": dataclasses.asdict(demo.cfg),
    }


# --------------------------------------------------------------------------------------------- markdown


def _pct(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("pass@1") is None:
        return "-"
    lo, hi = summary["ci"]
    return f"{summary['pass@1']:.0%} [{lo:.0%}, {hi:.0%}] ({summary['passed']}/{summary['samples']})"


def _diff(row: dict[str, Any] | None) -> str:
    if not row:
        return "-"
    ci = f" [{row['ci'][0]:+.0%}, {row['ci'][1]:+.0%}]" if row.get("ci") else ""
    return f"{row['diff']:+.0%}{ci}"


def family_label(report: dict[str, Any], family: str) -> str:
    return f"{family} (transfer)" if family in report["transfer"] else family


def markdown(report: dict[str, Any]) -> str:
    families = list(report["families"])
    conf = f"{report['config']['eval']['confidence']:.0%}"
    sft_families = [f for f, row in report["families"].items() if row["sft"]]
    lines = [
        "# agentkit demo: agentic mid-training ablation",
        "",
        f"Seed {report['seed']}, {report['cpus']} CPUs, wall {report['wall_seconds']:.0f} s, served by "
        f"{report['engine']}. From one pre-trained checkpoint: **A** = SFT only; **B** = agentic mid-training, "
        f"then the same SFT{'; **C** = B with half the mid-training steps' if 'C' in report['results'] else ''}. "
        f"SFT data: {', '.join(sft_families)}; "
        f"transfer (in mid-training, not in SFT): {', '.join(report['transfer']) or 'none'}.",
        "",
        f"Held-out pass@1 (greedy, agent in the sandboxes), {conf} Wilson intervals:",
        "",
        "| model | " + " | ".join(family_label(report, f) for f in families) + " | overall |",
        "|---|" + "---|" * (len(families) + 1),
    ]
    for model, result in report["results"].items():
        cells = [_pct(result["families"].get(f)) for f in families]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {_pct(result['overall'])} |")
    parsers = {
        m: r["tool_call_parsers"]
        for m, r in report["results"].items()
        if r.get("tool_call_parsers", {}).get("checks")
    }
    if parsers:
        lines += [
            "",
            "Tool calls parsed by the server (vLLM's hermes parser) and by agentkit, turn by turn: "
            + "; ".join(
                f"{m} {p['checks'] - p['disagreements']}/{p['checks']} agree ({p['disagreements']} disagree)"
                for m, p in parsers.items()
            )
            + ".",
        ]
    if report["differences"]:
        lines += [
            "",
            f"Differences in pass@1, paired over the same held-out tasks, {conf} bootstrap intervals (over tasks):",
            "",
            "| difference | " + " | ".join(family_label(report, f) for f in families) + " | overall |",
            "|---|" + "---|" * (len(families) + 1),
        ]
        for name, rows in report["differences"].items():
            lines.append(
                f"| {name} | "
                + " | ".join(_diff(rows.get(f)) for f in families)
                + f" | {_diff(rows['overall'])} |"
            )
    if report["targets"]:
        lines += ["", "Targets (as measured):", ""]
        for name, row in report["targets"].items():
            lines.append(f"- {name}: **{'met' if row['met'] else 'NOT met'}** ({row['measured']})")
    if report["aptbench"]:
        kinds = sorted({k for r in report["aptbench"].values() for k in (r.get("per_kind") or {})})
        lines += [
            "",
            "## Likelihood scores before and after SFT (APTBench-style)",
            "",
            "Multiple-choice and completion items built from held-out reference trajectories (the plan, the next "
            "action, the fix of an exposed mistake, the final answer), scored by the checkpoint's likelihood, no "
            "agent loop (`agentkit eval aptbench.data=...`). Accuracy (per-token normalised choice):",
            "",
            "| checkpoint | " + " | ".join(kinds) + " | overall |",
            "|---|" + "---|" * (len(kinds) + 1),
        ]
        for model, r in report["aptbench"].items():
            cells = []
            for kind in kinds:
                value, n = _score((r.get("per_kind") or {}).get(kind))
                cells.append("-" if value is None else f"{value:.0%} (n={n})")
            value, n = _score(r.get("overall"))
            overall = "-" if value is None else f"{value:.1%} (n={n})"
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {overall} |")
    if report["loop"]:
        lines += [
            "",
            "## The loop: the trained model synthesizes verified trajectories",
            "",
            "| family | arm | episodes | passed | pass rate | kept |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in report["loop"].items():
            rate = "-" if row["pass_rate"] is None else f"{row['pass_rate']:.0%}"
            lines.append(
                f"| {name} | {row['model']} | {row['episodes']} | {row['passed']} | {rate} | {row['kept']} |"
            )
    lines += [
        "",
        "## Datasets",
        "",
        "| run | tasks | kept | pass rate | mean turns | tool calls (errors) | mistakes | mean chars |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["datasets"].items():
        mistakes = ", ".join(f"{k} {v}" for k, v in sorted(row["mistakes"].items()))
        rate = "-" if row["pass_rate"] is None else f"{row['pass_rate']:.0%}"
        lines.append(
            f"| {name} | {row['tasks']} | {row['kept']} | {rate} | {row['turns_mean']} | "
            f"{row['tool_calls']} ({row['tool_errors']}) | {mistakes} | {row['chars_mean']} |"
        )
    lines += [
        "",
        "## Training",
        "",
        "| checkpoint | stage | steps | parameters | tokens | tokens/s | loss first -> last | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, row in report["training"].items():
        if model == "tokenizer":
            continue
        tps = f"{row['tokens_per_second']:.0f}" if row.get("tokens_per_second") else "-"
        first = f"{row['first_loss']:.3f}" if row.get("first_loss") is not None else "-"
        last = f"{row['last_loss']:.3f}" if row.get("last_loss") is not None else "-"
        lines.append(
            f"| {model} | {row['stage']} | {row['steps']} | {row['parameters']:,} | {row['tokens']:,} | {tps} | "
            f"{first} -> {last} | {row['seconds']:.0f} |"
        )
    lines += [
        "",
        "## Steps",
        "",
        "| step | seconds | load (1 min) before -> after | reused |",
        "|---|---|---|---|",
    ]
    for step in report["steps"]:
        load = step.get("load")
        shown_load = f"{load[0]} -> {load[1]}" if load else "-"
        lines.append(
            f"| {step['name']} | {step['seconds']:.1f} | {shown_load} | {'yes' if step['reused'] else ''} |"
        )
    lines += [
        "",
        f"Browse any run's trajectories: `agentkit view {report['out']}/eval/B/<family>` (or `.../synth/mid/...`).",
        "",
        "## Commands",
        "",
        "```",
        *[step["command"] for step in report["steps"]],
        "```",
    ]
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ plots


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    training = {k: v for k, v in report["training"].items() if k != "tokenizer"}
    if training:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        for model, row in training.items():
            history = row.get("loss_history") or []
            ax = axes[0] if row.get("stage") in ("pretrain", "midtrain") else axes[1]
            ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label=model)
        for ax, title in zip(
            axes, ("pre-training and mid-training", "SFT (same data, same budget)"), strict=True
        ):
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend()
        paths.append(_save(fig, folder / "loss.png"))

    results = report["results"]
    groups = [*report["families"], "overall"]
    if results:
        fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 3.6))
        width = 0.8 / max(1, len(results))
        for i, (model, result) in enumerate(results.items()):
            rows = [result["families"].get(g) if g != "overall" else result["overall"] for g in groups]
            values = [r["pass@1"] if r and r["pass@1"] is not None else 0.0 for r in rows]
            lows = [v - r["ci"][0] if r and r["ci"] else 0.0 for v, r in zip(values, rows, strict=True)]
            highs = [r["ci"][1] - v if r and r["ci"] else 0.0 for v, r in zip(values, rows, strict=True)]
            xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(groups))]
            ax.bar(xs, values, width, yerr=[lows, highs], capsize=3, label=model)
        ax.set_xticks(range(len(groups)), [family_label(report, g) if g != "overall" else g for g in groups])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("pass@1 (held-out)")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        paths.append(_save(fig, folder / "pass_at_1.png"))

    if report["differences"]:
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(groups) + 1.5))
        names = list(report["differences"])
        for i, name in enumerate(names):
            rows = report["differences"][name]
            for j, group in enumerate(groups):
                row = rows.get(group)
                if not row:
                    continue
                y = j + (i - (len(names) - 1) / 2) * 0.25
                lo, hi = row["ci"] or (row["diff"], row["diff"])
                ax.errorbar(
                    row["diff"],
                    y,
                    xerr=[[row["diff"] - lo], [hi - row["diff"]]],
                    fmt="o",
                    capsize=3,
                    color=f"C{i}",
                    label=name if j == 0 else None,
                )
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(groups)), [family_label(report, g) if g != "overall" else g for g in groups])
        ax.set_xlabel("difference in pass@1 (paired bootstrap interval)")
        ax.legend()
        ax.grid(axis="x", alpha=0.3)
        paths.append(_save(fig, folder / "differences.png"))

    if report["aptbench"]:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        models = list(report["aptbench"])
        values = [_score(r.get("overall"))[0] or 0.0 for r in report["aptbench"].values()]
        ax.bar(models, values)
        ax.set_ylim(0, 1)
        ax.set_ylabel("likelihood-item accuracy")
        ax.set_title("APTBench-style score per checkpoint")
        ax.grid(axis="y", alpha=0.3)
        paths.append(_save(fig, folder / "aptbench.png"))
    return paths


def write_report(demo: Demo, report: dict[str, Any]) -> None:
    if demo.cfg.plots:
        report["plots"] = [str(p.relative_to(demo.out)) for p in save_plots(report, demo.path("plots"))]
    demo.path("report.json").write_text(json.dumps(report, indent=2, default=str))
    demo.path("report.md").write_text(markdown(report))


def print_results(console, report: dict[str, Any]) -> None:
    from rich.table import Table

    families = list(report["families"])
    conf = f"{report['config']['eval']['confidence']:.0%}"
    table = Table(title=f"held-out pass@1, greedy ({conf} Wilson intervals)")
    for column in ("model", *(family_label(report, f) for f in families), "overall"):
        table.add_column(column)
    for model, result in report["results"].items():
        table.add_row(model, *[_pct(result["families"].get(f)) for f in families], _pct(result["overall"]))
    for name, rows in report["differences"].items():
        table.add_row(name, *[_diff(rows.get(f)) for f in families], _diff(rows["overall"]), style="bold")
    console.rule("[bold]results")
    console.print(table)
    for name, row in report["targets"].items():
        mark = "[green]met[/green]" if row["met"] else "[red]NOT met[/red]"
        console.print(f"{name}: {mark} ({row['measured']})")
    console.print(f"total {report['wall_seconds']:.0f} s; report: {Path(report['out']) / 'report.md'}")
