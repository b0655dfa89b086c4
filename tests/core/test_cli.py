"""Every command composes its config; misspelled keys fail at compose time, naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest

from agentkit.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_prints_its_config(command, capsys):
    if command == "index":
        args = ["corpus=docs.jsonl", "out=idx"]
    else:
        args = []
    main([*command.split(), *args, "--cfg", "job"])
    out = capsys.readouterr().out
    assert out.strip() and "???" not in out.split("hydra:")[0]


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["synth", "n_sample=3"], "n_sample"),
        (["train", "trainer.learnig_rate=1e-3"], "learnig_rate"),
        (["serve", "prot=9000"], "prot"),
        (["sandbox", "exec", "limits.timout=1"], "timout"),
    ],
)
def test_unknown_key_fails_before_anything_starts(args, key, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--cfg", "job"])
    assert exit_info.value.code != 0
    assert f"Key '{key}' not in" in capsys.readouterr().err


def test_multirun_sweeps_a_key(tmp_path):
    """``--multirun`` launches one job per value (here: two real sandbox runs)."""
    agentkit = str(Path(sys.executable).with_name("agentkit"))
    result = subprocess.run(
        [agentkit, "sandbox", "exec", "--multirun", "limits.timeout=1,2"],
        input="print(6 * 7)\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "#0 : limits.timeout=1" in result.stderr + result.stdout
    assert "#1 : limits.timeout=2" in result.stderr + result.stdout
    results = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2 and '"stdout":"42' in results[0]  # stdin is read once, by the first job
