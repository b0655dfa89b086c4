"""``agentkit demo``'s configuration (``conf/demo.yaml``): task families, arms, stages, evaluation, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentkit.errors import ConfigError

STAGES = ("tokenizer", "pretrain", "midtrain", "sft")
EXTRA_KINDS = ("synth", "tokenizer", "pretrain", "midtrain", "sft", "eval", "aptbench", "loop", "serve")


@dataclass
class FamilyConfig:
    """One task family: an env, the generator options that select the family, and its task counts."""

    env: str = "math"
    tasks: dict[str, Any] = field(default_factory=dict)
    """Generator options (``env.tasks.options``) that select the family, e.g. ``{kinds: [arithmetic]}``."""
    mid: int = 200
    """Train-split tasks solved by the reference solver for the mid-training mix (0: not in it)."""
    sft: int = 32
    """Other train-split tasks (another generator seed) for the SFT set; 0 makes this a transfer family: it is in
    the mid-training mix but not in the SFT data, so only arm B has seen it."""
    test: int = 30
    """Held-out (test-split) tasks every checkpoint is evaluated on; their reference trajectories are the
    APTBench-style items."""


@dataclass
class EnvOptions:
    """Options an env's families share."""

    options: dict[str, Any] = field(default_factory=dict)
    """Env options (``env.options``), e.g. a compact ``system_prompt``."""
    sandbox: dict[str, Any] = field(default_factory=dict)
    """Sandbox backend options (``env.sandbox.options``)."""


@dataclass
class MixConfig:
    """The agentic mid-training mix: the paper's trajectory schemes over the mid-training tasks."""

    teacher_share: float = 0.3
    """Fraction of each family's mid-training tasks also synthesized by ``strategy=teacher``: a mistake that
    really runs, the observation that exposes it, a reflection and the fix (0 turns it off)."""
    mistakes: list[str] = field(default_factory=lambda: ["code", "argument", "typo", "missing_argument"])
    """Teacher mistake kinds (``answer`` needs the verifier's feedback turn, which a plain eval never gives)."""


@dataclass
class CorpusConfig:
    """The generated pre-training text: the commonsense -> STEM curriculum plus copy and lookup drills."""

    general: int = 3000
    """Documents of ``agentkit.train.corpus.commonsense_stem``."""
    drills: int = 3000
    """Documents of copy, expression-to-code and JSON-lookup drills (``drill_corpus``)."""
    drill_weight: float = 0.5
    """Share of drills in the pre-training mixture."""


@dataclass
class StageKnobs:
    """The ``agentkit train`` settings the demo sets for one stage."""

    max_steps: int = 100
    learning_rate: float = 1e-3
    max_length: int = 512
    batch_size: int = 8
    accumulation: int = 1
    lr_scheduler: str = "wsd"
    warmup_ratio: float = 0.05
    decay_ratio: float = 0.3
    general_weight: float = 0.0
    """Mid-training only: share of general text mixed with the trajectories."""
    loss_roles: list[str] | None = None
    """``data.loss_roles`` (null: the stage's own)."""


@dataclass
class ArmsConfig:
    """The ablation: every arm starts from the same pre-trained checkpoint and ends with the same SFT."""

    half: bool = True
    """Also train arm C: arm B with half the mid-training steps (so half the agentic tokens)."""


@dataclass
class DemoEvalConfig:
    max_tokens: int = 160
    """Per turn; greedy decoding (temperature 0)."""
    max_turns: int = 5
    max_completion_tokens: int = 480
    concurrency: int = 16
    max_batch_size: int = 16
    """The embedded server's batch: CPU generation pays per step, so batching pays."""
    serve_threads: int = 1
    """torch threads of the embedded server: a tiny model's decode steps are too small to gain from more, and one
    thread keeps its speed when other work shares the cores (two threads then stall at every parallel region)."""
    confidence: float = 0.95
    bootstrap: int = 2000
    """Paired bootstrap resamples (over tasks) for the B - A intervals."""
    engine: str = "auto"
    """``transformers`` (the embedded server), ``vllm`` (needs ``make vllm`` and the 512+64 latent) or
    ``auto``: vLLM when its venv exists and the architecture is servable, else the embedded server."""
    aptbench: bool = True
    """Score the pre-trained and mid-trained checkpoints by likelihood (``agentkit eval aptbench.data=...``)."""
    aptbench_per_family: int = 12
    """Held-out reference trajectories per family the likelihood items are built from."""


