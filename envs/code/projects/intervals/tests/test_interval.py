import pytest

from intervals.interval import Interval


def test_rejects_reversed():
    with pytest.raises(ValueError):
        Interval(5, 3)


def test_empty_interval_is_allowed():
    assert Interval(4, 4).is_empty()
    assert not Interval(4, 5).is_empty()


def test_length():
    assert Interval(3, 10).length == 7


def test_contains_is_half_open():
    i = Interval(2, 5)
    assert i.contains(2)
    assert i.contains(4)
    assert not i.contains(5)
    assert not i.contains(1)


def test_overlaps():
    assert Interval(0, 5).overlaps(Interval(4, 8))
    assert Interval(4, 8).overlaps(Interval(0, 5))
    assert Interval(0, 10).overlaps(Interval(3, 4))


def test_touching_intervals_do_not_overlap():
    assert not Interval(0, 5).overlaps(Interval(5, 8))
    assert not Interval(5, 8).overlaps(Interval(0, 5))


def test_touches():
    assert Interval(0, 5).touches(Interval(5, 8))
    assert Interval(5, 8).touches(Interval(0, 5))
    assert not Interval(0, 5).touches(Interval(6, 8))


def test_intersection():
    assert Interval(0, 5).intersection(Interval(3, 9)) == Interval(3, 5)
    assert Interval(3, 9).intersection(Interval(0, 5)) == Interval(3, 5)
    assert Interval(0, 5).intersection(Interval(5, 9)) is None


def test_hull():
    assert Interval(0, 2).hull(Interval(5, 9)) == Interval(0, 9)


def test_shift():
    assert Interval(1, 4).shift(10) == Interval(11, 14)


def test_ordering_and_hash():
    assert Interval(1, 3) < Interval(2, 3)
    assert Interval(1, 3) < Interval(1, 4)
    assert len({Interval(1, 2), Interval(1, 2), Interval(1, 3)}) == 2


def test_repr():
    assert repr(Interval(1, 2)) == "Interval(1, 2)"
