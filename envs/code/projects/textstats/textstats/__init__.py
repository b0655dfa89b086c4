"""Word, sentence and readability statistics for plain text."""

from textstats.readability import flesch_kincaid_grade, flesch_reading_ease, syllables
from textstats.stats import (
    average_word_length,
    longest_words,
    top_words,
    type_token_ratio,
    word_count,
    word_frequencies,
)
from textstats.tokenize import ngrams, sentences, words

__all__ = [
    "average_word_length",
    "flesch_kincaid_grade",
    "flesch_reading_ease",
    "longest_words",
    "ngrams",
    "sentences",
    "syllables",
    "top_words",
    "type_token_ratio",
    "word_count",
    "word_frequencies",
    "words",
]
