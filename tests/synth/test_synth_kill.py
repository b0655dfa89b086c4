import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkit.cli import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def command(out: Path) -> list[str]:
    return [
        sys.executable,
        str(HERE / "run_agentkit.py"),
        "synth",
        "env=toy-synth",
        "policy=reference",
        "strategy=teacher",
        "env.tasks.n=12",
        "n_samples=2",
        "+env.options.delay=0.05",
        "concurrency=3",
        "report.progress=false",
        "report.plots=false",
        f"out={out}",
    ]


def raw_lines(out: Path) -> int:
    path = out / "raw" / "rollouts.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_and_kill(out: Path, after_lines: int) -> int:
    """Start the command and SIGKILL it once ``after_lines`` rollouts are on disk; return the count seen."""
    env = dict(os.environ, AGENTKIT_CONF=str(ROOT / "conf"))
    proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while raw_lines(out) < after_lines:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return raw_lines(out)


def dataset_ids(out: Path) -> list[str]:
    rows = [
        json.loads(line)
        for p in sorted((out / "data").glob("train*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    return sorted(r["id"] for r in rows)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_dataset(tmp_path, capsys):
    reference = tmp_path / "uninterrupted"
    main(command(reference)[2:])
    capsys.readouterr()
    expected = dataset_ids(reference)
    assert len(expected) > 12

    out = tmp_path / "killed"
    seen = run_and_kill(out, after_lines=5)
    assert 5 <= seen < 24 and not (out / "manifest.json").exists()
    with open(out / "raw" / "rollouts.jsonl", "ab") as raw:  # a write torn by the kill
        raw.write(b'{"id": "toy-synth/task-9/s1", "schema_version": 1, "task": {"id": "ta')
    seen = run_and_kill(out, after_lines=seen + 6)
    assert seen < 24

    env = dict(os.environ, AGENTKIT_CONF=str(ROOT / "conf"))
    done = subprocess.run(command(out), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{seen} already done" in done.stdout
    assert dataset_ids(out) == expected
    keys = [
        json.loads(line)["meta"]["key"] for line in (out / "raw" / "rollouts.jsonl").read_text().splitlines()
    ]
    assert len(keys) == len(set(keys)) == 24
    assert json.loads((out / "manifest.json").read_text())["complete"]
