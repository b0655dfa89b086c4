import json
import subprocess
from pathlib import Path

import pytest
from synth_runs import dataset, raw, run_and_kill, subprocess_command, subprocess_env, toy_synth

from agentkit.cli import main


def command(out: Path) -> list[str]:
    return subprocess_command(toy_synth(out, "env.tasks.n=12", "+env.options.delay=0.05", "concurrency=3"))


def dataset_ids(out: Path) -> list[str]:
    return sorted(r["id"] for r in dataset(out))


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_dataset(tmp_path, capsys):
    reference = tmp_path / "uninterrupted"
    main(command(reference)[2:])
    capsys.readouterr()
    expected = dataset_ids(reference)
    assert len(expected) > 12

    out = tmp_path / "killed"
    seen = run_and_kill(command(out), out, after_lines=5)
    assert 5 <= seen < 24 and not (out / "manifest.json").exists()
    with open(out / "raw" / "rollouts.jsonl", "ab") as rollouts:  # a write torn by the kill
        rollouts.write(b'{"id": "toy-synth/task-9/s1", "schema_version": 1, "task": {"id": "ta')
    seen = run_and_kill(command(out), out, after_lines=seen + 6)
    assert seen < 24

    done = subprocess.run(command(out), env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{seen} already done" in done.stdout
    assert dataset_ids(out) == expected
    keys = [r["meta"]["key"] for r in raw(out)]
    assert len(keys) == len(set(keys)) == 24
    assert json.loads((out / "manifest.json").read_text())["complete"]
