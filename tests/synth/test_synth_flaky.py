import json
from collections import Counter

import pytest
from flaky_openai import EXPECTED, MODES, ServerThread, create_app
from synth_runs import agentkit


@pytest.fixture(scope="module")
def flaky_server():
    with ServerThread(create_app(model="fake", slow=0.3, stall=3.0)) as server:
        yield server


def synth(capsys, *args):
    return agentkit(capsys, "synth", *args)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_flaky_server_every_episode_ends_once_with_the_right_status(capsys, tmp_path, flaky_server):
    out = tmp_path / "run"
    n_tasks = len(MODES)
    args = [
        "env=toy-synth",
        f"env.tasks.n={n_tasks}",
        "n_samples=2",
        f"model.base_url={flaky_server.base_url}",
        "model.name=fake",
        "model.timeout=1",
        "model.max_retries=1",
        "retries=3",
        "retry_backoff=0.05",
        "concurrency=8",
        "report.progress=false",
        "report.plots=false",
        f"out={out}",
    ]
    code, stdout, stderr = synth(capsys, *args)
    assert code == 0, stderr
    run = json.loads((out / "run.json").read_text())
    rollouts = read_lines(out / "raw" / "rollouts.jsonl")
    failures = read_lines(out / "failures.jsonl")
    manifest = json.loads((out / "manifest.json").read_text())

    keys = [r["meta"]["key"] for r in rollouts] + [f["key"] for f in failures]
    assert (
        len(keys) == len(set(keys)) == manifest["counts"]["episodes_planned"] == 2 * n_tasks
    )  # none lost or twice
    assert not any(r["status"] in ("model_error", "sandbox_error", "verifier_error") for r in rollouts)

    outcome = {}
    for record in rollouts:
        outcome.setdefault(record["task"]["id"], set()).add(
            (record["status"], record.get("verdict", {}).get("passed"))
        )
    for failure in failures:
        outcome.setdefault(failure["task_id"], set()).add("failure")
        assert failure["status"] == "model_error" and failure["attempts"] == 4
    for number, mode in enumerate(MODES):
        assert outcome[f"task-{number}"] == {EXPECTED[mode]}, (mode, outcome[f"task-{number}"])

    by_mode = {}
    for record in rollouts:
        by_mode.setdefault(MODES[int(record["task"]["id"].split("-")[1])], []).append(record)
    assert [r["stats"]["parse_errors"] for r in by_mode["malformed_once"]] == [1, 1]
    # each turn failed twice: once past the client's own retry, so the engine reran the episode twice
    assert [r["meta"].get("infra_retries") for r in by_mode["5xx_twice"]] == [2, 2]
    provenance = by_mode["ok"][0]["provenance"]
    assert provenance["model"] == "fake" and provenance["endpoint"] == "openai-compatible"
    assert (
        provenance["chat_template_sha256"] == "f" * 64 and provenance["config_sha256"] == run["config_sha256"]
    )
    assert provenance["sampling"]["seed"] == provenance["seed"]

    dataset = read_lines(out / "data" / "train-00000.jsonl")
    kept = Counter(MODES[int(r["task"]["id"].split("-")[1])] for r in dataset)
    # passed and well formed; duplicates across the two samples of a task are removed
    assert set(kept) == {"ok", "text_calls", "5xx_twice", "timeout_once", "slow", "429_once"}
    assert manifest["counts"]["failures"] == 4 and not manifest["complete"]
    assert "failed on infrastructure" in stderr

    code, stdout, stderr = synth(capsys, *args)  # the rerun retries only the failures
    assert code == 0 and f"{2 * n_tasks - 4} already done" in stdout
    assert len(read_lines(out / "failures.jsonl")) == 4
    assert read_lines(out / "data" / "train-00000.jsonl") == dataset
