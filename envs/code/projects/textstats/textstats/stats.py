"""Counting and ranking words."""

from collections import Counter

from textstats.tokenize import words


def word_count(text):
    return len(words(text))


def word_frequencies(text, stopwords=()):
    """A Counter of the words of ``text``, leaving out ``stopwords``."""
    stop = {w.lower() for w in stopwords}
    return Counter(w for w in words(text) if w not in stop)


def top_words(text, k, stopwords=()):
    """The ``k`` most frequent words as (word, count) pairs; ties go in alphabetical order."""
    if k <= 0:
        return []
    counts = word_frequencies(text, stopwords)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:k]


def average_word_length(text):
    """Mean number of characters per word (apostrophes not counted); 0.0 for no words."""
    tokens = words(text)
    if not tokens:
        return 0.0
    letters = sum(len(t.replace("'", "")) for t in tokens)
    return letters / len(tokens)


def longest_words(text, k=3):
    """The ``k`` longest distinct words, longest first, ties in alphabetical order."""
    distinct = set(words(text))
    return sorted(distinct, key=lambda w: (-len(w), w))[:k]


def type_token_ratio(text):
    """Distinct words divided by words (lexical variety); 0.0 for no words."""
    tokens = words(text)
    if not tokens:
        return 0.0
    return len(set(tokens)) / len(tokens)


def hapax_legomena(text):
    """Words that occur exactly once, in alphabetical order."""
    counts = word_frequencies(text)
    return sorted(w for w, c in counts.items() if c == 1)
