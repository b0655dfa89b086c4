"""The stages: ``tokenizer``, and ``pretrain`` / ``midtrain`` / ``sft`` as thin recipes on TRL.

A training stage is config -> data -> TRL ``SFTConfig`` -> ``SFTTrainer`` -> train -> save: the stages
differ only in their data and loss masks (``conf/stage/*.yaml``). The output directory is an HF checkpoint
with the tokenizer and chat template (what ``agentkit serve model=<out>`` loads), intermediate checkpoints
to resume from, and ``train_report.json``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.train.config import STAGES, TrainConfig
from agentkit.train.render import IGNORE

log = logging.getLogger("agentkit.train")

REPORT = "train_report.json"
TOKENIZER_REPORT = "tokenizer_report.json"
PACKING_STRATEGIES = ("bfd", "bfd_split")
RESUME_KEYWORDS = ("auto", "never")


def run_stage(cfg: TrainConfig, callbacks: list | None = None) -> Path:
    """Run one stage and return its output directory. The python API behind ``agentkit train``."""
    validate(cfg)
    if cfg.stage == "tokenizer":
        return tokenizer_stage(cfg)
    return training_stage(cfg, callbacks or [])


def compose_config(overrides: Sequence[str] = ()) -> TrainConfig:
    """The ``TrainConfig`` that ``agentkit train <overrides>`` would run, for callers without a command line.

    ``compose_config(["stage=pretrain", "model=tiny-mla", "out=runs/pt"])`` gets the stage's defaults from
    ``conf/stage/pretrain.yaml``; ``data=<path>`` and ``model=<checkpoint dir>`` shorthands work as on the CLI.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from agentkit.cli import conf_dir
    from agentkit.config import to_object
    from agentkit.train.config import register, rewrite_args

    args = []
    for arg in rewrite_args(list(overrides)):
        key, _, value = arg.partition("=")
        if key == "model" and ("/" in value or value.startswith(".")) and Path(value).is_dir():
            args += ["model=hf", f"model.path={Path(value).resolve()}", f"model.name={Path(value).name}"]
        else:
            args.append(arg)
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return to_object(compose("train", overrides=args))
    finally:
        GlobalHydra.instance().clear()


def validate(cfg: TrainConfig) -> None:
    """Config errors found before anything is loaded, each naming its key."""
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage: unknown stage '{cfg.stage}'; known: {', '.join(STAGES)}")
    t = cfg.trainer
    if t.packing and t.packing_strategy not in PACKING_STRATEGIES:
        raise ConfigError(
            f"trainer.packing_strategy: '{t.packing_strategy}' is not one of "
            f"{', '.join(PACKING_STRATEGIES)} ('wrapped' lets documents attend to each other)"
        )
    if t.bf16 not in ("auto", "true", "false", "True", "False"):
        raise ConfigError(f"trainer.bf16: expected auto, true or false, got '{t.bf16}'")
    if t.lr_scheduler != "wsd":
        from transformers.trainer_utils import SchedulerType

        known = [s.value for s in SchedulerType]
        if t.lr_scheduler not in known:
            raise ConfigError(
                f"trainer.lr_scheduler: unknown '{t.lr_scheduler}'; known: wsd, {', '.join(known)}"
            )
    if not 0 <= t.decay_ratio <= 1 or not 0 <= t.warmup_ratio < 1 or t.decay_ratio + t.warmup_ratio > 1:
        raise ConfigError(
            "trainer.warmup_ratio / trainer.decay_ratio: need 0 <= warmup < 1, 0 <= decay <= 1 and "
            f"warmup + decay <= 1 (got {t.warmup_ratio}, {t.decay_ratio})"
        )
    if t.max_length < 8:
        raise ConfigError(f"trainer.max_length: too small ({t.max_length})")
    if cfg.data.streaming and t.max_steps <= 0 and cfg.stage != "tokenizer":
        raise ConfigError("trainer.max_steps: must be set with data.streaming=true (a stream has no length)")
    if t.resume not in RESUME_KEYWORDS and not Path(t.resume).is_dir():
        raise ConfigError(
            f"trainer.resume: expected auto, never or a checkpoint directory; '{t.resume}' is none"
        )
    if t.extra:
        from trl.trainer.sft_config import SFTConfig

        known = {f.name for f in fields(SFTConfig)}
        for key in t.extra:
            if key not in known:
                raise ConfigError(f"trainer.extra.{key}: not a field of trl.SFTConfig")
    if cfg.stage == "tokenizer" and cfg.tokenizer.method not in ("superword", "stem"):
        raise ConfigError(f"tokenizer.method: '{cfg.tokenizer.method}' is not one of superword, stem")
    if cfg.stage == "tokenizer" and not 0 < cfg.tokenizer.transition <= 1:
        raise ConfigError(f"tokenizer.transition: must be in (0, 1], got {cfg.tokenizer.transition}")
    if cfg.stage == "tokenizer" and cfg.tokenizer.vocab_size < 300:
        raise ConfigError(
            f"tokenizer.vocab_size: at least 300 (256 bytes + specials), got {cfg.tokenizer.vocab_size}"
        )


