"""Half-open integer intervals and calendar helpers."""

from intervals.calendar import common_free_slot, format_time, free_slots, parse_time
from intervals.interval import Interval
from intervals.ops import gaps, merge, subtract, total_length

__all__ = [
    "Interval",
    "common_free_slot",
    "format_time",
    "free_slots",
    "gaps",
    "merge",
    "parse_time",
    "subtract",
    "total_length",
]
