"""Structured config of ``agentkit train``: one schema for every stage, filled by ``conf/stage/<name>.yaml``.

Types only. ``stage`` picks the recipe; ``data`` is a weighted mixture of sources (the curriculum);
``trainer`` maps onto TRL's ``SFTConfig``; ``peft`` turns on LoRA; ``tokenizer`` drives the tokenizer stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentkit.config import ModelConfig

STAGES = ("tokenizer", "pretrain", "midtrain", "sft")
ROLES = ("system", "user", "assistant", "tool")

# LoRA targets on MLA (STACK.md): "all-linear" misses the dense MLP on this architecture.
MLA_LORA_TARGETS = [
    "q_a_proj",
    "q_b_proj",
    "q_proj",
    "kv_a_proj_with_mqa",
    "kv_b_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
]


@dataclass
class SourceConfig:
    """One data source of a mixture."""

    path: str | None = None
    """A JSONL(.zst) or Parquet file, a glob, a local HF ``datasets`` directory or a synth output directory."""
    kind: str = "auto"
    """``auto`` (from the path), ``jsonl``, ``parquet``, ``hf``, ``synth``, or ``generated`` (``generator``)."""
    generator: str | None = None
    """For ``kind=generated``: a corpus of ``agentkit.train.corpus.GENERATORS`` (``commonsense_stem``, ``stem``...)."""
    n: int | None = None
    """Use at most ``n`` records (for generated corpora: how many documents to generate)."""
    weight: float = 1.0
    """Sampling weight in the mixture (normalised over the sources); 0 drops the source."""
    seed: int = 0
    split: str = "train"
    """Split of a local ``DatasetDict``."""
    format: str = "auto"
    """``auto`` (a ``messages`` column: conversation, else text), ``text`` or ``conversation``."""
    text_field: str = "text"
    messages_field: str = "messages"
    statuses: list[str] = field(default_factory=lambda: ["completed"])
    """Trajectory statuses kept (others are skipped and counted)."""
    require_passed: bool = True
    abilities: list[str] = field(default_factory=list)
    """Keep only trajectories tagged with one of these abilities (empty: all). Weight a mixture by ability with
    several sources over the same path: ``{path: runs/code, abilities: [localisation], weight: 2}``."""
    """Keep only trajectories whose verdict passed."""
    glob: str | None = None
    """Shard pattern inside a directory; None: a synth run's manifest (its curated ``data/`` shards), else the
    directory's ``*.jsonl`` / ``*.jsonl.zst`` / ``*.parquet`` files."""


@dataclass
class DataConfig:
    """A weighted mixture. Change a source with ``data.sources.general.weight=0.5``; add one from the command line
    with ``'++data.sources={extra: {path: corpus.jsonl, weight: 0.2}}'``."""

    path: str | None = None
    """Shorthand for ``sources.<main>.path``: ``agentkit train data=runs/math`` (comma-separate several paths)."""
    main: str = "main"
    """The source that ``path`` fills."""
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    stopping: str = "first_exhausted"
    """Mixture end: ``first_exhausted`` (the weights are exact) or ``all_exhausted`` (small sources repeat)."""
    streaming: bool = False
    """Read and render lazily (corpora larger than memory); needs ``trainer.max_steps``."""
    shuffle_buffer: int = 10000
    """Streaming only: size of the shuffle buffer."""
    loss_roles: list[str] = field(default_factory=lambda: ["assistant"])
    """Message roles whose rendered text is trained on; the rest is masked (-100)."""
    loss_on_template: bool = False
    """Also train on template text outside messages (BOS, role markers, the tool block)."""
    allow_template_mismatch: bool = False
    """Train on trajectories rendered with another chat template (their ``chat_template_sha256`` differs)."""
    keep_sampled_ids: bool = True
    """Token-faithful trajectories (``completion_token_ids``): train each assistant turn on the ids the model
    sampled when they decode to the text the template renders, even where the tokenizer would split that text
    otherwise; false: always the tokenizer's own split (turns that differ are counted either way)."""
    seed: int = 0