# ----------------------------------------------------------------------------------------- tokenizer


def _document_text(item) -> str:
    """A document for tokenizer training: the text, or a conversation's contents and calls as the model sees them."""
    from agentkit.toolcalls import render_tool_call

    if item.text is not None:
        return item.text
    parts = []
    for message in item.messages:
        content = message.get("content") or ""
        calls = [
            render_tool_call(c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        ]
        parts.append("\n".join([content, *calls]) if calls else content)
    return "\n".join(parts)


def tokenizer_stage(cfg: TrainConfig) -> Path:
    """Train the STEM tokenizer on the mixture, save it with the chat template, report compression vs a baseline."""
    from agentkit.train.corpus import commonsense_corpus, stem_corpus
    from agentkit.train.data import resolve_sources
    from agentkit.train.sources import SourceStats, TemplateCheck, iter_items
    from agentkit.train.tokenizer import compression_report, save_tokenizer, train_tokenizer

    tc = cfg.tokenizer
    out = Path(cfg.out)
    sources = resolve_sources(cfg.data)
    check = TemplateCheck(None, True)
    docs: list[str] = []
    for name, src in sources.items():
        docs.extend(_document_text(item) for item in iter_items(name, src, check, SourceStats(name)))
    if not docs:
        raise ConfigError("data: the tokenizer stage found no documents in its sources")
    import random

    random.Random(cfg.seed).shuffle(docs)
    held = min(tc.eval_docs, len(docs) // 10)
    heldout, docs = docs[:held], docs[held:]
    if tc.max_docs is not None:
        docs = docs[: tc.max_docs]
    started = time.perf_counter()
    if tc.method == "superword":
        from agentkit.train.tokenizer import train_superword_tokenizer

        tokenizer = train_superword_tokenizer(
            docs,
            vocab_size=tc.vocab_size,
            min_frequency=tc.min_frequency,
            transition=tc.transition,
            max_superword=tc.max_superword,
        )
    else:
        tokenizer = train_tokenizer(docs, vocab_size=tc.vocab_size, min_frequency=tc.min_frequency)
    seconds = time.perf_counter() - started
    save_tokenizer(tokenizer, out)
    report: dict[str, Any] = {
        "stage": "tokenizer",
        "out": str(out),
        "docs": len(docs),
        "vocab_size": len(tokenizer),
        "seconds": round(seconds, 2),
    }
    if tc.baseline:
        # Same data and the full configured budget: when a small corpus runs out of merges for the STEM
        # tokenizer before ``vocab_size``, the baseline still gets all of its tokens (the stricter comparison).
        baseline = train_tokenizer(docs, vocab_size=tc.vocab_size, min_frequency=tc.min_frequency, stem=False)
        from agentkit.train.corpus import toy_trajectories
        from agentkit.train.sources import Item

        reasoning = [
            _document_text(Item("toy", messages=[m.model_dump(exclude_none=True) for m in t.messages]))
            for t in toy_trajectories(tc.eval_docs, cfg.seed + 1_000_003)
        ]
        domains = {
            "stem": list(stem_corpus(tc.eval_docs, cfg.seed + 1_000_003)),
            "general": list(commonsense_corpus(tc.eval_docs, cfg.seed + 1_000_003)),
            "reasoning": reasoning,
        }
        if heldout:
            domains["heldout"] = heldout
        report["baseline_vocab_size"] = len(baseline)
        report["compression"] = compression_report(tokenizer, baseline, domains)
    (out / TOKENIZER_REPORT).write_text(json.dumps(report, indent=2))
    _print_tokenizer_report(report)
    return out


def _print_tokenizer_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"tokenizer: {report['vocab_size']} tokens from {report['docs']} documents "
        f"in {report['seconds']} s -> {report['out']}"
    )
    if "compression" in report:
        table = Table(title="bytes per token (higher compresses more)")
        for column in ("domain", "STEM BPE", "baseline BPE", "ratio"):
            table.add_column(column)
        for domain, row in report["compression"].items():
            table.add_row(
                domain,
                f"{row['stem_bytes_per_token']:.3f}",
                f"{row['baseline_bytes_per_token']:.3f}",
                f"{row['ratio']:.3f}",
            )
        console.print(table)


# ------------------------------------------------------------------------------------------ training


def _bf16(setting: str) -> bool:
    if setting.lower() in ("true", "false"):
        return setting.lower() == "true"
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _has_accelerator() -> bool:
    """CUDA, XPU or MPS. Without one, ``use_cpu`` makes accelerate run several processes on gloo (MULTI_CPU)."""
    import torch

    xpu = getattr(torch, "xpu", None)
    return bool(
        torch.cuda.is_available()
        or (xpu is not None and xpu.is_available())
        or torch.backends.mps.is_available()
    )


def resume_checkpoint(cfg: TrainConfig) -> str | None:
    setting = cfg.trainer.resume
    if setting == "never":
        return None
    if setting != "auto":
        return setting
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.out)
    return get_last_checkpoint(str(out)) if out.is_dir() else None


