"""The construction-scheme table of synth runs: per run (strategy x env), episodes, kept, why dropped, mean
tokens, five-phase coverage, mistakes injected and exposed by a real observation, and the ability mix.

    python -m agentkit.synth.schemes runs/math-teacher runs/tooluse-agentic_cot ...

Reads what ``agentkit synth`` wrote (``raw/rollouts.jsonl``, ``report.json``, ``manifest.json``); the drop
reasons are recomputed with the run's strategy so a format drop says which check failed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentkit.records import Trajectory
from agentkit.synth.curate import format_problem
from agentkit.synth.strategies import PHASES, build_strategy, phase_report


def _rows(run: Path) -> Iterator[Trajectory]:
    with open(run / "raw" / "rollouts.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield Trajectory.model_validate_json(line)


def _token_counter():
    try:
        from agentkit.models import load_tokenizer

        tokenizer = load_tokenizer()
        return lambda text: len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    except Exception:  # no transformers: a rough count, and the table says so
        return None


def _text(trajectory: Trajectory) -> str:
    parts = []
    for message in trajectory.messages:
        if message.role == "system":
            continue
        parts.append(message.content or "")
        parts += [f"{c.function.name} {c.function.arguments}" for c in message.tool_calls or []]
    return "\n".join(parts)


def _reason(problem: str) -> str:
    """A drop reason without its specifics ("rewrite: length: 900 chars ..." -> "rewrite: length")."""
    head = problem.split(";")[0]
    parts = [p.strip() for p in head.split(":")]
    return ": ".join(parts[:2]) if parts[0] in ("rewrite", "phases") else parts[0]


def summarize_run(run: Path, count_tokens=None) -> dict[str, Any]:
    manifest = json.loads((run / "manifest.json").read_text())
    report = json.loads((run / "report.json").read_text())
    config = (
        json.loads((run / "run.json").read_text()).get("config", {}) if (run / "run.json").exists() else {}
    )
    strategy_cfg = config.get("strategy") or {"name": manifest.get("strategy", "direct"), "options": {}}
    strategy = build_strategy(strategy_cfg["name"], strategy_cfg.get("options") or {})
    curation = config.get("curation") or {}
    require_passed = curation.get("require_passed", True)
    statuses = curation.get("statuses", ["completed"])
    episodes = 0
    tokens: list[int] = []
    complete = 0
    phase_counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    exposed: Counter[str] = Counter()
    exposed_by: Counter[str] = Counter()
    abilities: Counter[str] = Counter()
    for trajectory in _rows(run):
        episodes += 1
        text = _text(trajectory)
        tokens.append(count_tokens(text) if count_tokens else max(1, len(text) // 4))
        phases = phase_report(trajectory.messages)
        complete += bool(phases["complete"])
        phase_counts.update(p for p in PHASES if p not in phases["missing"])
        problem = format_problem(trajectory) or strategy.check_format(trajectory)
        if trajectory.status.value not in statuses:
            reasons[f"status {trajectory.status.value}"] += 1
        elif require_passed and not trajectory.passed:
            reasons["verdict"] += 1
        elif problem:
            reasons[_reason(problem)] += 1
        mistake = trajectory.meta.get("mistake")
        if mistake:
            injected[mistake["kind"]] += 1
            if mistake.get("exposed"):
                exposed[mistake["kind"]] += 1
                exposed_by[mistake.get("exposed_by") or "?"] += 1
        abilities.update(trajectory.abilities or trajectory.task.abilities or [])
    curated = report.get("curation", {})
    later = sum(curated.get("dropped", {}).values()) - sum(reasons.values())
    if later > 0:  # dedup, difficulty and per-task caps act on the set, after these per-trajectory checks
        for name, count in curated.get("dropped", {}).items():
            if name not in ("verdict", "format", "status"):
                reasons[name] += count
    return {
        "run": str(run),
        "strategy": strategy.name,
        "env": (config.get("env") or {}).get("name", "?"),
        "episodes": episodes,
        "kept": curated.get("kept", 0),
        "dropped": curated.get("dropped", {}),
        "why_dropped": dict(reasons.most_common()),
        "mean_tokens": round(sum(tokens) / len(tokens), 1) if tokens else 0.0,
        "tokens_counted_by": "tiny-tokenizer" if count_tokens else "chars/4",
        "five_phases": complete,
        "phase_presence": {p: phase_counts[p] for p in PHASES},
        "mistakes": {k: {"injected": injected[k], "exposed": exposed[k]} for k in sorted(injected)},
        "exposed_by": dict(exposed_by),
        "abilities": dict(sorted(abilities.items())),
    }


def table(summaries: Sequence[dict[str, Any]]) -> str:
    head = "| strategy | env | episodes | kept | why dropped | mean tokens | five phases | mistakes injected / exposed |"
    lines = [head, "|" + "---|" * 8]
    for s in summaries:
        why = ", ".join(f"{k} {v}" for k, v in s["why_dropped"].items()) or "-"
        mistakes = ", ".join(f"{k} {v['injected']}/{v['exposed']}" for k, v in s["mistakes"].items()) or "-"
        lines.append(
            f"| {s['strategy']} | {s['env']} | {s['episodes']} | {s['kept']} | {why} | {s['mean_tokens']} | "
            f"{s['five_phases']}/{s['episodes']} | {mistakes} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    runs = [Path(a) for a in args if a != "--json"]
    if not runs:
        print("usage: python -m agentkit.synth.schemes RUN_DIR... [--json]", file=sys.stderr)
        return 2
    count = _token_counter()
    summaries = [summarize_run(run, count) for run in runs]
    print(json.dumps(summaries, indent=1) if as_json else table(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
