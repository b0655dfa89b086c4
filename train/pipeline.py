"""``agentkit train recipe=<name>``: the paper's stages as one pipeline under one learning-rate schedule.

A recipe (``conf/recipe/<name>.yaml``) lists stages (commonsense pre-training -> STEM/code -> long context ->
agentic mid-training). Each stage has its own data mixture, sequence length, budget and phase of a single
warmup-stable-decay schedule that runs across all of them; it starts from the previous stage's weights and
optimizer state. Documents are packed in order and read in order (a sequential sampler), so a curriculum
across and inside stages survives training. The pipeline resumes at the stage and step where it stopped.

Layout of ``out``: ``stages/<i>-<name>/`` (Trainer checkpoints, ``final/`` weights + ``optimizer*.pt``,
``documents.jsonl``, ``done.json``), ``final/`` (the last stage's model), ``report.md``, ``report.json``
and the plots.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError, DataError
from agentkit.train.config import RecipeStageConfig, TrainConfig

log = logging.getLogger("agentkit.train")

LR_PHASES = ("warmup", "stable", "decay")
CURRICULA = ("none", "length", "sources")
PACKINGS = ("stream", "whole")
DECAY_TYPES = ("linear", "cosine", "1-sqrt")
ROPE_TYPES = ("none", "yarn", "linear", "dynamic")
DONE = "done.json"
DOCUMENTS = "documents.jsonl"
TRAINED = "trained_rows.json"


@dataclass
class StagePlan:
    """A stage with its place in the pipeline: global step range and learning-rate phase."""

    index: int
    name: str
    cfg: RecipeStageConfig
    steps: int
    start: int
    rows: int
    """Packed rows the stage consumes (steps x batch x accumulation x processes)."""

    @property
    def dir_name(self) -> str:
        return f"{self.index}-{self.name}"

    @property
    def end(self) -> int:
        return self.start + self.steps


@dataclass
class Schedule:
    """Warmup-stable-decay as a function of the global step (0-based), shared by every stage."""

    peak_lr: float
    warmup_steps: int
    decay_start: int
    decay_steps: int
    decay_type: str
    min_lr_ratio: float

    def factor(self, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay_steps and step >= self.decay_start:
            progress = min(1.0, (step - self.decay_start + 1) / self.decay_steps)
            if self.decay_type == "cosine":
                shape = 0.5 * (1.0 + math.cos(math.pi * progress))
            elif self.decay_type == "1-sqrt":
                shape = 1.0 - math.sqrt(progress)
            else:
                shape = 1.0 - progress
            return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * shape
        return 1.0

    def lr(self, step: int) -> float:
        return self.peak_lr * self.factor(step)


def world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def plan_stages(cfg: TrainConfig) -> tuple[list[StagePlan], Schedule]:
    """The enabled stages in order with their step budgets, and the schedule across them; config errors first."""
    recipe = cfg.recipe
    plans: list[StagePlan] = []
    start = 0
    for name, stage in recipe.stages.items():
        key = f"recipe.stages.{name}"
        if not stage.enabled:
            continue
        if stage.lr_phase not in LR_PHASES:
            raise ConfigError(f"{key}.lr_phase: '{stage.lr_phase}' is not one of {', '.join(LR_PHASES)}")
        if stage.curriculum.by not in CURRICULA:
            raise ConfigError(
                f"{key}.curriculum.by: '{stage.curriculum.by}' is not one of {', '.join(CURRICULA)}"
            )
        if stage.packing not in PACKINGS:
            raise ConfigError(f"{key}.packing: '{stage.packing}' is not one of {', '.join(PACKINGS)}")
        if stage.rope.type not in ROPE_TYPES:
            raise ConfigError(f"{key}.rope.type: '{stage.rope.type}' is not one of {', '.join(ROPE_TYPES)}")
        if stage.rope.type != "none" and stage.rope.factor <= 1.0:
            raise ConfigError(
                f"{key}.rope.factor: must be > 1 to extend the context, got {stage.rope.factor}"
            )
        if stage.max_length < 8:
            raise ConfigError(f"{key}.max_length: too small ({stage.max_length})")
        if stage.batch_size < 1 or stage.gradient_accumulation_steps < 1:
            raise ConfigError(f"{key}.batch_size / gradient_accumulation_steps: must be >= 1")
        rows_per_step = stage.batch_size * stage.gradient_accumulation_steps * world_size()
        if (stage.steps is None) == (stage.tokens is None):
            raise ConfigError(
                f"{key}: set exactly one budget, steps or tokens (got steps={stage.steps}, "
                f"tokens={stage.tokens})"
            )
        if stage.steps is not None:
            steps = stage.steps
        else:
            assert stage.tokens is not None  # exactly one budget is set (checked above)
            steps = math.ceil(stage.tokens / (rows_per_step * stage.max_length))
        if steps < 1:
            raise ConfigError(f"{key}.steps: must be >= 1, got {steps}")
        plans.append(StagePlan(len(plans), name, stage, steps, start, steps * rows_per_step))
        start += steps
    if not plans:
        raise ConfigError("recipe.stages: no enabled stages")
    phases = [p.cfg.lr_phase for p in plans]
    for i, phase in enumerate(phases):
        if phase == "warmup" and i != 0:
            raise ConfigError(f"recipe.stages.{plans[i].name}.lr_phase: only the first stage can warm up")
        if phase != "decay" and "decay" in phases[:i]:
            raise ConfigError(
                f"recipe.stages.{plans[i].name}.lr_phase: '{phase}' after a decay stage; the decay "
                "stages come last (one decay across them)"
            )
    s = recipe.schedule
    if s.decay_type not in DECAY_TYPES:
        raise ConfigError(
            f"recipe.schedule.decay_type: '{s.decay_type}' is not one of {', '.join(DECAY_TYPES)}"
        )
    if not 0 <= s.min_lr_ratio <= 1:
        raise ConfigError(f"recipe.schedule.min_lr_ratio: must be in [0, 1], got {s.min_lr_ratio}")
    decay = [p for p in plans if p.cfg.lr_phase == "decay"]
    warmup = min(s.warmup_steps, plans[0].steps) if phases[0] == "warmup" else 0
    schedule = Schedule(
        s.peak_lr,
        warmup,
        decay[0].start if decay else start,
        sum(p.steps for p in decay),
        s.decay_type,
        s.min_lr_ratio,
    )
    return plans, schedule


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Document:
    id: str
    source: str
    input_ids: list[int]
    labels: list[int]


@dataclass
class StageData:
    dataset: Any
    """``datasets.Dataset`` of packed rows: ``input_ids``, ``labels``, ``seq_lengths``, ``row``."""
    row_documents: list[list[str]]
    """The documents (ids) of each row, in order."""
    row_lengths: list[list[int]]
    """Each row's segment lengths (one per entry of ``row_documents``)."""
    documents: int
    tokens: int
    efficiency: float
    epochs: float
    stats: dict[str, Any] = field(default_factory=dict)


