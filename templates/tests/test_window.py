"""promotional_window_next_start: 09:00-21:00 IST, frozen by passing `now`."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from templates.services import promotional_window_next_start

IST = ZoneInfo("Asia/Kolkata")
UTC = dt.UTC


@pytest.mark.parametrize(
    "now,expected",
    [
        (dt.datetime(2025, 3, 10, 9, 0, tzinfo=IST), None),
        (dt.datetime(2025, 3, 10, 14, 30, tzinfo=IST), None),
        (dt.datetime(2025, 3, 10, 20, 59, 59, tzinfo=IST), None),
        # 21:00 IST closes the window: next opening tomorrow 09:00 IST = 03:30 UTC
        (dt.datetime(2025, 3, 10, 21, 0, tzinfo=IST), dt.datetime(2025, 3, 11, 3, 30, tzinfo=UTC)),
        (dt.datetime(2025, 3, 10, 23, 45, tzinfo=IST), dt.datetime(2025, 3, 11, 3, 30, tzinfo=UTC)),
        # early morning: today 09:00 IST
        (dt.datetime(2025, 3, 10, 8, 59, tzinfo=IST), dt.datetime(2025, 3, 10, 3, 30, tzinfo=UTC)),
        # given in UTC: 22:00 UTC is 03:30 IST next day -> 09:00 IST that day
        (dt.datetime(2025, 3, 10, 22, 0, tzinfo=UTC), dt.datetime(2025, 3, 11, 3, 30, tzinfo=UTC)),
        # month and year ends roll over
        (dt.datetime(2025, 12, 31, 22, 0, tzinfo=IST), dt.datetime(2026, 1, 1, 3, 30, tzinfo=UTC)),
    ],
)
def test_promotional_window(now, expected):
    # when
    result = promotional_window_next_start(now=now)

    # then
    assert result == expected
    if result is not None:
        assert result.utcoffset() == dt.timedelta(0)


def test_window_hours_come_from_settings(settings):
    # given
    settings.DLT_PROMOTIONAL_HOURS = (10, 21)

    # when
    result = promotional_window_next_start(now=dt.datetime(2025, 3, 10, 9, 30, tzinfo=IST))

    # then
    assert result == dt.datetime(2025, 3, 10, 4, 30, tzinfo=UTC)


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="aware"):
        promotional_window_next_start(now=dt.datetime(2025, 3, 10, 9, 30))
