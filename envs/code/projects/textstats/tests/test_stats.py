from textstats.stats import (
    average_word_length,
    hapax_legomena,
    longest_words,
    top_words,
    type_token_ratio,
    word_count,
    word_frequencies,
)

TEXT = "the cat sat on the mat. The dog sat on the log!"


def test_word_count():
    assert word_count(TEXT) == 12


def test_word_count_empty():
    assert word_count("") == 0


def test_frequencies():
    counts = word_frequencies(TEXT)
    assert counts["the"] == 4
    assert counts["sat"] == 2
    assert counts["dog"] == 1


def test_frequencies_with_stopwords():
    counts = word_frequencies(TEXT, stopwords=["THE", "on"])
    assert "the" not in counts
    assert "on" not in counts
    assert counts["sat"] == 2


def test_top_words_ties_alphabetical():
    assert top_words(TEXT, 3) == [("the", 4), ("on", 2), ("sat", 2)]


def test_top_words_k_larger_than_vocabulary():
    assert top_words("b a b", 5) == [("b", 2), ("a", 1)]


def test_top_words_zero():
    assert top_words(TEXT, 0) == []


def test_average_word_length():
    assert average_word_length("ab abcd") == 3.0


def test_average_word_length_ignores_apostrophes():
    assert average_word_length("don't") == 4.0


def test_average_word_length_empty():
    assert average_word_length("!!!") == 0.0


def test_longest_words():
    assert longest_words("a bb ccc dd eee", 2) == ["ccc", "eee"]


def test_longest_words_default_k():
    assert longest_words("one three five seven eleven") == ["eleven", "seven", "three"]


def test_type_token_ratio():
    assert type_token_ratio("a a b b") == 0.5


def test_type_token_ratio_empty():
    assert type_token_ratio("") == 0.0


def test_hapax_legomena():
    assert hapax_legomena(TEXT) == ["cat", "dog", "log", "mat"]
