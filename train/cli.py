"""``agentkit train stage=<tokenizer|pretrain|midtrain|sft> model=... data=... out=...``."""

from __future__ import annotations

from agentkit.train.config import TrainConfig


def train(cfg: TrainConfig) -> int:
    from agentkit.errors import AgentkitError
    from agentkit.train.stages import run_stage

    try:
        run_stage(cfg)
    except AgentkitError as exc:
        import sys

        print(f"agentkit train: {exc}", file=sys.stderr)
        return 2
    return 0


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
