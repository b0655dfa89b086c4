"""Structured configs of ``agentkit synth`` and ``agentkit eval``. Types only: nothing runs at import.

Every key is declared here, so a misspelled override fails when Hydra composes the config, before
any server, sandbox or model starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentkit.config import EnvConfig, EpisodeLimitsConfig, ModelConfig, SamplingConfig, TaskSourceConfig


@dataclass
class StrategyConfig:
    """A synthesis strategy by its registered name, with its own keyword options."""

    name: str = "direct"
    options: dict[str, Any] = field(default_factory=dict)
    """Strategy-specific options (``reflect``: max_attempts; ``teacher``: mistakes...); an unknown
    one is an error naming ``strategy.options.<key>``."""


@dataclass
class DecontamSource:
    """An evaluation task set to keep out of the training data, loaded through an env's task loader."""

    env: str | None = None
    """The env whose loader reads ``tasks``; None: the env being synthesized."""
    tasks: TaskSourceConfig = field(default_factory=TaskSourceConfig)


@dataclass
class DecontamConfig:
    sources: list[DecontamSource] = field(default_factory=list)
    ngram: int = 13
    """Word n-gram length; shorter evaluation texts are matched as a whole."""
    threshold: float = 0.5
    """Drop a trajectory when it contains this fraction of some evaluation task's n-grams."""


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.9
    """Estimated Jaccard similarity (MinHash LSH) above which two trajectories are near duplicates."""
    num_perm: int = 128
    shingle: int = 5
    """Word shingle length for MinHash."""


@dataclass
class CurationConfig:
    """Filters applied, in order, to the raw rollouts to produce the training dataset."""

    enabled: bool = True
    require_passed: bool = True
    """Keep only trajectories whose verdict passed."""
    statuses: list[str] = field(default_factory=lambda: ["completed"])
    """Statuses kept (before ``require_passed``)."""
    min_turns: int = 1
    max_turns: int | None = None
    min_chars: int = 0
    max_chars: int | None = None
    """Bounds on the characters of all message contents and tool-call arguments."""
    max_tool_error_rate: float | None = None
    """Tool errors / tool calls above this are dropped (None: no bound)."""
    check_format: bool = True
    """Well-formed turns: balanced <think>, parseable calls, a final answer; plus the strategy's own check."""
    min_pass_rate: float | None = None
    max_pass_rate: float | None = None
    """Per-task difficulty bounds from the pass rate across samples (drop trivial or hopeless tasks)."""
    max_per_task: int | None = None
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)


@dataclass
class OutputConfig:
    compression: str = "none"
    """``none`` or ``zstd`` for the curated dataset shards (raw rollouts stay plain JSONL)."""
    rows_per_file: int = 10000
    fsync: bool = False
    """fsync after every raw line (slower; survives power loss, not only a killed process)."""


@dataclass
class ReportConfig:
    progress: bool = True
    plots: bool = True


@dataclass
class RecordConfig:
    tokens: bool | None = None
    """Token-faithful records: per assistant turn the generated text, its token ids and logprobs and the prompt's
    token count (vLLM's ``return_token_ids``). None: on when the endpoint is vLLM."""


@dataclass
class ExecutorConfig:
    """Where the rollouts run: ``local`` (asyncio in this process) or ``ray`` (actors across a cluster).

    Both stream finished episodes to the one writer in this process, so resume, the manifest, the
    failures file and the progress bar are the same; only ``ray`` reads the other keys.
    """

    name: str = "local"
    address: str | None = None
    """Ray cluster: ``auto`` (the one ``ray start`` made on this node), ``ray://host:10001`` or
    ``host:6379``; None starts a private Ray instance on this machine."""
    actors_per_node: int = 1
    """Rollout actors per node; each owns an env instance (and its sandbox pool) and model clients."""
    actor_cpus: float = 1.0
    """CPUs each actor reserves; nodes with fewer free CPUs get no actor (e.g. a ``--num-cpus=0`` head)."""
    batch_size: int = 0
    """Episodes handed to an actor at once; 0: half of its share of ``concurrency``."""
    num_cpus: int | None = None
    """CPUs of the private Ray instance (``address`` None); None: all of this machine's."""
    runtime_env: dict[str, Any] = field(default_factory=dict)
    """Ray ``runtime_env`` for the actors (``env_vars``, ``pip``, ``working_dir``, ``py_modules``...)."""


