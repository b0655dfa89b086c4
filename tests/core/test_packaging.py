"""The console script works, and a plain (non-editable) install carries conf/ with it."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

AGENTKIT = str(Path(sys.executable).with_name("agentkit"))


def test_help_lists_every_command():
    out = subprocess.run([AGENTKIT, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "synth", "eval", "train", "demo", "sandbox exec", "sandbox check", "index"):
        assert f"  {command}" in out


def test_unknown_command_fails_with_usage():
    result = subprocess.run([AGENTKIT, "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr


@pytest.mark.slow
def test_wheel_carries_configs_and_runs_from_elsewhere(tmp_path):
    """Build the wheel, unpack it alone on sys.path, and compose a config from another directory."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(ROOT),
            "-w",
            str(tmp_path / "wheel"),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "wheel").glob("agentkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "agentkit/conf/serve.yaml" in names and "agentkit/conf/model/tiny-mla.yaml" in names
    assert "agentkit/schemas/trajectory.schema.json" in names
    assert "agentkit/assets/tiny-tokenizer/tokenizer.json" in names
    assert "agentkit/train/stages.py" in names and "agentkit/envs/math/env.py" in names
    assert not [n for n in names if n.split("/")[0] in ("envs", "synth", "train", "conf")], (
        "generic top-level names"
    )
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Drop the editable-install finders so only the unpacked wheel provides agentkit.
    code = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()];"
        f"sys.path.insert(0, {str(site)!r});"
        "sys.path[:] = [p for p in sys.path if p != {root!r}];"
        "import importlib.util as u; assert u.find_spec('train') is None and u.find_spec('envs') is None;"
        "import agentkit.train.stages, agentkit.envs.math, agentkit.synth.cli;"
        "from agentkit.cli import conf_dir, main; print(conf_dir()); main(['serve', '--cfg', 'job'])"
    ).replace("{root!r}", repr(str(ROOT)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(site / "agentkit" / "conf")
    assert "engine:" in result.stdout
