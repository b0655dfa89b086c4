"""Free-slot search over a day, with times written as "HH:MM" and stored as minutes."""

from intervals.interval import Interval
from intervals.ops import gaps, merge

MINUTES_PER_DAY = 24 * 60


def parse_time(text):
    """Minutes since midnight for "HH:MM" (24-hour clock)."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"not a HH:MM time: {text!r}")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f"time out of range: {text!r}")
    return h * 60 + m


def format_time(minutes):
    """ "HH:MM" for minutes since midnight."""
    if not 0 <= minutes < MINUTES_PER_DAY:
        raise ValueError(f"minutes out of range: {minutes}")
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_slot(text):
    """An interval from "HH:MM-HH:MM"."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"not a HH:MM-HH:MM slot: {text!r}")
    return Interval(parse_time(start), parse_time(end))


def free_slots(busy, day_start="09:00", day_end="17:00", min_length=0):
    """Free intervals of the working day that last at least ``min_length`` minutes."""
    day = Interval(parse_time(day_start), parse_time(day_end))
    return [slot for slot in gaps(busy, day) if slot.length >= min_length]


def common_free_slot(calendars, duration, day_start="09:00", day_end="17:00"):
    """The earliest interval of ``duration`` minutes free in every calendar, or None."""
    everyone_busy = merge([slot for busy in calendars for slot in busy])
    for slot in free_slots(everyone_busy, day_start, day_end, min_length=duration):
        return Interval(slot.start, slot.start + duration)
    return None


def describe(slots):
    """ "HH:MM-HH:MM" strings for a list of intervals."""
    return [f"{format_time(s.start)}-{format_time(s.end)}" for s in slots]