def sft_config(cfg: TrainConfig):
    """The TRL ``SFTConfig`` of a stage."""
    import torch
    from trl.trainer.sft_config import SFTConfig

    t = cfg.trainer
    kwargs: dict[str, Any] = dict(
        output_dir=str(cfg.out),
        learning_rate=t.learning_rate,
        lr_scheduler_type="warmup_stable_decay" if t.lr_scheduler == "wsd" else t.lr_scheduler,
        warmup_steps=t.warmup_ratio,
        max_steps=t.max_steps,
        num_train_epochs=t.num_train_epochs,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        max_length=t.max_length,
        packing=t.packing,
        packing_strategy=t.packing_strategy,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        bf16=_bf16(t.bf16),
        fp16=False,
        activation_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        report_to=list(t.report_to),
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=t.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        assistant_only_loss=False,
        completion_only_loss=False,
        use_cpu=not _has_accelerator(),
    )
    kwargs.update(t.extra)
    return SFTConfig(**kwargs)


def lora_config(cfg: TrainConfig):
    if not cfg.peft.enabled:
        return None
    from peft import LoraConfig

    p = cfg.peft
    return LoraConfig(
        r=p.r,
        lora_alpha=p.alpha,
        lora_dropout=p.dropout,
        target_modules=list(p.target_modules),
        task_type="CAUSAL_LM",
    )


def _stage_trainer_class():
    import torch
    from trl.trainer.sft_trainer import SFTTrainer

    class StageTrainer(SFTTrainer):
        """``SFTTrainer`` plus a warmup-stable-decay schedule sized from the real number of steps."""

        def __init__(self, *args, wsd: dict[str, Any] | None = None, **kwargs):
            self._wsd = wsd
            super().__init__(*args, **kwargs)

        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self._wsd is None or self.lr_scheduler is not None:
                return super().create_scheduler(num_training_steps, optimizer)
            from transformers.optimization import get_wsd_schedule

            optimizer = optimizer if optimizer is not None else self.optimizer
            assert isinstance(optimizer, torch.optim.Optimizer)  # the schedule is a LambdaLR over it
            self.lr_scheduler = get_wsd_schedule(
                optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_decay_steps=math.ceil(self._wsd["decay_ratio"] * num_training_steps),
                num_training_steps=num_training_steps,
                decay_type=self._wsd["decay_type"],
                min_lr_ratio=self._wsd["min_lr_ratio"],
            )
            self._created_lr_scheduler = True
            return self.lr_scheduler

    return StageTrainer


