"""Live progress while rollouts run, and the final report: a table, ``report.json`` and PNG plots."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit.synth.curate import Entry
from agentkit.synth.metrics import wilson_interval


class LiveProgress:
    """A rich progress bar with live rates (trajectories/s, turns/s), pass rate, failures and retries."""

    def __init__(self, total: int, description: str, *, enabled: bool = True, already: int = 0):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rates]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            refresh_per_second=4,
        )
        self.task = self.progress.add_task(description, total=total, completed=already, rates="")
        self.started = time.perf_counter()
        self.done = self.passed = self.turns = self.failures = self.retries = 0

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._refresh()
        self.progress.stop()

    def _refresh(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rates = (
            f"{self.done / elapsed:.1f} traj/s  {self.turns / elapsed:.1f} turns/s  "
            f"pass {self.passed / self.done:.0%}"
            if self.done
            else ""
        )
        if self.failures or self.retries:
            rates += f"  failed {self.failures}  retries {self.retries}"
        self.progress.update(self.task, rates=rates)

    def trajectory(self, passed: bool, turns: int) -> None:
        self.done += 1
        self.passed += int(passed)
        self.turns += turns
        self.progress.advance(self.task)
        self._refresh()

    def failure(self) -> None:
        self.failures += 1
        self.progress.advance(self.task)
        self._refresh()

    def retry(self) -> None:
        self.retries += 1
        self._refresh()


def _distribution(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "mean": round(statistics.fmean(ordered), 3),
        "median": float(statistics.median(ordered)),
        "p90": float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]),
        "max": float(ordered[-1]),
    }


def summarize(
    entries: Sequence[Entry],
    failures: Sequence[dict[str, Any]],
    *,
    wall_seconds: float,
    new_trajectories: int = 0,
    new_turns: int = 0,
) -> dict[str, Any]:
    """The numbers of a run: outcomes, turns, tokens, tool usage and where the time went."""
    total = len(entries)
    passed = sum(e.passed for e in entries)
    seconds = dict.fromkeys(("model", "tools", "verify", "total"), 0.0)
    for entry in entries:
        for key in ("model", "tools", "verify", "total"):
            seconds[key] += entry.seconds.get(key, 0.0)
    busy = seconds["model"] + seconds["tools"] + seconds["verify"]
    other = max(0.0, seconds["total"] - busy)
    tools: Counter[str] = Counter()
    for entry in entries:
        tools.update(entry.tools_used)
    calls = sum(e.tool_calls for e in entries)
    errors = sum(e.tool_errors for e in entries)
    checks = sum(e.tool_call_checks for e in entries)
    tasks = Counter(e.task_id for e in entries)
    solved = {e.task_id for e in entries if e.passed}
    low, high = wilson_interval(passed, total)
    return {
        "trajectories": total,
        "passed": passed,
        "pass_rate": round(passed / total, 4) if total else None,
        "pass_rate_wilson95": [round(low, 4), round(high, 4)] if total else None,
        "status": dict(sorted(Counter(e.status for e in entries).items())),
        "failures": {"count": len(failures), "by_status": dict(Counter(f["status"] for f in failures))},
        "turns": _distribution([e.turns for e in entries]),
        "tokens": {
            "prompt": sum(e.prompt_tokens for e in entries),
            "completion": sum(e.completion_tokens for e in entries),
            "completion_per_trajectory": _distribution([e.completion_tokens for e in entries]),
        },
        "tools": {
            "calls": calls,
            "errors": errors,
            "error_rate": round(errors / calls, 4) if calls else 0.0,
            "by_name": dict(tools.most_common()),
            # The server's tool-call parser against agentkit's, turn by turn (0 checks: the server parsed none).
            "parser_checks": checks,
            "parser_disagreements": sum(e.tool_call_disagreements for e in entries),
        },
        "seconds": {
            "model": round(seconds["model"], 3),
            "tools": round(seconds["tools"], 3),
            "verify": round(seconds["verify"], 3),
            "other": round(other, 3),
            "episodes": round(seconds["total"], 3),
            "wall": round(wall_seconds, 3),
        },
        "tasks": {"count": len(tasks), "solved": len(solved)},
        "this_run": {
            "trajectories": new_trajectories,
            "turns": new_turns,
            "trajectories_per_s": round(new_trajectories / wall_seconds, 3) if wall_seconds else 0.0,
            "turns_per_s": round(new_turns / wall_seconds, 3) if wall_seconds else 0.0,
        },
    }


def _fraction(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def print_summary(summary: dict[str, Any], title: str, extra: dict[str, str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value")
    rate = summary["pass_rate"]
    ci = summary["pass_rate_wilson95"]
    table.add_row(
        "pass rate",
        f"{rate:.1%} ({summary['passed']}/{summary['trajectories']}), 95% CI [{ci[0]:.1%}, {ci[1]:.1%}]"
        if rate is not None
        else "-",
    )
    table.add_row("status", ", ".join(f"{k} {v}" for k, v in summary["status"].items()) or "-")
    failures = summary["failures"]
    table.add_row(
        "infrastructure failures",
        f"{failures['count']}"
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in failures["by_status"].items()) + ")"
            if failures["count"]
            else ""
        ),
    )
    turns = summary["turns"]
    table.add_row(
        "turns", f"mean {turns['mean']}, median {turns['median']}, p90 {turns['p90']}, max {turns['max']}"
    )
    tokens = summary["tokens"]
    table.add_row("tokens", f"prompt {tokens['prompt']}, completion {tokens['completion']}")
    tools = summary["tools"]
    by_name = ", ".join(f"{k} {v}" for k, v in list(tools["by_name"].items())[:6])
    table.add_row(
        "tool calls",
        f"{tools['calls']} ({tools['error_rate']:.0%} errors)" + (f": {by_name}" if by_name else ""),
    )
    if tools.get("parser_checks"):
        table.add_row(
            "tool-call parsers",
            f"server and agentkit agree on {tools['parser_checks'] - tools['parser_disagreements']}"
            f"/{tools['parser_checks']} turns ({tools['parser_disagreements']} disagree)",
        )
    s = summary["seconds"]
    whole = s["model"] + s["tools"] + s["verify"] + s["other"]
    table.add_row(
        "time split",
        f"model {_fraction(s['model'], whole)}, tools {_fraction(s['tools'], whole)}, "
        f"verify {_fraction(s['verify'], whole)}, other {_fraction(s['other'], whole)}; "
        f"wall {s['wall']:.1f}s",
    )
    run = summary["this_run"]
    table.add_row(
        "this run",
        f"{run['trajectories']} trajectories, {run['trajectories_per_s']} traj/s, "
        f"{run['turns_per_s']} turns/s",
    )
    for key, value in (extra or {}).items():
        table.add_row(key, value)
    Console().print(table)


def save_plots(
    summary: dict[str, Any], entries: Sequence[Entry], pass_rates: dict[str, tuple[int, int]], out_dir: Path
) -> list[Path]:
    """One PNG (matplotlib, Agg backend): statuses, turns, time split, task pass rates, tool usage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    (status_ax, turns_ax, time_ax), (rate_ax, tools_ax, text_ax) = axes

    statuses = dict(summary["status"])
    for status, count in summary["failures"]["by_status"].items():
        statuses[f"failed:{status}"] = count
    status_ax.bar(list(statuses) or ["none"], list(statuses.values()) or [0], color="#4c72b0")
    status_ax.set_title("episode status")
    status_ax.tick_params(axis="x", rotation=30)

    turns = [e.turns for e in entries]
    turns_ax.hist(
        turns or [0], bins=range(0, max(turns or [0]) + 2), color="#55a868", align="left", rwidth=0.9
    )
    turns_ax.set_title("turns per trajectory")

    seconds = summary["seconds"]
    parts = ["model", "tools", "verify", "other"]
    time_ax.bar(parts, [seconds[p] for p in parts], color="#c44e52")
    time_ax.set_title("time split (episode seconds, summed)")

    rates = [passed / samples for passed, samples in pass_rates.values() if samples]
    rate_ax.hist(rates or [0.0], bins=[i / 10 for i in range(12)], color="#8172b2", align="left", rwidth=0.9)
    rate_ax.set_title("per-task pass rate across samples")

    by_name = summary["tools"]["by_name"]
    tools_ax.bar(list(by_name)[:12] or ["none"], list(by_name.values())[:12] or [0], color="#ccb974")
    tools_ax.set_title("tool calls by tool")
    tools_ax.tick_params(axis="x", rotation=30)

    text_ax.axis("off")
    rate = summary["pass_rate"]
    tokens = summary["tokens"]
    lines = [
        f"trajectories: {summary['trajectories']}",
        f"pass rate: {rate:.1%}" if rate is not None else "pass rate: -",
        f"infrastructure failures: {summary['failures']['count']}",
        f"tokens: {tokens['prompt']} prompt, {tokens['completion']} completion",
        f"tool error rate: {summary['tools']['error_rate']:.1%}",
        f"wall: {seconds['wall']:.1f} s",
    ]
    text_ax.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace")
    fig.tight_layout()
    path = out_dir / "report.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    rows = [
        {
            "family": task_family(e.task_id),
            "passed": e.passed if e.status == "completed" else False,
            "turns": e.turns,
            "completion_tokens": e.completion_tokens,
            "chars": e.chars,
            "tool_calls": e.tool_calls,
            "tool_errors": e.tool_errors,
            "seconds": e.seconds,
        }
        for e in entries
    ]
    return [path, *family_plots(rows, out_dir)]


