"""Two CPU processes (gloo, launched by accelerate with conf/accelerate/ddp.yaml) match one process's losses."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import MICRO_OVERRIDE, ROOT

from agentkit.train.stages import REPORT

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path, toy_synth):
    common = ["stage=sft", MICRO_OVERRIDE, f"data={toy_synth}", "data.sources.main.n=48", "trainer.max_steps=4",
              "trainer.logging_steps=1", "trainer.learning_rate=3e-3", "trainer.max_length=512",
              "trainer.resume=never", "trainer.save_steps=1000"]
    env = {**os.environ, "AGENTKIT_CONF": str(ROOT / "conf"), "OMP_NUM_THREADS": "1"}
    launch = [str(BIN / "accelerate"), "launch", "--config_file", str(ROOT / "conf/accelerate/ddp.yaml"),
              "--num_processes", "2", "--main_process_port", str(_free_port()), "-m", "agentkit.cli", "train"]
    two = subprocess.run([*launch, *common, f"out={tmp_path / 'two'}", "trainer.gradient_accumulation_steps=1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([str(BIN / "agentkit"), "train", *common, f"out={tmp_path / 'one'}",
                          "trainer.gradient_accumulation_steps=2"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    reports = [json.loads((tmp_path / name / REPORT).read_text()) for name in ("one", "two")]
    losses = [[h["loss"] for h in r["loss_history"]] for r in reports]
    assert len(losses[0]) == len(losses[1]) == 4
    assert losses[0][0] > losses[0][-1]
    for a, b in zip(*losses, strict=True):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), losses
    assert reports[1]["config"]["trainer"]["gradient_accumulation_steps"] == 1