@dataclass
class TrainerConfig:
    """The knobs of TRL's ``SFTConfig`` agentkit sets; ``extra`` passes any other ``SFTConfig`` field."""

    learning_rate: float = 3e-4
    lr_scheduler: str = "wsd"
    """``wsd`` (warmup-stable-decay) or any transformers scheduler (``cosine``, ``linear``, ``constant``...)."""
    warmup_ratio: float = 0.05
    decay_ratio: float = 0.2
    """WSD: the fraction of steps in the final decay."""
    decay_type: str = "linear"
    """WSD decay shape: ``linear``, ``cosine`` or ``1-sqrt``."""
    min_lr_ratio: float = 0.0
    max_steps: int = -1
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    max_length: int = 512
    packing: bool = True
    packing_strategy: str = "bfd"
    """``bfd`` (documents kept whole, truncated at ``max_length``) or ``bfd_split`` (long ones split).
    Both keep documents apart: position ids restart and attention stays inside each document."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: str = "auto"
    """``auto``: on where the accelerator supports it (never on CPU, where it is ~8x slower), or true/false."""
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    resume: str = "auto"
    """``auto`` (from the last checkpoint in ``out`` if any), ``never``, or a checkpoint directory."""
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """``tensorboard``, ``wandb``, ... (transformers integrations)."""
    dataloader_num_workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PeftConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(MLA_LORA_TARGETS))
    merge: bool = True
    """Save the merged full model in ``out`` (what ``agentkit serve`` and vLLM load); the adapter goes to
    ``out/adapter`` either way."""


@dataclass
class TokenizerStageConfig:
    vocab_size: int = 4096
    min_frequency: int = 2
    max_docs: int | None = None
    """Train on at most this many documents of the mixture."""
    eval_docs: int = 1000
    """Held-out documents per domain (STEM, general) for the compression report."""
    baseline: bool = True
    """Also train a plain byte-level BPE (GPT-2 splits, no STEM rules) of the same size on the same data to
    compare against."""
    method: str = "superword"
    """``superword``: two passes (SuperBPE-style): STEM subwords, then merges across spaces (phrases, code lines,
    indentation); ``stem``: the STEM subword pass alone."""
    transition: float = 0.8
    """``superword``: share of the vocabulary learned by the subword pass before merges may cross spaces."""
    max_superword: int = 4
    """``superword``: a superword token joins at most this many subword tokens."""


@dataclass
class RopeScalingConfig:
    """RoPE scaling a recipe stage switches on, as transformers' ``rope_parameters`` (exported to vLLM too)."""

    type: str = "none"
    """``none`` (keep the model's RoPE), ``yarn`` or ``linear``; ``dynamic`` (NTK) too."""
    factor: float = 1.0
    """New context / old context; ``max_position_embeddings`` grows by this factor."""
    original_max_position_embeddings: int | None = None
    """The context the model was trained at; None: the model's current ``max_position_embeddings``."""
    beta_fast: float | None = None
    beta_slow: float | None = None


@dataclass
class CurriculumConfig:
    """Order of documents inside a stage. Packing and sampling keep it (rows are packed in order, read in order)."""

    by: str = "none"
    """``none`` (the weighted mixture, shuffled), ``length`` (short to long, in tokens) or ``sources`` (the
    sources one after another, in the order listed: easy data first)."""
    descending: bool = False


@dataclass
class RecipeStageConfig:
    """One stage of a recipe: its mixture, context, budget and phase of the recipe's learning-rate schedule."""

    data: DataConfig = field(default_factory=DataConfig)
    max_length: int = 512
    """Sequence length: documents are packed (in order, kept apart) into rows of this many tokens."""
    steps: int | None = None
    """Budget in optimizer steps; or ``tokens`` (converted with batch x accumulation x max_length x processes)."""
    tokens: float | None = None
    batch_size: int = 8
    """Rows per device and micro-step."""
    gradient_accumulation_steps: int = 1
    packing: str = "stream"
    """``stream`` (rows always full; a document crossing a row boundary goes on in the next row) or ``whole``
    (a document starts a new row when it does not fit; cut at ``max_length``). Both keep documents apart."""
    lr_phase: str = "stable"
    """``warmup`` (warm up, then hold), ``stable`` or ``decay``; decay stages come last and share one decay."""
    rope: RopeScalingConfig = field(default_factory=RopeScalingConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    long_context_eval: bool = False
    """Evaluate per-position loss and passkey retrieval before and after this stage (the context-extension check)."""
    enabled: bool = True


@dataclass
class ScheduleConfig:
    """One warmup-stable-decay learning-rate schedule across every stage of the recipe."""

    peak_lr: float = 1e-3
    warmup_steps: int = 20
    """Linear warmup at the start of the ``warmup`` stage."""
    decay_type: str = "cosine"
    """``linear``, ``cosine`` or ``1-sqrt``, over all ``decay`` stages together."""
    min_lr_ratio: float = 0.1


@dataclass
class RecipeConfig:
    """A multi-stage training recipe (``recipe=tiny``, ``recipe=youtu``): stages run in order, each from the
    previous stage's weights and optimizer state, under one learning-rate schedule."""

    name: str | None = None
    stages: dict[str, RecipeStageConfig] = field(default_factory=dict)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval_docs: int = 8
    """Held-out long documents for the per-position loss (and passkey prompts per length)."""


@dataclass
class TrainConfig:
    stage: str = "sft"
    """``tokenizer``, ``pretrain``, ``midtrain`` or ``sft`` (``conf/stage/<stage>.yaml`` sets its defaults)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    tokenizer: TokenizerStageConfig = field(default_factory=TokenizerStageConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    """``recipe=<name>`` (``conf/recipe/``) runs a whole multi-stage pipeline instead of one ``stage``."""
    out: str = "runs/ckpt"
    seed: int = 0


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def rewrite_args(args: list[str]) -> list[str]:
    """``data=<path>[,<path>...]`` (not a config node) is shorthand for ``data.path=...``."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key == "data" and value and not value.startswith("{"):
            out.append(f"data.path={value}")
        else:
            out.append(arg)
    return out
