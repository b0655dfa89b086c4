"""The half-open interval [start, end)."""


class Interval:
    __slots__ = ("start", "end")

    def __init__(self, start, end):
        if end < start:
            raise ValueError(f"interval end {end} is before its start {start}")
        self.start = start
        self.end = end

    @property
    def length(self):
        return self.end - self.start

    def is_empty(self):
        return self.start == self.end

    def contains(self, point):
        """True when ``start <= point < end``."""
        return self.start <= point < self.end

    def overlaps(self, other):
        """True when the two intervals share at least one point (touching ends do not)."""
        return self.start < other.end and other.start < self.end

    def touches(self, other):
        """True when one interval ends exactly where the other starts."""
        return self.end == other.start or other.end == self.start

    def intersection(self, other):
        """The common part, or None when they do not overlap."""
        if not self.overlaps(other):
            return None
        return Interval(max(self.start, other.start), min(self.end, other.end))

    def hull(self, other):
        """The smallest interval covering both."""
        return Interval(min(self.start, other.start), max(self.end, other.end))

    def shift(self, delta):
        return Interval(self.start + delta, self.end + delta)

    def __eq__(self, other):
        if not isinstance(other, Interval):
            return NotImplemented
        return self.start == other.start and self.end == other.end

    def __hash__(self):
        return hash((self.start, self.end))

    def __lt__(self, other):
        return (self.start, self.end) < (other.start, other.end)

    def __repr__(self):
        return f"Interval({self.start}, {self.end})"
