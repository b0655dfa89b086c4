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

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CJK_PATTERN), behavior="isolated"),
            pre_tokenizers.Split(Regex(STEM_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2, *, stem: bool = True
):
    """Train a byte-level BPE on ``texts``; a ``PreTrainedTokenizerFast`` with the special tokens and chat template
    (``vocab_size`` counts them all).

    ``stem=False`` gives the baseline: the same BPE with plain GPT-2 pre-tokenization (no STEM rules).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = (
        stem_pre_tokenizer() if stem else pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS),
        min_frequency=min_frequency,
        show_progress=False,
        special_tokens=ROLE_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    return _wrap(tokenizer)


# Stage-2 (superword) pre-tokenization: a digit alone, a line break with the next line's indentation, and
# everything else between them as one chunk, so merges may cross spaces ("of the", " = \\frac{").
SUPERWORD_PATTERN = r"\p{N}|[\r\n]+[ \t]*|[^\p{N}\r\n]+"
_SYMBOL_BASE = (
    0x20000  # stage-1 token id -> one code point, so stage 2 runs the stock BPE trainer over tokens
)


def superword_pre_tokenizer():
    """CJK one by one, then ``SUPERWORD_PATTERN`` chunks, then the byte-level mapping."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CJK_PATTERN), behavior="isolated"),
            pre_tokenizers.Split(Regex(SUPERWORD_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _chunks(texts: list[str]) -> Iterator[str]:
    import regex

    cjk, chunk = regex.compile(f"({CJK_PATTERN})"), regex.compile(SUPERWORD_PATTERN)
    for text in texts:
        for piece in cjk.split(text):
            if piece:
                yield from chunk.findall(piece)


def _merge_pair(merge: str | list[str]) -> tuple[str, str]:
    """A BPE merge as a pair: tokenizers writes it ``"a b"`` in older files and ``["a", "b"]`` in newer ones."""
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    return left, right


def train_superword_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    *,
    transition: float = 0.8,
    max_superword: int = 4,
):
    """Two-pass (SuperBPE-style) byte-level BPE: the STEM tokenizer up to ``transition`` of the vocabulary, then
    merges of its tokens across spaces, up to ``max_superword`` stage-1 tokens each, for the rest.

    Stage 1 learns subwords inside the STEM pre-tokens (digits single, LaTeX commands whole). Stage 2 re-reads
    the corpus as chunks between digits and line breaks, each a sequence of stage-1 tokens, and trains the
    stock BPE trainer over those tokens (one code point each), so frequent phrases, code lines and indentation
    become tokens. The final model is stage-1 merges followed by the stage-2 merges, applied to the chunks.
    """
    import json

    from tokenizers import AddedToken, Tokenizer, decoders, models, trainers

    texts = list(texts)
    stage1_size = max(300, int(vocab_size * transition)) - len(TAG_TOKENS)
    stage1 = Tokenizer(models.BPE())
    stage1.pre_tokenizer = stem_pre_tokenizer()
    from tokenizers import pre_tokenizers

    trainer = trainers.BpeTrainer(
        vocab_size=stage1_size,
        min_frequency=min_frequency,
        show_progress=False,
        special_tokens=ROLE_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    stage1.train_from_iterator(_batches(texts), trainer=trainer)
    model1 = json.loads(stage1.to_str())["model"]
    vocab: dict[str, int] = dict(model1["vocab"])
    merges = [_merge_pair(m) for m in model1["merges"]]
    by_id = {i: t for t, i in vocab.items()}
    sequences = []
    chunks = [c for c in _chunks(texts) if len(c) > 1]
    for batch in _batches(chunks, 4096):
        for encoding in stage1.encode_batch(batch, add_special_tokens=False):
            if len(encoding.ids) > 1:
                sequences.append("".join(chr(_SYMBOL_BASE + i) for i in encoding.ids))
    extra = vocab_size - len(TAG_TOKENS) - len(vocab)
    if extra > 0 and sequences:
        symbols = {c for seq in sequences for c in seq}
        stage2 = Tokenizer(models.BPE())
        trainer2 = trainers.BpeTrainer(
            vocab_size=len(symbols) + extra,
            min_frequency=min_frequency,
            show_progress=False,
            max_token_length=max_superword,
            initial_alphabet=sorted(symbols),
            limit_alphabet=len(symbols),
        )
        stage2.train_from_iterator(_batches(sequences), trainer=trainer2)
        known = set(merges)

        def text_of(symbols_: str) -> str:
            return "".join(by_id[ord(c) - _SYMBOL_BASE] for c in symbols_)

        for merge in json.loads(stage2.to_str())["model"]["merges"]:
            left, right = _merge_pair(merge)
            pair = (text_of(left), text_of(right))
            if pair in known or len(vocab) >= vocab_size - len(TAG_TOKENS):
                continue
            known.add(pair)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = superword_pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ROLE_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    return _wrap(tokenizer)


def _wrap(tokenizer):
    """A trained ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast`` with agentkit's special tokens
    and chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[t for t in ROLE_TOKENS if t not in (BOS, EOS, PAD)],
        chat_template=YOUTU_CHAT_TEMPLATE,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


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
        report[name] = {
            "docs": len(texts),
            "stem_bytes_per_token": round(ours, 4),
            "baseline_bytes_per_token": round(base, 4),
            "ratio": round(ours / base, 4),
        }
    return report


def save_tokenizer(tokenizer, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    return out