def stage_documents(
    stage: RecipeStageConfig, tokenizer, token_budget: int, seed: int
) -> tuple[list[Document], dict]:
    """The stage's documents in training order: the weighted mixture (seeded), then the curriculum's order.

    Sources are read lazily and only as far as the budget needs (plus 10% for packing), so a large generated
    corpus costs what the stage trains on.
    """
    from agentkit.train.data import render_item, resolve_sources, template_check
    from agentkit.train.render import IGNORE, LossPolicy
    from agentkit.train.sources import SourceStats, iter_items

    sources = resolve_sources(stage.data)
    policy = LossPolicy.of(stage.data.loss_roles, stage.data.loss_on_template)
    check = template_check(stage.data, tokenizer)
    stats = {name: SourceStats(name) for name in sources}
    streams = {name: iter(iter_items(name, src, check, stats[name])) for name, src in sources.items()}
    names = list(sources)
    weights = [sources[name].weight for name in names]
    rng = random.Random(seed)
    whole, max_length = stage.packing == "whole", stage.max_length
    docs: list[Document] = []
    tokens = 0
    exhausted: set[str] = set()
    counters = {name: 0 for name in names}
    while tokens < token_budget * 1.1 and len(exhausted) < len(names):
        name = rng.choices(names, weights=weights)[0]
        if name in exhausted:
            continue
        try:
            item = next(streams[name])
        except StopIteration:
            exhausted.add(name)
            if stage.data.stopping == "first_exhausted":
                break
            continue
        example = render_item(item, tokenizer, policy)
        if sum(label != IGNORE for label in example["labels"][1:]) == 0:
            stats[name].skipped["nothing to train on"] += 1
            continue
        counters[name] += 1
        docs.append(Document(f"{name}/{item.where}", name, example["input_ids"], example["labels"]))
        tokens += min(len(example["input_ids"]), max_length) if whole else len(example["input_ids"])
    if not docs:
        raise DataError("recipe stage: no trainable documents in its sources")
    order = stage.curriculum
    if order.by == "length":
        docs.sort(key=lambda d: len(d.input_ids), reverse=order.descending)
    elif order.by == "sources":
        rank = {name: i for i, name in enumerate(names)}
        docs.sort(key=lambda d: rank[d.source], reverse=order.descending)
    return docs, {"documents": counters, "weights": dict(zip(names, weights, strict=True))}