@dataclass
class LoopConfig:
    """The trained model synthesizes new, verified trajectories through the server."""

    arm: str = "B"
    """The arm whose final checkpoint synthesizes (``none``: skip)."""
    tasks: int = 12
    """Fresh train-split tasks per family (another generator seed than the training data)."""
    n_samples: int = 2
    temperature: float = 0.7
    strategy: str = "rejection"


@dataclass
class TargetsConfig:
    """What the report checks; whatever the numbers, it states them as measured."""

    gain: float = 0.20
    """B - A overall pass@1, with the interval of the difference excluding 0."""
    above_pretrain: float = 0.20
    """A and B each at least this far above the pre-trained model."""


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    seed: int = 0
    resume: bool = True
    """Reuse a finished step when its command and everything before it are unchanged; false: redo all."""
    families: dict[str, FamilyConfig] = field(default_factory=dict)
    envs: dict[str, EnvOptions] = field(default_factory=dict)
    mix: MixConfig = field(default_factory=MixConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    vocab_size: int = 2048
    arch: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny-mla"})
    """``model.arch`` of the model pre-trained from scratch: a preset plus YoutuConfig overrides."""
    pretrain: StageKnobs = field(default_factory=StageKnobs)
    midtrain: StageKnobs = field(default_factory=StageKnobs)
    sft: StageKnobs = field(default_factory=StageKnobs)
    arms: ArmsConfig = field(default_factory=ArmsConfig)
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    extra: dict[str, list[str]] = field(default_factory=dict)
    """More overrides per step kind: ``synth``, ``tokenizer``, ``pretrain``, ``midtrain``, ``sft``, ``eval``,
    ``aptbench``, ``loop``, ``serve`` (e.g. ``'demo.extra={pretrain: [trainer.logging_steps=1]}'``)."""
    plots: bool = True


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="demo_schema", node=DemoConfig)


def check_config(cfg: DemoConfig) -> None:
    """Config errors, each naming its key, before anything runs."""
    if not cfg.families:
        raise ConfigError("families: no task family to run (e.g. families.arith.env=math)")
    for name, fam in cfg.families.items():
        if fam.env not in cfg.envs:
            known = ", ".join(cfg.envs) or "none"
            raise ConfigError(f"families.{name}.env: '{fam.env}' has no entry under envs (known: {known})")
        if fam.mid < 0 or fam.sft < 0 or fam.test < 1:
            raise ConfigError(
                f"families.{name}: mid and sft must be >= 0 and test >= 1 (got {fam.mid}, {fam.sft}, {fam.test})"
            )
        if fam.mid == 0 and fam.sft == 0:
            raise ConfigError(f"families.{name}: neither mid nor sft has tasks; nothing would train on it")
    if not any(f.sft > 0 for f in cfg.families.values()):
        raise ConfigError("families: no family has sft > 0, so the SFT set would be empty")
    if not any(f.mid > 0 for f in cfg.families.values()):
        raise ConfigError("families: no family has mid > 0, so the mid-training mix would be empty")
    if not 0 <= cfg.mix.teacher_share <= 1:
        raise ConfigError(f"mix.teacher_share must be within [0, 1], got {cfg.mix.teacher_share}")
    if not 0 <= cfg.corpus.drill_weight < 1:
        raise ConfigError(f"corpus.drill_weight must be within [0, 1), got {cfg.corpus.drill_weight}")
    if cfg.corpus.general < 1:
        raise ConfigError(f"corpus.general must be >= 1, got {cfg.corpus.general}")
    if not 0 <= cfg.midtrain.general_weight < 1:
        raise ConfigError(f"midtrain.general_weight must be within [0, 1), got {cfg.midtrain.general_weight}")
    for stage in ("pretrain", "midtrain", "sft"):
        if getattr(cfg, stage).max_steps < 1:
            raise ConfigError(f"{stage}.max_steps must be >= 1")
    if cfg.arms.half and cfg.midtrain.max_steps < 2:
        raise ConfigError("arms.half needs midtrain.max_steps >= 2")
    if cfg.loop.arm not in ("A", "B", "C", "none"):
        raise ConfigError(f"loop.arm: one of A, B, C or none, got '{cfg.loop.arm}'")
    if cfg.loop.arm == "C" and not cfg.arms.half:
        raise ConfigError("loop.arm: C needs arms.half=true")
    if cfg.eval.engine not in ("auto", "transformers", "vllm"):
        raise ConfigError(f"eval.engine: one of auto, transformers, vllm, got '{cfg.eval.engine}'")
    for kind in cfg.extra:
        if kind not in EXTRA_KINDS:
            raise ConfigError(f"extra.{kind}: unknown step kind; known: {', '.join(EXTRA_KINDS)}")
