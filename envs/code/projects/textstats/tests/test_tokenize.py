import pytest

from textstats.tokenize import char_ngrams, ngrams, sentences, words


def test_words_lowercases_and_strips_punctuation():
    assert words("Hello, World! It's 2024.") == ["hello", "world", "it's", "2024"]


def test_words_of_empty_text():
    assert words("  ...  ") == []


def test_sentences_split_on_terminators():
    text = "One fish. Two fish! Red fish? Blue fish..."
    assert sentences(text) == ["One fish", "Two fish", "Red fish", "Blue fish"]


def test_sentences_without_terminator():
    assert sentences("no end in sight") == ["no end in sight"]


def test_bigrams():
    assert ngrams(["a", "b", "c", "d"], 2) == [("a", "b"), ("b", "c"), ("c", "d")]


def test_ngrams_of_exact_length():
    assert ngrams(["a", "b", "c"], 3) == [("a", "b", "c")]


def test_ngrams_too_short():
    assert ngrams(["a", "b"], 3) == []


def test_unigrams():
    assert ngrams(["x", "y"], 1) == [("x",), ("y",)]


def test_ngrams_rejects_zero():
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_char_ngrams_padding():
    assert char_ngrams("ab", 2) == ["_a", "ab", "b_"]


def test_char_trigrams():
    assert char_ngrams("cat", 3) == ["__c", "_ca", "cat", "at_", "t__"]


def test_char_unigrams_have_no_padding():
    assert char_ngrams("hi", 1) == ["h", "i"]


def test_char_ngrams_rejects_zero():
    with pytest.raises(ValueError):
        char_ngrams("a", 0)
