"""``agentkit train stage=<tokenizer|pretrain|midtrain|sft> model=... data=... out=...``, or the whole
multi-stage pipeline with ``agentkit train recipe=<tiny|youtu> out=...``."""

from __future__ import annotations

from agentkit.train.config import TrainConfig


def train(cfg: TrainConfig) -> int:
    if cfg.recipe.stages:
        from agentkit.train.pipeline import run_pipeline

        run_pipeline(cfg)
        return 0
    from agentkit.train.stages import run_stage

    run_stage(cfg)
    return 0
