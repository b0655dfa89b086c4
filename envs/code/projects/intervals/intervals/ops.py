"""Operations on collections of intervals."""

from intervals.interval import Interval


def merge(intervals):
    """Sorted, disjoint intervals covering the same points; touching intervals are joined."""
    result = []
    for current in sorted(i for i in intervals if not i.is_empty()):
        if result and current.start <= result[-1].end:
            result[-1] = result[-1].hull(current)
        else:
            result.append(current)
    return result


def total_length(intervals):
    """The number of points covered by at least one interval."""
    return sum(i.length for i in merge(intervals))


def gaps(intervals, within):
    """The parts of ``within`` not covered by ``intervals``, in order."""
    result = []
    cursor = within.start
    for busy in merge(intervals):
        if busy.end <= within.start or busy.start >= within.end:
            continue
        if busy.start > cursor:
            result.append(Interval(cursor, busy.start))
        cursor = max(cursor, busy.end)
    if cursor < within.end:
        result.append(Interval(cursor, within.end))
    return result


def subtract(interval, others):
    """``interval`` minus every interval of ``others``: a list of the remaining pieces."""
    return gaps(others, interval)


def count_overlaps(intervals, point):
    """How many intervals contain ``point``."""
    return sum(1 for i in intervals if i.contains(point))


def max_concurrency(intervals):
    """The largest number of intervals that share a point (a sweep over start/end events)."""
    events = []
    for i in intervals:
        if not i.is_empty():
            events.append((i.start, 1))
            events.append((i.end, -1))
    events.sort()
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best
