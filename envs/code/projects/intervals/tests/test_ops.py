from intervals.interval import Interval
from intervals.ops import count_overlaps, gaps, max_concurrency, merge, subtract, total_length


def test_merge_overlapping_and_touching():
    merged = merge([Interval(5, 8), Interval(0, 3), Interval(2, 4), Interval(8, 10)])
    assert merged == [Interval(0, 4), Interval(5, 10)]


def test_merge_keeps_disjoint():
    assert merge([Interval(4, 5), Interval(0, 1)]) == [Interval(0, 1), Interval(4, 5)]


def test_merge_drops_empty():
    assert merge([Interval(3, 3), Interval(1, 2)]) == [Interval(1, 2)]


def test_merge_nested():
    assert merge([Interval(0, 10), Interval(2, 3)]) == [Interval(0, 10)]


def test_total_length_counts_overlap_once():
    assert total_length([Interval(0, 5), Interval(3, 7), Interval(10, 12)]) == 9


def test_gaps():
    busy = [Interval(2, 4), Interval(6, 7)]
    assert gaps(busy, Interval(0, 10)) == [Interval(0, 2), Interval(4, 6), Interval(7, 10)]


def test_gaps_busy_outside_window():
    assert gaps([Interval(0, 2), Interval(12, 15)], Interval(3, 10)) == [Interval(3, 10)]


def test_gaps_busy_covers_start():
    assert gaps([Interval(0, 5)], Interval(3, 10)) == [Interval(5, 10)]


def test_gaps_fully_busy():
    assert gaps([Interval(0, 20)], Interval(3, 10)) == []


def test_subtract():
    assert subtract(Interval(0, 10), [Interval(3, 5)]) == [Interval(0, 3), Interval(5, 10)]


def test_count_overlaps():
    intervals = [Interval(0, 5), Interval(3, 8), Interval(5, 6)]
    assert count_overlaps(intervals, 4) == 2
    assert count_overlaps(intervals, 5) == 2
    assert count_overlaps(intervals, 8) == 0


def test_max_concurrency():
    intervals = [Interval(0, 5), Interval(1, 3), Interval(2, 6), Interval(7, 9)]
    assert max_concurrency(intervals) == 3


def test_max_concurrency_touching_is_sequential():
    assert max_concurrency([Interval(0, 5), Interval(5, 9)]) == 1


def test_max_concurrency_ignores_empty():
    assert max_concurrency([Interval(2, 2), Interval(1, 3)]) == 1
