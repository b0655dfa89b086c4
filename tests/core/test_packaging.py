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


SHADOWS = ("train", "envs", "synth", "conf")


@pytest.mark.slow
def test_a_script_beside_its_own_train_py_runs_a_synth(tmp_path):
    """The most common file names in ML beside a user's script do not shadow agentkit's packages."""
    for name in SHADOWS:
        (tmp_path / f"{name}.py").write_text(
            f"raise ImportError('the user\\'s own {name}.py was imported')\n"
        )
    (tmp_path / "run.py").write_text(
        "from agentkit.cli import main\n"
        "main(['synth', 'env=tooluse', 'policy=reference', 'env.tasks.n=3', 'report.progress=false',\n"
        "      'report.plots=false', 'out=out'])\n"
    )
    result = subprocess.run([sys.executable, "run.py"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "out" / "raw" / "rollouts.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_each_bench_script_starts_as_python_bench_name(script, tmp_path):
    """``python bench/NAME.py`` puts bench/ first on sys.path: its own ``train.py`` must shadow nothing agentkit
    imports. Each script parses its arguments and imports its modules (``--help``) from a copy of bench/ alone."""
    bench = tmp_path / "bench"
    bench.mkdir()
    for path in (ROOT / "bench").iterdir():
        if path.is_file():
            (bench / path.name).write_bytes(path.read_bytes())
    result = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]


@pytest.mark.slow
def test_the_serving_bench_runs_to_its_ratio_from_a_copy_of_bench(tmp_path):
    """One benchmark end to end (the one that failed on a fresh clone): it ends with its ``name: value`` line."""
    bench = tmp_path / "bench"
    bench.mkdir()
    for path in (ROOT / "bench").glob("*.py"):
        (bench / path.name).write_bytes(path.read_bytes())
    result = subprocess.run(
        [sys.executable, "bench/serve_batching.py", "--requests", "2", "--max-tokens", "4", "--rounds", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("batching_speedup_ratio: ")
