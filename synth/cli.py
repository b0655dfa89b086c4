"""``agentkit synth`` and ``agentkit eval``: tasks + a policy -> verified rollouts -> a dataset or a score.

The commands compose the config and call the pipeline (``agentkit.synth.pipeline``: plan -> execute
-> finish); where the rollouts run is the ``executor`` config group (``local`` or ``ray``). Bad input
fails before any server starts, with one line naming the key or the file.
"""

from __future__ import annotations

from agentkit.synth.config import EvalConfig, SynthConfig
from agentkit.synth.pipeline import run

__all__ = ["evaluate", "run", "synth"]


def synth(cfg: SynthConfig) -> int:
    """Synthesize a verified, curated trajectory dataset."""
    return run("synth", cfg)


def evaluate(cfg: EvalConfig) -> int:
    """Evaluate a policy: pass@1, unbiased pass@k, confidence intervals, per-task results.

    With ``aptbench.data`` set, score a checkpoint by likelihood on items built from verified trajectories
    instead: no agent loop, no server, no sandbox."""
    if cfg.aptbench.data is not None:
        from agentkit.synth.aptbench import run_aptbench

        return run_aptbench(cfg)
    return run("eval", cfg)
