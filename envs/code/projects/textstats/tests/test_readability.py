from textstats.readability import difficulty, flesch_kincaid_grade, flesch_reading_ease, syllables


def test_syllables_simple():
    assert syllables("cat") == 1
    assert syllables("water") == 2
    assert syllables("banana") == 3


def test_syllables_silent_e():
    assert syllables("make") == 1
    assert syllables("escape") == 2


def test_syllables_le_ending():
    assert syllables("table") == 2


def test_syllables_vowel_groups():
    assert syllables("queue") == 1
    assert syllables("beautiful") == 3


def test_syllables_y_is_a_vowel():
    assert syllables("rhythm") == 1
    assert syllables("happy") == 2


def test_syllables_empty():
    assert syllables("''") == 0


def test_reading_ease_short_words():
    assert flesch_reading_ease("The cat sat. The dog ran.") == 119.19


def test_reading_ease_long_words():
    assert flesch_reading_ease("Unbelievable organizational responsibilities.") == -275.61


def test_reading_ease_empty():
    assert flesch_reading_ease("") == 0.0


def test_kincaid_grade():
    assert flesch_kincaid_grade("The cat sat. The dog ran.") == -2.62


def test_kincaid_grade_long_sentence():
    text = "Reading is a wonderful activity that improves vocabulary and concentration"
    assert flesch_kincaid_grade(text) == 17.81


def test_kincaid_grade_empty():
    assert flesch_kincaid_grade("") == 0.0


def test_difficulty_levels():
    assert difficulty("The cat sat. The dog ran.") == "easy"
    assert difficulty("Unbelievable organizational responsibilities.") == "hard"