@dataclass
class RunConfig:
    """What synth and eval share: where the tasks, the policy and the outputs are."""

    env: EnvConfig = field(default_factory=EnvConfig)
    tasks: str | None = None
    """Shorthand for a task file or ``datasets`` directory: sets ``env.tasks.source`` and ``path``."""
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    limits: EpisodeLimitsConfig = field(default_factory=EpisodeLimitsConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    policy: str = "model"
    """``model`` (the served model) or ``reference`` (the env's reference solver, no model)."""
    n_samples: int = 1
    seed: int = 0
    out: str = "runs/synth"
    shard: str = "0/1"
    """``i/n``: this machine takes the tasks whose stable id hash falls in slice i of n."""
    concurrency: int = 0
    """Episodes in flight; 0 sizes it from the endpoints and the sandbox pool."""
    retries: int = 3
    """Reruns of an episode that ended in an infrastructure failure."""
    retry_backoff: float = 1.0
    """Seconds before the first rerun; doubles each time, with jitter."""
    resume: str = "auto"
    """``auto``: continue a run in ``out`` with the same config, refuse another; ``overwrite``: start over."""
    output: OutputConfig = field(default_factory=OutputConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


@dataclass
class SynthConfig(RunConfig):
    curation: CurationConfig = field(default_factory=CurationConfig)


@dataclass
class AptbenchConfig:
    """APTBench-style likelihood items built from verified trajectories (``agentkit.synth.aptbench``)."""

    data: str | None = None
    """Trajectory ``.jsonl`` shards: a file, a directory (a synth run) or a glob. None: the normal agent eval."""
    kinds: list[str] = field(default_factory=lambda: ["plan", "next_action", "error", "answer", "completion"])
    choices: int = 4
    """Options per multiple-choice item, the gold one included; items with fewer distinct options are dropped."""
    per_family: int = 30
    """At most this many trajectories sampled per family (``<env>/<family>``)."""
    seed: int = 0
    batch_size: int = 16
    max_length: int = 1024
    """Tokens per scored sequence (context + choice); longer contexts lose their oldest tokens."""


@dataclass
class EvalConfig(RunConfig):
    out: str = "runs/eval"
    aptbench: AptbenchConfig = field(default_factory=AptbenchConfig)
    """Set ``aptbench.data`` to score a checkpoint on likelihood items instead of running the agent."""
    ks: list[int] = field(default_factory=lambda: [1])
    """pass@k reported for each k <= n_samples."""
    confidence: float = 0.95
    bootstrap: int = 2000
    """Bootstrap resamples (over tasks) for the confidence intervals; 0 turns them off."""


@dataclass
class CurateConfig:
    """``agentkit curate``: dedup, decontamination and per-task caps across the datasets of many runs."""

    inputs: list[str] = field(default_factory=list)
    """Run directories (their ``data/`` shards) or dataset files (``.jsonl``, ``.jsonl.zst``)."""
    out: str = "runs/curated"
    curation: CurationConfig = field(default_factory=CurationConfig)
    """Only ``dedup``, ``decontam`` and ``max_per_task`` apply: the per-run filters already ran."""
    output: OutputConfig = field(default_factory=OutputConfig)
    overwrite: bool = False
    """Replace an existing curated dataset in ``out``."""
    progress: bool = True


def register() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="synth_schema", node=SynthConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="curate_schema", node=CurateConfig)