class CountingCollator:
    """Wraps the trainer's collator to count the real tokens and packed rows actually trained on."""

    def __init__(self, collator, max_length: int):
        self.collator, self.max_length = collator, max_length
        self.rows = self.tokens = 0

    def __call__(self, examples):
        self.rows += len(examples)
        self.tokens += sum(len(e["input_ids"]) for e in examples)
        return self.collator(examples)

    @property
    def efficiency(self) -> float | None:
        return self.tokens / (self.rows * self.max_length) if self.rows else None


class RowPackedCollator:
    """Packed rows kept as rows: ``(batch, length)`` with per-row ``position_ids`` that restart at each document.

    TRL's padding-free collator concatenates the whole batch into one ``1 x (batch * length)`` sequence, which
    only a varlen kernel (flash attention) handles in linear cost; SDPA and eager attention then build one dense
    ``(batch * length)^2`` mask, 5x slower at batch 8 x 512 on CPU. Here each row gets its own block-causal mask
    (transformers derives it from the restarting ``position_ids``), so documents still never see each other."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples):
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        rows = len(examples)
        input_ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((rows, width), IGNORE, dtype=torch.long)
        position_ids = torch.zeros((rows, width), dtype=torch.long)
        for row, example in enumerate(examples):
            ids = example["input_ids"]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(example.get("labels", ids))
            lengths = list(example.get("seq_lengths") or [len(ids)]) + [width - len(ids)]
            position_ids[row] = torch.cat([torch.arange(n) for n in lengths if n > 0])
        labels[position_ids == 0] = IGNORE  # no target across a document boundary
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def _varlen_attention(model) -> bool:
    return "flash" in str(getattr(model.config, "_attn_implementation", "") or "")


def build_trainer(cfg: TrainConfig, callbacks: list | None = None):
    """``(trainer, data)`` of a training stage, ready to ``train()``: the recipe without the run."""
    from agentkit.train.data import build_train_data
    from agentkit.train.models import load_model

    model, tokenizer = load_model(cfg.model, seed=cfg.seed)
    t = cfg.trainer
    truncates = not t.packing or t.packing_strategy == "bfd"
    data = build_train_data(
        cfg.data, tokenizer, truncate_at=t.max_length if truncates else None, progress=_is_main_process()
    )
    args = sft_config(cfg)
    wsd = (
        {"decay_ratio": t.decay_ratio, "decay_type": t.decay_type, "min_lr_ratio": t.min_lr_ratio}
        if t.lr_scheduler == "wsd"
        else None
    )
    trainer = _stage_trainer_class()(
        model=model,
        args=args,
        train_dataset=data.dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=list(callbacks or []),
        wsd=wsd,
    )
    collator = trainer.data_collator
    if t.packing and not _varlen_attention(trainer.model):
        collator = RowPackedCollator(tokenizer.pad_token_id)
    trainer.data_collator = CountingCollator(collator, t.max_length)
    return trainer, data


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def training_stage(cfg: TrainConfig, callbacks: list) -> Path:
    out = Path(cfg.out)
    trainer, data = build_trainer(cfg, callbacks)
    model = trainer.model
    assert model is not None  # build_trainer passes one
    sizes = (
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
    packed = None
    if cfg.trainer.packing:
        from agentkit.train.data import packing_efficiency

        packed = packing_efficiency(trainer.train_dataset, cfg.trainer.max_length)
    resume = resume_checkpoint(cfg)
    if resume:
        log.warning("resuming from %s", resume)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    save_checkpoint(trainer, cfg, out)
    if trainer.is_world_process_zero():
        report = _report(cfg, trainer, data, result, packed, seconds, resume, sizes)
        (out / REPORT).write_text(json.dumps(report, indent=2, default=str))
        _print_report(report)
    return out


def save_checkpoint(trainer, cfg: TrainConfig, out: Path) -> None:
    """The final model in ``out``: full weights (LoRA merged unless ``peft.merge=false``), tokenizer, template."""
    from accelerate.utils import is_peft_model

    model = trainer.model
    if is_peft_model(model):
        adapter = out / "adapter"
        if trainer.is_world_process_zero():
            model.save_pretrained(adapter)
            trainer.processing_class.save_pretrained(adapter)
        if cfg.peft.merge:
            merged = trainer.accelerator.unwrap_model(model).merge_and_unload()
            merged.config.use_cache = True
            if trainer.is_world_process_zero():
                merged.save_pretrained(out)
                trainer.processing_class.save_pretrained(out)
        return
    trainer.accelerator.unwrap_model(model).config.use_cache = True
    trainer.save_model(str(out))


def _report(
    cfg: TrainConfig,
    trainer,
    data,
    result,
    packed,
    seconds: float,
    resume: str | None,
    sizes: tuple[int, int],
) -> dict[str, Any]:
    from agentkit.train.data import template_warnings

    history = [h for h in trainer.state.log_history if "loss" in h]
    counter = trainer.data_collator if isinstance(trainer.data_collator, CountingCollator) else None
    # The collator's count: real tokens of this run (TRL's ``num_tokens`` counts one row per batch when rows
    # carry their own position_ids, and includes the steps before a resume).
    counted = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    tokens = (
        counter.tokens * trainer.args.world_size
        if counter and counter.tokens
        else int(counted[-1])
        if counted
        else None
    )
    efficiency = (
        packed["efficiency"] if packed else (counter.efficiency if counter and cfg.trainer.packing else None)
    )
    return {
        "stage": cfg.stage,
        "out": str(cfg.out),
        "model": cfg.model.path or cfg.model.name,
        "steps": trainer.state.global_step,
        "resumed_from": resume,
        "world_size": trainer.args.world_size,
        "distributed_type": str(
            getattr(trainer.accelerator.distributed_type, "value", trainer.accelerator.distributed_type)
        ),
        "parameters": sizes[0],
        "trainable_parameters": sizes[1],
        "seconds": round(seconds, 2),
        "train_loss": result.training_loss,
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "tokens": tokens,
        "tokens_per_second": tokens / seconds if tokens and seconds else None,
        "packing": {
            "strategy": cfg.trainer.packing_strategy,
            "efficiency": efficiency,
            "rows": packed["rows"] if packed else (counter.rows if counter else None),
        }
        if cfg.trainer.packing
        else None,
        "mixture": {
            "weights": data.weights,
            "stopping": cfg.data.stopping,
            "streaming": data.streaming,
            "sources": {name: s.as_dict() for name, s in data.stats.items()},
        },
        "warnings": template_warnings(data.stats) if data.streaming else data.warnings,
        "loss_history": [
            {"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate")} for h in history
        ],
        "config": asdict(cfg),
    }


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    packing = report.get("packing") or {}
    eff = packing.get("efficiency")
    console.print(
        f"{report['stage']}: {report['steps']} steps in {report['seconds']} s, loss {report['first_loss']} -> "
        f"{report['last_loss']}"
        + (f", packing efficiency {eff:.3f}" if eff is not None else "")
        + (f", {report['tokens_per_second']:.0f} tokens/s" if report.get("tokens_per_second") else "")
        + f" -> {report['out']}"
    )
    for name, source in ((report.get("mixture") or {}).get("sources") or {}).items():
        if source.get("sampled_turns"):
            console.print(
                f"data.sources.{name}: {source['retokenize_mismatches']} of {source['sampled_turns']} "
                "sampled turns re-tokenize to other ids than were sampled"
                + (
                    f"; {source['kept_sampled_splits']} trained on their sampled ids, which the tokenizer "
                    "splits otherwise"
                    if source.get("kept_sampled_splits")
                    else ""
                )
            )
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
