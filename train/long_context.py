"""Does a context extension work? Per-position loss on held-out long documents and passkey retrieval by length.

Both run on the model before a long-context stage (its original RoPE) and after it (scaled RoPE, trained at
the longer length). The claim checked: after the stage, the loss near 4x the old context stays within 10% of
the loss inside the old context; before it, the loss there rises (RoPE positions never seen in training).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

PASSKEY_SEED = 7_000_003
HELDOUT_SEED = 9_000_011
BIN = 16


def _load(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def heldout_long_documents(tokenizer, n: int, length: int, seed: int = HELDOUT_SEED) -> list[list[int]]:
    """``n`` held-out long documents (not in any training stream: their own seed), each cut to ``length`` tokens."""
    from agentkit.train.corpus import long_corpus

    sample = next(long_corpus(1, seed, chars=2000))
    chars_per_token = len(sample) / max(1, len(tokenizer(sample, add_special_tokens=False)["input_ids"]))
    chars = int(length * chars_per_token * 1.3) + 200
    docs = []
    for text in long_corpus(n, seed, chars=chars):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        docs.append((bos + ids)[:length])
    return docs


def per_position_loss(model, docs: list[list[int]]) -> list[float]:
    """Mean next-token loss at each position (position i predicts token i + 1) over ``docs`` of equal length."""
    import torch

    with torch.no_grad():
        ids = torch.tensor(docs)
        logits = model(input_ids=ids).logits[:, :-1].float()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return losses.mean(0).tolist()


def passkey_scores(model, tokenizer, lengths: list[int], n: int, seed: int = PASSKEY_SEED) -> dict[int, dict]:
    """Teacher-forced passkey retrieval: the share of key digits predicted exactly (greedy) at each context length.

    A key of 5 digits is stated at the start, followed by filler up to the length, then the question; chance
    is 0.1 per digit.
    """
    import torch

    from agentkit.train.corpus import passkey_document

    rng = random.Random(seed)
    digit_ids = {tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    out: dict[int, dict] = {}
    for length in lengths:
        rows, targets = [], []
        for _ in range(n):
            prefix, question, key = passkey_document(rng, length * 4)
            tail = tokenizer(question + " " + key, add_special_tokens=False)["input_ids"]
            head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
            bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
            ids = (bos + head)[: max(8, length - len(tail))] + tail
            key_ids = tokenizer(" " + key, add_special_tokens=False)["input_ids"]
            start = len(ids) - len(key_ids)
            rows.append(ids)
            targets.append([(start + i, t) for i, t in enumerate(key_ids) if t in digit_ids])
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id or 0
        batch = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        with torch.no_grad():
            logits = model(input_ids=batch).logits
        hits = total = exact = 0
        for row, positions in enumerate(targets):
            right = [int(logits[row, p - 1].argmax()) == t for p, t in positions]
            hits += sum(right)
            total += len(right)
            exact += all(right)
        out[length] = {
            "digit_accuracy": hits / max(1, total),
            "exact": exact / n,
            "prompts": n,
            "tokens": width,
        }
    return out


def _binned(curve: list[float], size: int = BIN) -> list[dict[str, float]]:
    return [
        {"position": i + size // 2, "loss": sum(curve[i : i + size]) / len(curve[i : i + size])}
        for i in range(0, len(curve), size)
    ]


def long_context_check(cfg, plan, before: Path | None, after: Path, stage_dir: Path) -> dict[str, Any]:
    """Per-position loss and passkey scores of the models before and after a long-context stage."""
    import json

    from agentkit.train.models import load_tokenizer_for

    tokenizer = load_tokenizer_for(cfg.model)
    after_model = _load(after)
    old = int(plan.cfg.rope.original_max_position_embeddings or 0)
    if before is not None:
        before_model = _load(before)
        old = old or before_model.config.max_position_embeddings
    else:
        before_model = None
        old = old or int(after_model.config.max_position_embeddings / max(1.0, plan.cfg.rope.factor))
    new = min(after_model.config.max_position_embeddings, plan.cfg.max_length)
    docs = heldout_long_documents(tokenizer, cfg.recipe.eval_docs, new)
    docs = [d for d in docs if len(d) == new]
    lengths = sorted({max(16, old // 2), old, min(new, 2 * old), new})
    result: dict[str, Any] = {
        "old_context": old,
        "new_context": new,
        "documents": len(docs),
        "rope_parameters": after_model.config.rope_parameters,
    }
    for name, model in (("before", before_model), ("after", after_model)):
        if model is None:
            continue
        curve = per_position_loss(model, docs)
        inside = curve[old // 2 : old - 1]
        far = curve[max(old, new - old // 2) - 1 :]
        mean_inside, mean_far = sum(inside) / len(inside), sum(far) / len(far)
        result[name] = {
            "loss_inside": mean_inside,
            "loss_far": mean_far,
            "far_over_inside": mean_far / mean_inside,
            "curve": _binned(curve),
            "passkey": passkey_scores(model, tokenizer, lengths, cfg.recipe.eval_docs),
        }
    result["target_met"] = bool(
        result["after"]["far_over_inside"] <= 1.10
        and ("before" not in result or result["before"]["far_over_inside"] > 1.10)
    )
    (stage_dir / "long_context.json").write_text(json.dumps(result, indent=2))
    return result
