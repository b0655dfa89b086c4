"""Readability scores based on syllable counts."""

from textstats.tokenize import sentences, words

VOWELS = "aeiouy"


def syllables(word):
    """A heuristic syllable count: groups of vowels, minus a silent final 'e', at least one."""
    word = word.lower().strip("'")
    if not word:
        return 0
    count = 0
    previous_vowel = False
    for ch in word:
        is_vowel = ch in VOWELS
        if is_vowel and not previous_vowel:
            count += 1
        previous_vowel = is_vowel
    if word.endswith("e") and not word.endswith("le") and count > 1:
        count -= 1
    return max(count, 1)


def _counts(text):
    tokens = words(text)
    n_sentences = max(len(sentences(text)), 1)
    n_syllables = sum(syllables(t) for t in tokens)
    return len(tokens), n_sentences, n_syllables


def flesch_reading_ease(text):
    """206.835 - 1.015 * words/sentence - 84.6 * syllables/word, rounded to 2 decimals."""
    n_words, n_sentences, n_syllables = _counts(text)
    if n_words == 0:
        return 0.0
    score = 206.835 - 1.015 * (n_words / n_sentences) - 84.6 * (n_syllables / n_words)
    return round(score, 2)


def flesch_kincaid_grade(text):
    """0.39 * words/sentence + 11.8 * syllables/word - 15.59, rounded to 2 decimals."""
    n_words, n_sentences, n_syllables = _counts(text)
    if n_words == 0:
        return 0.0
    grade = 0.39 * (n_words / n_sentences) + 11.8 * (n_syllables / n_words) - 15.59
    return round(grade, 2)


def difficulty(text):
    """'easy', 'standard' or 'hard' from the reading-ease score (>= 70 easy, < 50 hard)."""
    score = flesch_reading_ease(text)
    if score >= 70:
        return "easy"
    if score < 50:
        return "hard"
    return "standard"
