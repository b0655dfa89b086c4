"""``agentkit demo``: the agentic mid-training ablation at toy scale on CPU, as the real commands it runs.

Task families with held-out splits -> reference and ``teacher`` trajectories (tools in the bwrap sandbox) -> the
STEM tokenizer -> a tiny MLA model pre-trained from scratch -> arm A (SFT only) and arm B (agentic mid-training,
then the same SFT), optionally arm C (half the mid-training) -> likelihood scores before SFT -> each final checkpoint
served and evaluated by an agent on held-out tasks per family -> the trained model synthesizing new verified
trajectories -> ``report.md`` / ``report.json`` / PNG plots.

Modules: ``config`` (what the YAML can say), ``pipeline`` (the steps, as command lines), ``steps`` (running
and reusing them), ``corpus`` (generated text), ``report``.
"""

from agentkit.synth.demo.config import DemoConfig, FamilyConfig, check_config, register
from agentkit.synth.demo.corpus import drill_corpus
from agentkit.synth.demo.pipeline import Demo, demo
from agentkit.synth.demo.report import markdown, paired_difference, pass_summary
from agentkit.synth.demo.steps import hydra_value, shown

__all__ = [
    "Demo",
    "DemoConfig",
    "FamilyConfig",
    "check_config",
    "demo",
    "drill_corpus",
    "hydra_value",
    "markdown",
    "paired_difference",
    "pass_summary",
    "register",
    "shown",
]
