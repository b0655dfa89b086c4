"""What the synthesis tests share: one rollout of a task, ``agentkit`` run in-process or as a subprocess
SIGKILLed mid-run, and the records a run wrote."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.client import Sampling
from agentkit.config import EnvConfig, TaskSourceConfig
from agentkit.loop import EpisodeLimits
from agentkit.records import Provenance
from agentkit.synth.config import ReportConfig, StrategyConfig, SynthConfig
from agentkit.synth.rollout import env_policy
from agentkit.synth.strategies import Rollout

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
QUIET = ("report.progress=false", "report.plots=false")
"""No progress bars and no plots: the tests read the files, not the terminal."""


def need_bwrap() -> None:
    """Fail, never skip, without bubblewrap: the math and code envs run their tools in it."""
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is needed for the math and code envs")


def rollout(
    env,
    task,
    policy=None,
    *,
    sample: int = 0,
    sampling: Sampling | None = None,
    max_turns: int = 20,
    trajectory_id: str | None = None,
) -> Rollout:
    """Sample ``sample`` of ``task`` in ``env``: the env's reference solver unless ``policy`` is given,
    seeded with the sample number unless ``sampling`` is given."""
    return Rollout(
        env=env,
        task=task,
        sample=sample,
        trajectory_id=trajectory_id or f"{task.env}/{task.id}/s{sample}",
        sampling=Sampling(seed=sample) if sampling is None else sampling,
        limits=EpisodeLimits(max_turns=max_turns),
        provenance=Provenance(),
        policy=env_policy(env) if policy is None else policy,
    )


def run_strategy(strategy, one: Rollout):
    """The trajectory ``strategy`` makes of one rollout."""
    return asyncio.run(strategy.run(one))


def agentkit(capsys, *args: str) -> tuple[int | str | None, str, str]:
    """``agentkit ARGS`` in-process: its exit code (0 when it returns) and what it printed."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def synth(out: Path, *args: str, capsys=None) -> None:
    """``agentkit synth ARGS`` in-process, quiet, writing to ``out``; a failed run fails the test, with the
    stderr that ``capsys`` caught (what it printed is left for the test to read otherwise)."""
    try:
        main(["synth", *args, *QUIET, f"out={out}"])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err if capsys else f"exit code {exc.code}"


def toy_synth(out: Path, *extra: str) -> list[str]:
    """The arguments of a quiet ``agentkit synth`` of the toy env (reference policy, teacher, 2 samples)."""
    return [
        "synth",
        "env=toy-synth",
        "policy=reference",
        "strategy=teacher",
        "n_samples=2",
        *QUIET,
        f"out={out}",
        *extra,
    ]


def toy_config(out: Path, tasks: int, env_options: dict | None = None, **fields) -> SynthConfig:
    """``toy_synth`` as a typed config (for ``agentkit.synth.pipeline.run``): ``tasks`` toy tasks, and
    ``fields`` (``shard``, ``executor``, ``concurrency``...) over the rest."""
    return SynthConfig(
        env=EnvConfig(name="toy-synth", tasks=TaskSourceConfig(n=tasks), options=env_options or {}),
        policy="reference",
        strategy=StrategyConfig(name="teacher"),
        n_samples=2,
        out=str(out),
        report=ReportConfig(progress=False, plots=False),
        **fields,
    )


def subprocess_command(args: list[str]) -> list[str]:
    """``agentkit ARGS`` as a subprocess with the toy env registered (``run_agentkit.py``)."""
    return [sys.executable, str(HERE / "run_agentkit.py"), *args]


def subprocess_env() -> dict[str, str]:
    return dict(os.environ, AGENTKIT_CONF=str(ROOT / "conf"))


def raw_lines(out: Path) -> int:
    """How many rollouts the run in ``out`` has written (complete or torn lines)."""
    path = out / "raw" / "rollouts.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_and_kill(command: list[str], out: Path, after_lines: int, deadline: float = 120) -> int:
    """Start ``command`` and SIGKILL it once ``after_lines`` rollouts are in ``out``; the count then written.
    Fails the test if the run exits first or makes no progress within ``deadline`` seconds."""
    proc = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        stop = time.monotonic() + deadline
        while raw_lines(out) < after_lines:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < stop, "the run made no progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return raw_lines(out)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def raw(out: Path) -> list[dict]:
    """Every rollout the run in ``out`` wrote, kept or not."""
    return jsonl(out / "raw" / "rollouts.jsonl")


def dataset(out: Path) -> list[dict]:
    """The rows of the curated dataset of the run in ``out``, over all its shards."""
    return [row for path in sorted((out / "data").glob("train*.jsonl")) for row in jsonl(path)]