def pack_in_order(docs: list[Document], max_length: int, mode: str) -> tuple[list[dict], list[list[str]]]:
    """Rows of ``max_length`` tokens, documents in their given order and kept apart (``seq_lengths``).

    ``stream``: every row full; a document that crosses a row boundary continues in the next row as its own
    segment. ``whole``: a document starts a new row when it does not fit; longer ones are cut at ``max_length``.
    """
    rows: list[dict] = []
    row_docs: list[list[str]] = []
    ids: list[int] = []
    labels: list[int] = []
    lengths: list[int] = []
    names: list[str] = []

    def flush():
        if ids:
            rows.append(
                {
                    "input_ids": list(ids),
                    "labels": list(labels),
                    "seq_lengths": list(lengths),
                    "row": len(rows),
                }
            )
            row_docs.append(list(names))
            ids.clear()
            labels.clear()
            lengths.clear()
            names.clear()

    for doc in docs:
        doc_ids, doc_labels = doc.input_ids, doc.labels
        if mode == "whole":
            doc_ids, doc_labels = doc_ids[:max_length], doc_labels[:max_length]
            if len(ids) + len(doc_ids) > max_length:
                flush()
        pos = 0
        while pos < len(doc_ids):
            take = min(len(doc_ids) - pos, max_length - len(ids))
            ids.extend(doc_ids[pos : pos + take])
            labels.extend(doc_labels[pos : pos + take])
            lengths.append(take)
            names.append(doc.id)
            pos += take
            if len(ids) == max_length:
                flush()
    flush()
    return rows, row_docs


def build_stage_data(plan: StagePlan, tokenizer, seed: int) -> StageData:
    from datasets import Dataset, Features, Sequence, Value

    stage = plan.cfg
    docs, stats = stage_documents(stage, tokenizer, plan.rows * stage.max_length, seed)
    rows, row_docs = pack_in_order(docs, stage.max_length, stage.packing)
    available = len(rows)
    epochs = plan.rows / available if available else 0.0
    if available > plan.rows:
        rows, row_docs = rows[: plan.rows], row_docs[: plan.rows]
    elif available < plan.rows:
        log.warning(
            "recipe.stages.%s: %d packed rows for a budget of %d; the stage repeats its data (%.2f epochs)",
            plan.name,
            available,
            plan.rows,
            epochs,
        )
    tokens = sum(len(r["input_ids"]) for r in rows)
    features = Features(
        {
            "input_ids": Sequence(Value("int64")),
            "labels": Sequence(Value("int64")),
            "seq_lengths": Sequence(Value("int64")),
            "row": Value("int64"),
        }
    )
    dataset = Dataset.from_list(rows, features=features)
    return StageData(
        dataset,
        row_docs,
        [r["seq_lengths"] for r in rows],
        len({d for r in row_docs for d in r}),
        tokens,
        tokens / (len(rows) * stage.max_length),
        max(1.0, epochs),
        stats,
    )


