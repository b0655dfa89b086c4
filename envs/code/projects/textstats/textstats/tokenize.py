"""Splitting text into words, sentences and n-grams."""

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+")


def words(text):
    """Lower-cased words of ``text``; an apostrophe inside a word is kept ("don't")."""
    return _WORD.findall(text.lower())


def sentences(text):
    """Non-empty sentences of ``text``, split after '.', '!' or '?', stripped of whitespace."""
    parts = _SENTENCE_END.split(text)
    return [part.strip() for part in parts if part.strip()]


def ngrams(tokens, n):
    """Consecutive ``n``-tuples of ``tokens``; an empty list when there are fewer than ``n``."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def char_ngrams(word, n, pad="_"):
    """Character n-grams of ``word`` padded on both sides with ``n - 1`` pad characters."""
    if n < 1:
        raise ValueError("n must be at least 1")
    padded = pad * (n - 1) + word + pad * (n - 1)
    return [padded[i : i + n] for i in range(len(padded) - n + 1)]
