import pytest

from intervals.calendar import common_free_slot, describe, format_time, free_slots, parse_slot, parse_time
from intervals.interval import Interval


def test_parse_time():
    assert parse_time("09:30") == 570
    assert parse_time(" 00:00 ") == 0
    assert parse_time("23:59") == 1439


@pytest.mark.parametrize("bad", ["24:00", "12:60", "1230", "ab:cd", "12:5"])
def test_parse_time_rejects(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def test_format_time():
    assert format_time(570) == "09:30"
    assert format_time(0) == "00:00"
    assert format_time(1439) == "23:59"


def test_format_time_rejects_out_of_range():
    with pytest.raises(ValueError):
        format_time(1440)
    with pytest.raises(ValueError):
        format_time(-1)


def test_parse_slot():
    assert parse_slot("10:00-11:30") == Interval(600, 690)
    with pytest.raises(ValueError):
        parse_slot("10:00")


def test_free_slots():
    busy = [parse_slot("10:00-11:00"), parse_slot("13:00-14:30")]
    assert describe(free_slots(busy)) == ["09:00-10:00", "11:00-13:00", "14:30-17:00"]


def test_free_slots_min_length():
    busy = [parse_slot("09:30-16:40")]
    assert describe(free_slots(busy, min_length=30)) == ["09:00-09:30"]
    assert describe(free_slots(busy, min_length=31)) == []
    assert describe(free_slots(busy, min_length=20)) == ["09:00-09:30", "16:40-17:00"]


def test_common_free_slot():
    alice = [parse_slot("09:00-10:00"), parse_slot("12:00-13:00")]
    bob = [parse_slot("10:00-11:00")]
    assert common_free_slot([alice, bob], 60) == parse_slot("11:00-12:00")


def test_common_free_slot_exact_fit():
    alice = [parse_slot("09:00-12:00")]
    bob = [parse_slot("12:45-17:00")]
    assert common_free_slot([alice, bob], 45) == parse_slot("12:00-12:45")


def test_common_free_slot_none():
    alice = [parse_slot("09:00-13:00")]
    bob = [parse_slot("13:00-17:00")]
    assert common_free_slot([alice, bob], 15) is None


def test_common_free_slot_custom_day():
    assert common_free_slot([[]], 30, day_start="08:00", day_end="08:30") == Interval(480, 510)