def _progress_callback(name: str, steps: int):
    """A rich progress bar for a stage's steps, with the last loss and learning rate."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import TrainerCallback

    class StageProgress(TrainerCallback):
        def __init__(self):
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                transient=True,
            )
            self.task = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.progress.start()
            self.task = self.progress.add_task(
                f"  {name}", total=steps, completed=state.global_step, status=""
            )

        def on_step_end(self, args, state, control, **kwargs):
            assert self.task is not None  # added when training begins
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                assert self.task is not None  # added when training begins
                self.progress.update(
                    self.task,
                    status=f"loss {float(logs['loss']):.3f} lr {float(logs.get('learning_rate', 0)):.2e}",
                )

        def on_train_end(self, args, state, control, **kwargs):
            self.progress.stop()

    return StageProgress()


class RecordingCollator:
    """Packs rows into a batch (documents kept apart) and records which rows were trained on, in order."""

    def __init__(self, pad_token_id: int):
        from agentkit.train.stages import RowPackedCollator

        self.collator = RowPackedCollator(pad_token_id)
        self.rows: list[int] = []

    def __call__(self, examples):
        self.rows.extend(int(e["row"]) for e in examples)
        return self.collator(examples)


# ----------------------------------------------------------------------------------------------- model


def rope_parameters(config, rope) -> dict[str, Any] | None:
    """The ``rope_parameters`` after a stage's RoPE scaling, or None when the stage keeps the model's RoPE."""
    if rope.type == "none":
        return None
    current = dict(config.rope_parameters or {})
    original = rope.original_max_position_embeddings or config.max_position_embeddings
    params: dict[str, Any] = {
        "rope_type": rope.type,
        "rope_theta": current.get("rope_theta", 10000.0),
        "factor": float(rope.factor),
    }
    if rope.type in ("yarn", "dynamic"):
        params["original_max_position_embeddings"] = int(original)
    if rope.type == "yarn":
        if rope.beta_fast is not None:
            params["beta_fast"] = float(rope.beta_fast)
        if rope.beta_slow is not None:
            params["beta_slow"] = float(rope.beta_slow)
    return params


def load_stage_model(cfg: TrainConfig, plan: StagePlan, previous: Path | None):
    """The model a stage starts from: the previous stage's weights (or the recipe's model), RoPE scaled if asked."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from agentkit.train.models import load_model, load_tokenizer_for

    rope = plan.cfg.rope
    if previous is None:
        model, tokenizer = load_model(cfg.model, seed=cfg.seed)
        if rope.type == "none":
            return model, tokenizer
        config = model.config
        source = None
    else:
        tokenizer = load_tokenizer_for(cfg.model)
        config = AutoConfig.from_pretrained(previous)
        source = previous
        if rope.type == "none":
            return AutoModelForCausalLM.from_pretrained(previous, dtype=torch.float32), tokenizer
    params = rope_parameters(config, rope)
    assert params is not None  # rope.type is not "none" here
    original = params.get("original_max_position_embeddings") or config.max_position_embeddings
    config.rope_parameters = params
    config.max_position_embeddings = int(round(original * rope.factor))
    if source is None:
        state = model.state_dict()
        from transformers import AutoModelForCausalLM as Auto

        model = Auto.from_config(config, dtype=torch.float32)
        model.load_state_dict(state)
        return model, tokenizer
    return AutoModelForCausalLM.from_pretrained(source, config=config, dtype=torch.float32), tokenizer


# --------------------------------------------------------------------------------------------- trainer


def _pipeline_trainer_class():
    from collections.abc import Sized

    import torch
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class PipelineTrainer(Trainer):
        """A Trainer that reads rows in order, follows the recipe's global schedule and starts from carried state."""

        def __init__(self, *args, schedule: Schedule, start: int, carry: Path | None, **kwargs):
            self._schedule, self._start, self._carry = schedule, start, carry
            self.carried: str = "fresh"
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            assert isinstance(dataset, Sized)  # the Trainer asks for a sampler only for a map-style dataset
            return SequentialSampler(dataset)

        def create_optimizer(self, model=None):
            optimizer = super().create_optimizer(model)
            if self._carry is not None and self._carry.exists():
                self.carried = carry_optimizer_state(optimizer, self._carry)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] = self.args.learning_rate
            return optimizer

        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:
                from torch.optim.lr_scheduler import LambdaLR

                schedule, start = self._schedule, self._start
                optimizer = optimizer if optimizer is not None else self.optimizer
                assert isinstance(optimizer, torch.optim.Optimizer)  # LambdaLR takes nothing else
                self.lr_scheduler = LambdaLR(optimizer, lambda step: schedule.factor(start + step))
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return PipelineTrainer


