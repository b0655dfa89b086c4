"""The recipe's one report: ``report.md``, ``report.json`` and PNG plots (loss and learning rate across the
stages, per-position loss and passkey retrieval of the long-context stage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def mixture_text(stage) -> str:
    sources = {name: src for name, src in stage.data.sources.items() if src.weight > 0}
    total = sum(src.weight for src in sources.values()) or 1.0
    return ", ".join(f"{name} {src.weight / total:.0%}" for name, src in sources.items())


def budget_text(plan) -> str:
    tokens = plan.rows * plan.cfg.max_length
    return f"{plan.steps} steps ({_si(tokens)} tokens)"


def _si(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def recipe_table(plans, schedule) -> list[str]:
    """The recipe as a markdown table: stage, data mix, context, budget, learning-rate phase."""
    lines = ["| stage | data mix | context | budget | LR phase |", "|---|---|---|---|---|"]
    for plan in plans:
        phase = plan.cfg.lr_phase
        lo, hi = schedule.lr(plan.start), schedule.lr(plan.end - 1)
        rope = plan.cfg.rope
        context = f"{plan.cfg.max_length}" + (
            f" (RoPE {rope.type} x{rope.factor:g})" if rope.type != "none" else ""
        )
        curriculum = f"; order: {plan.cfg.curriculum.by}" if plan.cfg.curriculum.by != "none" else ""
        lines.append(
            f"| {plan.name} | {mixture_text(plan.cfg)}{curriculum} | {context} | {budget_text(plan)} | "
            f"{phase} ({lo:.2e} -> {hi:.2e}) |"
        )
    return lines


def write_report(out: Path, cfg, plans, schedule, results: list[dict], long_context: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [h for r in results for h in r["history"]]
    report = {
        "recipe": cfg.recipe.name,
        "out": str(out),
        "steps": plans[-1].end,
        "seconds": round(sum(r["seconds"] for r in results), 2),
        "stages": [{k: v for k, v in r.items() if k not in ("history", "config")} for r in results],
        "loss_history": history,
        "long_context": long_context,
        "schedule": {
            "peak_lr": schedule.peak_lr,
            "warmup_steps": schedule.warmup_steps,
            "decay_start": schedule.decay_start,
            "decay_steps": schedule.decay_steps,
            "decay_type": schedule.decay_type,
            "min_lr_ratio": schedule.min_lr_ratio,
        },
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    plots = []
    for key, name, label in (
        ("loss", "loss.png", "training loss"),
        ("learning_rate", "lr.png", "learning rate"),
    ):
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for plan in plans:
            points = [h for h in history if h["stage"] == plan.name and h.get(key) is not None]
            ax.plot([h["step"] for h in points], [h[key] for h in points], label=plan.name)
            ax.axvline(plan.start, color="grey", lw=0.5, ls="--")
        ax.set_xlabel("global step")
        ax.set_ylabel(label)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        plots.append(name)
    for stage, result in long_context.items():
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for when in ("before", "after"):
            if when in result:
                curve = result[when]["curve"]
                ax.plot([c["position"] for c in curve], [c["loss"] for c in curve], label=f"{when} {stage}")
        ax.axvline(result["old_context"], color="grey", ls="--", lw=0.8, label="old context")
        ax.set_xlabel("position")
        ax.set_ylabel("loss (held-out long documents)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"long_context_loss_{stage}.png", dpi=100)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for when in ("before", "after"):
            if when in result:
                scores = result[when]["passkey"]
                ax.plot(
                    [int(k) for k in scores],
                    [v["digit_accuracy"] for v in scores.values()],
                    marker="o",
                    label=f"{when} {stage}",
                )
        ax.axhline(0.1, color="grey", ls=":", lw=0.8, label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("passkey digit accuracy")
        ax.set_ylim(0, 1.05)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"passkey_{stage}.png", dpi=100)
        plt.close(fig)
        plots += [f"long_context_loss_{stage}.png", f"passkey_{stage}.png"]
    lines = [
        f"# Recipe `{cfg.recipe.name}`",
        "",
        *recipe_table(plans, schedule),
        "",
        "| stage | steps | rows x length | fill | loss first -> last | optimizer state | resumed from | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        losses = [h["loss"] for h in r["history"]]
        first_last = f"{losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "-"
        lines.append(
            f"| {r['stage']} | {r['start']}..{r['start'] + r['steps']} | {r['rows']} x {r['max_length']} | "
            f"{r['fill']:.2f} | {first_last} | {r['optimizer']} | {r['resumed_from'] or '-'} | "
            f"{r['seconds']} |"
        )
    for stage, result in long_context.items():
        lines += [
            "",
            f"## Long context: {stage} ({result['old_context']} -> {result['new_context']} tokens, "
            f"{result['rope_parameters']})",
            "",
            "| model | loss inside old context | loss near new end | ratio | passkey digit accuracy by length |",
            "|---|---|---|---|---|",
        ]
        for when in ("before", "after"):
            if when in result:
                r = result[when]
                passkey = ", ".join(f"{k}: {v['digit_accuracy']:.2f}" for k, v in r["passkey"].items())
                lines.append(
                    f"| {when} | {r['loss_inside']:.3f} | {r['loss_far']:.3f} | {r['far_over_inside']:.3f} "
                    f"| {passkey} |"
                )
        lines.append(
            f"\ntarget (after <= 1.10, before > 1.10): {'met' if result['target_met'] else 'NOT met'}"
        )
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    (out / "report.md").write_text("\n".join(lines))
