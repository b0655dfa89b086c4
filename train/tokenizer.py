"""Byte-level BPE with STEM-oriented pre-tokenization, trained by our own code (``tokenizers``).

Digits are split one by one and CJK characters one by one (as in the Youtu paper); a digit never takes the
space before it, so a number is the same tokens wherever it stands (``x = 42``, ``f(42)``, ``"42"``) and
copying it from a prompt or a tool output is a copy of identical tokens, which a small model learns much
sooner. A LaTeX command (``\\frac``) stays one piece; the rest follows a GPT-4o-like split
(words, punctuation runs, newlines, indentation). The chat-format markers are single tokens; role
markers are special (dropped when decoding), the tag tokens (``<think>``, ``<tool_call>``...) are not,
so they survive decoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from agentkit.chat_template import BOS, EOS, PAD, ROLE_TOKENS, TAG_TOKENS, YOUTU_CHAT_TEMPLATE

# STEM rules first: a digit alone (a space before it stays a token of its own), a LaTeX command as one piece; then a
# GPT-4o-like split of words, punctuation runs, newlines and indentation (digits excluded from words).
STEM_PATTERN = (
    r"\p{N}"
    r"| ?\\[A-Za-z]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"| ?[^\s\p{L}\p{N}\\]+[\r\n/]*| ?\\|\s*[\r\n]+|\s+(?!\S)|\s+"
)
WORD_PATTERN = STEM_PATTERN  # the name earlier versions used
CJK_PATTERN = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"


def stem_pre_tokenizer():
    """CJK characters one by one, then ``STEM_PATTERN``, then byte-level mapping (no regex of its own)."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CJK_PATTERN), behavior="isolated"),
        pre_tokenizers.Split(Regex(STEM_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2, *, stem: bool = True):
    """Train a byte-level BPE on ``texts``; a ``PreTrainedTokenizerFast`` with the special tokens and chat template
    (``vocab_size`` counts them all).

    ``stem=False`` gives the baseline: the same BPE with plain GPT-2 pre-tokenization (no STEM rules).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = (stem_pre_tokenizer() if stem
                               else pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS), min_frequency=min_frequency, show_progress=False,
        special_tokens=ROLE_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=[t for t in ROLE_TOKENS if t not in (BOS, EOS, PAD)],
        chat_template=YOUTU_CHAT_TEMPLATE, model_max_length=4096, clean_up_tokenization_spaces=False,
    )
    return fast


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def bytes_per_token(tokenizer, texts: Iterable[str]) -> float:
    """UTF-8 bytes per token over ``texts`` (higher is better compression)."""
    n_bytes = n_tokens = 0
    for batch in _batches(texts):
        n_bytes += sum(len(t.encode("utf-8")) for t in batch)
        n_tokens += sum(len(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"])
    return n_bytes / max(n_tokens, 1)


def compression_report(tokenizer, baseline, domains: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Bytes per token of ``tokenizer`` and ``baseline`` on each domain, and their ratio (> 1: ours compresses more)."""
    report = {}
    for name, texts in domains.items():
        ours, base = bytes_per_token(tokenizer, texts), bytes_per_token(baseline, texts)
        report[name] = {"docs": len(texts), "stem_bytes_per_token": round(ours, 4),
                        "baseline_bytes_per_token": round(base, 4), "ratio": round(ours / base, 4)}
    return report


def save_tokenizer(tokenizer, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    return out