def task_family(task_id: str) -> str:
    """A task's family from its id when its metadata is not at hand (``gen-arith-00042`` -> ``arith``)."""
    import re

    name = re.sub(r"(-s\d+)?[-_/]\d+$", "", str(task_id))
    name = re.sub(r"^(gen|task)[-_]", "", name)
    return name or str(task_id)


PLOT_FILES = (
    "pass_rate_by_family.png",
    "turns_by_verdict.png",
    "length_by_verdict.png",
    "tool_errors.png",
    "time_split.png",
)


def _verdict(row: dict[str, Any]) -> str:
    if row.get("passed") is None:
        return "no verdict"
    return "passed" if row["passed"] else "failed"


def family_plots(rows: Sequence[dict[str, Any]], out_dir: Path, *, title: str = "") -> list[Path]:
    """The pictures people look at, one PNG each, from per-trajectory rows.

    A row has ``family``, ``passed`` (bool or None), ``turns``, ``completion_tokens``, ``chars``,
    ``tool_calls``, ``tool_errors`` and ``seconds`` (``model``/``tools``/``verify``). Pass rates carry
    95% Wilson intervals; histograms are split by verdict; time is the share of episode seconds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    colors = {"passed": "#2f9e44", "failed": "#e03131", "no verdict": "#868e96"}
    families = sorted({str(r.get("family", "?")) for r in rows}) or ["none"]
    by_family: dict[str, list[dict[str, Any]]] = {f: [] for f in families}
    for row in rows:
        by_family[str(row.get("family", "?"))].append(row)
    suffix = f" — {title}" if title else ""
    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    # 1. pass rate per family, Wilson 95% intervals
    height = max(2.6, 0.42 * len(families) + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height))
    rates, lows, highs, labels = [], [], [], []
    for name in families:
        judged = [r for r in by_family[name] if r.get("passed") is not None]
        passed = sum(bool(r["passed"]) for r in judged)
        low, high = wilson_interval(passed, len(judged)) if judged else (0.0, 0.0)
        rate = passed / len(judged) if judged else 0.0
        rates.append(rate)
        lows.append(rate - low)
        highs.append(high - rate)
        labels.append(f"{name} ({passed}/{len(judged)})")
    ax.barh(labels, rates, xerr=[lows, highs], color="#4263eb", alpha=0.85, capsize=3)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("pass rate (95% Wilson interval)")
    ax.set_title(f"pass rate per task family{suffix}")
    save(fig, PLOT_FILES[0])

    # 2-3. turns and length histograms by verdict
    for key, label, name in (
        ("turns", "turns per trajectory", PLOT_FILES[1]),
        ("completion_tokens", "completion tokens per trajectory (chars/4 when not counted)", PLOT_FILES[2]),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 3.4))
        values = {v: [] for v in colors}
        for row in rows:
            value = row.get(key) or 0
            if key == "completion_tokens" and not value:
                value = (row.get("chars") or 0) / 4
            values[_verdict(row)].append(value)
        top = max([max(v) for v in values.values() if v] or [1])
        bins = [b - 0.5 for b in range(0, int(top) + 2)] if key == "turns" else 30
        present = {k: v for k, v in values.items() if v}
        if present:
            ax.hist(
                list(present.values()),
                bins=bins,
                label=[f"{k} ({len(v)})" for k, v in present.items()],
                color=[colors[k] for k in present],
                stacked=True,
                rwidth=0.85 if key == "turns" else None,
            )
            ax.legend(frameon=False)
        ax.set_xlabel(label)
        ax.set_ylabel("trajectories")
        ax.set_title(f"{label.split(' (')[0]} by verdict{suffix}")
        save(fig, name)

    # 4. tool-error rate per family (errors / calls)
    fig, ax = plt.subplots(figsize=(7.5, height))
    rates, labels = [], []
    for name in families:
        calls = sum(r.get("tool_calls") or 0 for r in by_family[name])
        errors = sum(r.get("tool_errors") or 0 for r in by_family[name])
        rates.append(errors / calls if calls else 0.0)
        labels.append(f"{name} ({errors}/{calls} calls)")
    ax.barh(labels, rates, color="#f08c00")
    ax.set_xlim(0, max(0.05, min(1.0, max(rates or [0]) * 1.25)))
    ax.invert_yaxis()
    ax.set_xlabel("tool-error rate (errors / tool calls)")
    ax.set_title(f"tool errors per task family{suffix}")
    save(fig, PLOT_FILES[3])

    # 5. time split per family (share of episode seconds)
    fig, ax = plt.subplots(figsize=(7.5, height))
    parts, part_colors = ("model", "tools", "verify"), ("#4263eb", "#f08c00", "#2f9e44")
    totals = {
        name: [sum((r.get("seconds") or {}).get(p, 0.0) or 0.0 for r in by_family[name]) for p in parts]
        for name in families
    }
    left = [0.0] * len(families)
    for index, (part, color) in enumerate(zip(parts, part_colors, strict=True)):
        shares = [(totals[f][index] / sum(totals[f])) if sum(totals[f]) else 0.0 for f in families]
        ax.barh(families, shares, left=left, color=color, label=part)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.legend(frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.6 / height))
    ax.set_xlabel("share of episode seconds")
    ax.set_title(f"time split per task family{suffix}")
    save(fig, PLOT_FILES[4])
    return paths
