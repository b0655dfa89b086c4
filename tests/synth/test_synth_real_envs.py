"""Smoke tests on the real envs and the embedded model server (slow: real sandboxes, a real model)."""

import json
import shutil

import pytest
from synth_runs import agentkit

from agentkit.registry import ENVS

pytestmark = pytest.mark.slow


@pytest.fixture
def math_env():
    if "math" not in ENVS or shutil.which("bwrap") is None:
        pytest.skip("needs the math env and bubblewrap")


@pytest.mark.bwrap
def test_math_reference_teacher_synth_and_eval(capsys, tmp_path, math_env):
    out = tmp_path / "teacher"
    code, stdout, stderr = agentkit(
        capsys,
        "synth",
        "env=math",
        "policy=reference",
        "strategy=teacher",
        "env.tasks.n=4",
        "report.progress=false",
        f"out={out}",
    )
    assert code == 0, stderr
    rows = [json.loads(line) for line in (out / "data" / "train-00000.jsonl").read_text().splitlines()]
    assert rows and all(r["verdict"]["passed"] and r["meta"]["mistake"]["exposed"] for r in rows)
    assert all(r["provenance"]["env_version"].startswith("math/") for r in rows)
    assert (out / "plots" / "report.png").exists() and (out / "manifest.json").exists()

    code, stdout, stderr = agentkit(
        capsys,
        "eval",
        "env=math",
        "policy=reference",
        "env.tasks.n=4",
        "report.progress=false",
        "report.plots=false",
        f"out={tmp_path / 'eval'}",
    )
    assert code == 0, stderr
    assert "pass@1: 1.0000" in stdout


def test_synth_against_the_embedded_server_on_the_tiny_model(capsys, tmp_path):
    """No model.base_url: synth starts `agentkit serve` on the tiny MLA model and talks to it over HTTP."""
    out = tmp_path / "embedded"
    code, stdout, stderr = agentkit(
        capsys,
        "synth",
        "env=toy-synth",
        "env.tasks.n=2",
        "model=tiny-mla",
        "sampling.max_tokens=8",
        "limits.max_turns=2",
        "curation.enabled=false",
        "report.progress=false",
        f"out={out}",
    )
    assert code == 0, stderr
    assert "endpoint=embedded" in stdout
    rows = [json.loads(line) for line in (out / "data" / "train-00000.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    provenance = rows[0]["provenance"]
    assert provenance["endpoint"] == "embedded" and provenance["model"] == "tiny-mla"
    assert len(provenance["chat_template_sha256"]) == 64
    assert rows[0]["stats"]["completion_tokens"] > 0
    assert (out / "plots" / "report.png").exists()