def carry_optimizer_state(optimizer, path: Path) -> str:
    """Load the previous stage's AdamW state where every parameter's shape matches; else start it fresh."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = state.get("state", {})
    if len(state.get("param_groups", [])) != len(optimizer.param_groups):
        return "fresh (parameter groups differ)"
    for index, param in enumerate(params):
        entry = saved.get(index)
        if entry is not None and "exp_avg" in entry and entry["exp_avg"].shape != param.shape:
            return f"fresh (parameter {index} changed shape)"
    if sum(len(g["params"]) for g in state["param_groups"]) != len(params):
        return "fresh (parameter count differs)"
    optimizer.load_state_dict(state)
    return "carried"


def last_checkpoint(stage_dir: Path) -> Path | None:
    """The newest complete Trainer checkpoint (``trainer_state.json`` is written last, so a kill leaves none)."""
    best = None
    for path in stage_dir.glob("checkpoint-*"):
        try:
            step = int(path.name.split("-")[-1])
            json.loads((path / "trainer_state.json").read_text())
        except (ValueError, OSError):
            continue
        if best is None or step > best[0]:
            best = (step, path)
    return best[1] if best else None


def training_arguments(cfg: TrainConfig, plan: StagePlan, out: Path):
    import torch
    from transformers import TrainingArguments

    from agentkit.train.stages import _bf16, _has_accelerator

    t = cfg.trainer
    known = {f.name for f in fields(TrainingArguments)}
    for key in t.extra:
        if key not in known:
            raise ConfigError(
                f"trainer.extra.{key}: not a field of transformers.TrainingArguments (recipe stages "
                "run on the plain Trainer)"
            )
    return TrainingArguments(
        output_dir=str(out),
        learning_rate=cfg.recipe.schedule.peak_lr,
        max_steps=plan.steps,
        per_device_train_batch_size=plan.cfg.batch_size,
        gradient_accumulation_steps=plan.cfg.gradient_accumulation_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=_bf16(t.bf16),
        logging_steps=1,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        report_to=list(t.report_to),
        seed=cfg.seed,
        data_seed=cfg.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not _has_accelerator(),
        disable_tqdm=True,
        **t.extra,
    )


# -------------------------------------------------------------------------------------------- pipeline


def run_pipeline(cfg: TrainConfig) -> Path:
    """Run (or resume) every stage of ``cfg.recipe`` and write the report; the API behind ``recipe=<name>``."""
    from rich.console import Console
    from transformers.utils import logging as hf_logging

    from agentkit.train.long_context import long_context_check
    from agentkit.train.stages import _is_main_process

    plans, schedule = plan_stages(cfg)
    hf_logging.disable_progress_bar()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    main = _is_main_process()
    if main:
        (out / "recipe.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
        console.print(
            f"recipe {cfg.recipe.name}: "
            + " -> ".join(
                f"{p.name} ({p.steps} steps x {p.rows // p.steps} rows x {p.cfg.max_length}, lr {p.cfg.lr_phase})"
                for p in plans
            )
        )
    previous: Path | None = None
    results: list[dict[str, Any]] = []
    long_context: dict[str, Any] = {}
    for plan in plans:
        stage_dir = out / "stages" / plan.dir_name
        done = stage_dir / DONE
        if done.exists():
            result = json.loads(done.read_text())
            if main:
                console.print(f"[{plan.index + 1}/{len(plans)}] {plan.name}: done earlier, skipped")
                if result.get("config") != json.loads(json.dumps(asdict(plan.cfg), default=str)):
                    console.print(
                        f"[yellow]warning:[/yellow] recipe.stages.{plan.name}: done with another config "
                        f"than now; delete {stage_dir} to train it again"
                    )
        else:
            result = run_recipe_stage(cfg, plan, len(plans), schedule, stage_dir, previous, console)
        results.append(result)
        if plan.cfg.long_context_eval and main:
            long_context[plan.name] = long_context_check(cfg, plan, previous, stage_dir / "final", stage_dir)
        previous = stage_dir / "final"
    if main:
        final = out / "final"
        if final.exists():
            shutil.rmtree(final)
        assert previous is not None  # a recipe has at least one stage
        shutil.copytree(previous, final, ignore=shutil.ignore_patterns("optimizer*.pt"))
        from agentkit.train.recipe_report import write_report

        write_report(out, cfg, plans, schedule, results, long_context)
        console.print(
            f"recipe {cfg.recipe.name}: {plans[-1].end} steps -> {final}; report {out / 'report.md'}"
        )
    return out


def run_recipe_stage(
    cfg: TrainConfig,
    plan: StagePlan,
    total: int,
    schedule: Schedule,
    stage_dir: Path,
    previous: Path | None,
    console,
) -> dict[str, Any]:
    """Train one stage from ``previous`` (or resume it from its last checkpoint) and mark it done."""
    import torch

    from agentkit.train.stages import _is_main_process

    main = _is_main_process()
    started = time.perf_counter()
    model, tokenizer = load_stage_model(cfg, plan, previous)
    data = build_stage_data(plan, tokenizer, cfg.seed + 1000 * plan.index)
    stage_dir.mkdir(parents=True, exist_ok=True)
    if main:
        with open(stage_dir / DOCUMENTS, "w") as handle:
            for row, (docs, lengths) in enumerate(zip(data.row_documents, data.row_lengths, strict=True)):
                handle.write(json.dumps({"row": row, "documents": docs, "lengths": lengths}) + "\n")
    collator = RecordingCollator(tokenizer.pad_token_id)
    resume = last_checkpoint(stage_dir)
    carry = optimizer_file(previous) if previous is not None else None
    trainer = _pipeline_trainer_class()(
        model=model,
        args=training_arguments(cfg, plan, stage_dir),
        train_dataset=data.dataset,
        data_collator=collator,
        processing_class=tokenizer,
        schedule=schedule,
        start=plan.start,
        carry=carry,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if main:
        trainer.add_callback(_progress_callback(plan.name, plan.steps))
        console.print(
            f"[{plan.index + 1}/{total}] {plan.name}: {plan.steps} steps, "
            f"{data.documents} documents, {data.tokens} tokens in {len(data.dataset)} rows of "
            f"{plan.cfg.max_length} (fill {data.efficiency:.2f}), lr {plan.cfg.lr_phase}"
            + (f", resuming from {resume.name}" if resume else "")
        )
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    final = stage_dir / "final"
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True
    trainer.save_model(str(final))
    history = [
        {
            "step": plan.start + h["step"],
            "loss": h["loss"],
            "learning_rate": h.get("learning_rate"),
            "stage": plan.name,
        }
        for h in trainer.state.log_history
        if "loss" in h
    ]
    result = {
        "stage": plan.name,
        "index": plan.index,
        "steps": plan.steps,
        "start": plan.start,
        "max_length": plan.cfg.max_length,
        "rows": len(data.dataset),
        "tokens": data.tokens,
        "documents": data.documents,
        "fill": round(data.efficiency, 4),
        "epochs": round(data.epochs, 3),
        "mixture": data.stats,
        "lr_phase": plan.cfg.lr_phase,
        "optimizer": trainer.carried,
        "resumed_from": resume.name if resume else None,
        "seconds": round(time.perf_counter() - started, 2),
        "rope_parameters": getattr(model.config, "rope_parameters", None),
        "max_position_embeddings": model.config.max_position_embeddings,
        "history": history,
        "config": asdict(plan.cfg),
    }
    if str(trainer.accelerator.distributed_type).endswith("DEEPSPEED"):
        result["optimizer"] += " (DeepSpeed: the next stage starts a fresh optimizer)"
    else:  # every process its own part (FSDP shards it); the next stage reloads it with the same world size
        optimizer_file(final).parent.mkdir(parents=True, exist_ok=True)
        assert isinstance(trainer.optimizer, torch.optim.Optimizer)  # accelerate's wrapper is one
        torch.save(trainer.optimizer.state_dict(), optimizer_file(final))
    if main:
        tokenizer.save_pretrained(final)
        (stage_dir / TRAINED).write_text(
            json.dumps({"resumed_from": result["resumed_from"], "rows": collator.rows})
        )
        for checkpoint in stage_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
        (stage_dir / DONE).write_text(json.dumps(result, indent=2, default=str))
        first, last = (history[0]["loss"], history[-1]["loss"]) if history else (None, None)
        console.print(
            f"    {plan.name}: loss {first} -> {last} in {result['seconds']} s "
            f"(optimizer state {trainer.carried})"
        )
    trainer.accelerator.wait_for_everyone()
    return result


def optimizer_file(final: Path) -> Path:
    """Where a stage leaves its optimizer state: one file, or one per process when several train together."""
    import os

    size, rank = world_size(), int(os.environ.get("RANK", "0"))
    return final / ("optimizer.pt" if size == 1 else f"optimizer-rank{rank}-of-{size}.pt")
