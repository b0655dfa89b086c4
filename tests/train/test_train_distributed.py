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
    common = [
        "stage=sft",
        MICRO_OVERRIDE,
        f"data={toy_synth}",
        "data.sources.main.n=48",
        "trainer.max_steps=4",
        "trainer.logging_steps=1",
        "trainer.learning_rate=3e-3",
        "trainer.max_length=512",
        "trainer.resume=never",
        "trainer.save_steps=1000",
    ]
    env = {**os.environ, "AGENTKIT_CONF": str(ROOT / "conf"), "OMP_NUM_THREADS": "1"}
    launch = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(ROOT / "conf/accelerate/ddp.yaml"),
        "--num_processes",
        "2",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "agentkit.cli",
        "train",
    ]
    two = subprocess.run(
        [*launch, *common, f"out={tmp_path / 'two'}", "trainer.gradient_accumulation_steps=1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [
            str(BIN / "agentkit"),
            "train",
            *common,
            f"out={tmp_path / 'one'}",
            "trainer.gradient_accumulation_steps=2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    reports = [json.loads((tmp_path / name / REPORT).read_text()) for name in ("one", "two")]
    losses = [[h["loss"] for h in r["loss_history"]] for r in reports]
    assert len(losses[0]) == len(losses[1]) == 4
    assert losses[0][0] > losses[0][-1]
    for a, b in zip(*losses, strict=True):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), losses
    assert reports[1]["config"]["trainer"]["gradient_accumulation_steps"] == 1


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp_two_processes_match_one_process_and_save_one_checkpoint(tmp_path, lora):
    """FSDP2 over 2 CPU processes (gloo) follows the loss curve of 1 process to ~1e-5, LoRA included, and rank 0
    saves one un-sharded checkpoint that transformers loads with the single-process weights."""
    import torch
    from transformers import AutoModelForCausalLM

    env = {**os.environ, "AGENTKIT_CONF": str(ROOT / "conf"), "OMP_NUM_THREADS": "1"}
    worker = str(Path(__file__).parent / "fsdp_worker.py")
    for name, processes in (("two", 2), ("one", 1)):
        run = subprocess.run(
            [
                str(BIN / "torchrun"),
                "--nproc_per_node",
                str(processes),
                "--master_port",
                str(_free_port()),
                worker,
                str(tmp_path / name),
                *(["lora"] if lora else []),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    runs = {name: json.loads((tmp_path / name / "losses.json").read_text()) for name in ("one", "two")}
    assert runs["two"]["world_size"] == 2 and runs["two"]["sharded"] == ["DTensor"]
    one, two = runs["one"]["losses"], runs["two"]["losses"]
    assert len(one) == len(two) == 4 and one[0] > one[-1]
    for a, b in zip(one, two, strict=True):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (one, two)
    models = [
        AutoModelForCausalLM.from_pretrained(tmp_path / name, dtype=torch.float32) for name in ("one", "two")
    ]
    weights = [m.state_dict() for m in models]
    assert weights[0].keys() == weights[1].keys() and not any("lora" in key for key in weights[1])
    for key, value in weights[0].items():
        assert weights[1][key].shape == value.shape  # full tensors, not shards
        assert torch.allclose(weights[1][key], value, atol=1e-5), key
