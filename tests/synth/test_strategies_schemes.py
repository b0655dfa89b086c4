"""The construction-scheme table (``python -m agentkit.synth.schemes``) from a real synth run."""

from __future__ import annotations

import json

import pytest
from synth_runs import synth

from agentkit.synth.schemes import main as schemes_main
from agentkit.synth.schemes import summarize_run


@pytest.mark.slow
def test_the_table_counts_episodes_drops_phases_and_mistakes(capsys, tmp_path):
    out = tmp_path / "teacher"
    synth(
        out,
        "env=tooluse",
        "policy=reference",
        "strategy=teacher",
        "env.tasks.n=12",
    )
    capsys.readouterr()
    summary = summarize_run(out)
    rows = [json.loads(line) for line in (out / "raw" / "rollouts.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    assert (
        summary["strategy"] == "teacher"
        and summary["env"] == "tooluse"
        and summary["episodes"] == len(rows) == 12
    )
    assert summary["kept"] == report["curation"]["kept"]
    assert sum(summary["why_dropped"].values()) == sum(report["curation"]["dropped"].values())
    injected = sum(v["injected"] for v in summary["mistakes"].values())
    assert injected == sum(1 for r in rows if r["meta"].get("mistake"))
    assert sum(v["exposed"] for v in summary["mistakes"].values()) == sum(
        1 for r in rows if (r["meta"].get("mistake") or {}).get("exposed")
    )
    assert summary["five_phases"] <= 12 and summary["mean_tokens"] > 0
    assert schemes_main([str(out)]) == 0
    assert "| teacher | tooluse | 12 |" in capsys.readouterr().out
