"""When runs fall: intervals, calendar periods and cron in time zones.

The daylight-saving rules are checked in Europe/Berlin (changes at 02:00 on
29 March and 03:00 on 25 October 2026) and America/New_York (02:00 on 8
March and 1 November 2026): a run in the spring gap runs once at the end of
the gap, a run in the autumn overlap runs once, a daily run keeps its
wall-clock time.
"""

import datetime
import itertools
import random
from zoneinfo import ZoneInfo

import pytest

from pinball_core.scheduler.recurrence import (
    Calendar,
    Cron,
    Interval,
    Recurrence,
    aware_time,
    parse_duration,
    wall_to_instant,
    zone_of,
)
from pinball_core.scheduler.spec import ScheduleSpec

BERLIN = zone_of("Europe/Berlin")
NEW_YORK = zone_of("America/New_York")
UTC = zone_of("UTC")

# The changes of 2026: (zone, spring day, autumn day, hour the clock jumps
# from in spring, hour that repeats in autumn).
CHANGES = [
    pytest.param(
        BERLIN,
        datetime.date(2026, 3, 29),
        datetime.date(2026, 10, 25),
        2,
        2,
        id="Berlin",
    ),
    pytest.param(
        NEW_YORK,
        datetime.date(2026, 3, 8),
        datetime.date(2026, 11, 1),
        2,
        1,
        id="New_York",
    ),
]


def at(zone: ZoneInfo, *parts: int, fold: int = 0) -> float:
    year, month, day, hour, minute = parts
    moment = datetime.datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold)
    return moment.timestamp()


def noon_before(zone: ZoneInfo, day: datetime.date) -> float:
    before = day - datetime.timedelta(days=1)
    return at(zone, before.year, before.month, before.day, 12, 0)


def runs(recurrence: Recurrence, after: float, count: int) -> list[float]:
    found, moment = [], after
    for _ in range(count):
        following = recurrence.next_after(moment)
        assert following is not None
        found.append(following)
        moment = following
    return found


def local(moments: list[float], zone: ZoneInfo) -> list[str]:
    return [aware_time(m, zone).isoformat() for m in moments]


def spec(**values: object) -> ScheduleSpec:
    return ScheduleSpec(workflow="w", **values)  # type: ignore[arg-type]


# -- Wall-clock times to instants -------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_a_time_in_the_gap_is_the_end_of_the_gap(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    in_gap = datetime.datetime.combine(spring, datetime.time(gap_hour, 30))
    instant = wall_to_instant(in_gap, zone)

    shown = aware_time(instant, zone)
    assert (shown.hour, shown.minute) == (gap_hour + 1, 0)
    # The last second before it is still in the old offset: nothing earlier
    # after the gap began.
    assert aware_time(instant - 1, zone).utcoffset() != shown.utcoffset()


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_a_repeated_time_is_its_first_occurrence(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    repeated = datetime.datetime.combine(autumn, datetime.time(overlap_hour, 30))
    instant = wall_to_instant(repeated, zone)

    assert instant == at(
        zone, autumn.year, autumn.month, autumn.day, overlap_hour, 30, fold=0
    )
    assert instant < at(
        zone, autumn.year, autumn.month, autumn.day, overlap_hour, 30, fold=1
    )


# -- Cron --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_cron_in_the_spring_gap_runs_once_at_the_end_of_the_gap(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    cron = Cron(f"30 {gap_hour} * * *", zone)
    before = noon_before(zone, spring)

    found = local(runs(cron, before, 3), zone)

    day = spring.isoformat()
    assert found[0].startswith(f"{day}T{gap_hour + 1:02d}:00:00")
    following = spring + datetime.timedelta(days=1)
    assert found[1].startswith(f"{following.isoformat()}T{gap_hour:02d}:30:00")


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_several_cron_times_in_the_gap_make_one_run(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    cron = Cron(f"*/15 {gap_hour},{gap_hour + 1} * * *", zone)
    before = at(zone, spring.year, spring.month, spring.day, 0, 0)

    found = [m[11:16] for m in local(runs(cron, before, 5), zone)]

    following = gap_hour + 1
    assert found == [f"{following:02d}:{m:02d}" for m in (0, 15, 30, 45)] + [
        f"{gap_hour:02d}:00"
    ]


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_cron_in_the_autumn_overlap_runs_once(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    cron = Cron(f"30 {overlap_hour} * * *", zone)
    before = noon_before(zone, autumn)

    found = runs(cron, before, 2)

    assert found[0] == at(zone, autumn.year, autumn.month, autumn.day, overlap_hour, 30)
    # The next one is the day after, not the second 01:30/02:30 an hour on.
    assert found[1] - found[0] == 25 * 3600


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_hourly_cron_across_the_autumn_change_runs_each_wall_hour_once(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    cron = Cron("0 * * * *", zone)
    before = at(zone, autumn.year, autumn.month, autumn.day, 0, 30)

    found = [m[11:19] for m in local(runs(cron, before, 4), zone)]

    hours = [h % 24 for h in range(1, 5)]
    assert found == [f"{h:02d}:00:00" for h in hours]


def test_cron_latest_run_from_inside_the_second_pass_of_an_overlap() -> None:
    cron = Cron("30 2 * * *", BERLIN)
    # 02:10 on the clock the second time round: 02:30 already ran, in the
    # first pass, 40 minutes earlier.
    second_pass = at(BERLIN, 2026, 10, 25, 2, 10, fold=1)

    assert cron.latest_at_or_before(second_pass) == at(BERLIN, 2026, 10, 25, 2, 30)
    assert cron.next_after(second_pass) == at(BERLIN, 2026, 10, 26, 2, 30)


def test_cron_never_runs_before_its_start() -> None:
    start = at(UTC, 2026, 5, 1, 0, 0)
    cron = Cron("0 12 * * *", UTC, not_before=start)

    assert cron.next_after(start - 30 * 86400) == at(UTC, 2026, 5, 1, 12, 0)
    assert cron.latest_at_or_before(start + 3600) is None
    assert cron.latest_at_or_before(at(UTC, 2026, 5, 2, 13, 0)) == at(
        UTC, 2026, 5, 2, 12, 0
    )


# -- Calendar periods ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
@pytest.mark.parametrize("hour", [0, 9, 23])
def test_a_daily_interval_keeps_its_wall_clock_hour(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
    hour: int,
) -> None:
    daily = spec(
        recurrence_sec=86400, start=f"2026-01-01T{hour:02d}:15:00", timezone=zone.key
    )
    recurrence = daily.recurrence_of()

    found = runs(recurrence, at(zone, 2026, 1, 1, 0, 0), 365)

    assert {aware_time(m, zone).strftime("%H:%M") for m in found} == {f"{hour:02d}:15"}
    gaps = {round(b - a) for a, b in itertools.pairwise(found)}
    assert gaps == {23 * 3600, 24 * 3600, 25 * 3600}


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_a_daily_run_in_the_gap_runs_at_its_end_then_back_at_its_hour(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    daily = spec(
        recurrence_sec=86400,
        start=f"2026-01-01T{gap_hour:02d}:30:00",
        timezone=zone.key,
    )
    before = noon_before(zone, spring)

    found = local(runs(daily.recurrence_of(), before, 3), zone)

    assert [m[11:16] for m in found] == [
        f"{gap_hour + 1:02d}:00",
        f"{gap_hour:02d}:30",
        f"{gap_hour:02d}:30",
    ]


@pytest.mark.parametrize(
    ("zone", "spring", "autumn", "gap_hour", "overlap_hour"), CHANGES
)
def test_a_daily_run_in_the_overlap_runs_once(
    zone: ZoneInfo,
    spring: datetime.date,
    autumn: datetime.date,
    gap_hour: int,
    overlap_hour: int,
) -> None:
    daily = spec(
        recurrence="P1D",
        start=f"2026-01-01T{overlap_hour:02d}:30:00",
        timezone=zone.key,
    )
    day_before = noon_before(zone, autumn)

    found = runs(daily.recurrence_of(), day_before, 2)

    assert found[0] == at(zone, autumn.year, autumn.month, autumn.day, overlap_hour, 30)
    assert found[1] - found[0] == 25 * 3600


def test_a_sub_day_interval_counts_elapsed_time_across_a_change() -> None:
    every_six_hours = spec(
        recurrence_sec=6 * 3600, start="2026-03-28T00:00:00", timezone="Europe/Berlin"
    )

    found = runs(every_six_hours.recurrence_of(), at(BERLIN, 2026, 3, 28, 0, 0), 8)

    assert {b - a for a, b in itertools.pairwise(found)} == {6 * 3600}
    assert [m[11:16] for m in local(found, BERLIN)][3:6] == ["00:00", "07:00", "13:00"]


def test_monthly_on_the_31st_takes_each_months_last_day_when_it_has_no_31st() -> None:
    monthly = spec(
        recurrence="P1M", start="2026-01-31T09:00:00", timezone="Europe/Berlin"
    )

    found = local(
        runs(monthly.recurrence_of(), at(BERLIN, 2026, 1, 1, 0, 0), 14), BERLIN
    )

    assert [m[:10] for m in found] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
        "2026-11-30",
        "2026-12-31",
        "2027-01-31",
        "2027-02-28",
    ]
    assert {m[11:] for m in found} == {"09:00:00+01:00", "09:00:00+02:00"}


def test_monthly_on_the_29th_of_january_meets_a_leap_february() -> None:
    monthly = spec(recurrence="P1M", start="2028-01-29T00:00:00")

    found = local(runs(monthly.recurrence_of(), at(UTC, 2028, 1, 1, 0, 0), 3), UTC)

    assert [m[:10] for m in found] == ["2028-01-29", "2028-02-29", "2028-03-29"]


def test_yearly_on_29_february_runs_on_the_28th_in_common_years() -> None:
    yearly = spec(
        recurrence="P1Y", start="2024-02-29T06:00:00", timezone="America/New_York"
    )

    found = local(
        runs(yearly.recurrence_of(), at(NEW_YORK, 2024, 1, 1, 0, 0), 6), NEW_YORK
    )

    assert [m[:10] for m in found] == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
        "2029-02-28",
    ]


def test_weekly_keeps_the_weekday_and_hour_across_changes() -> None:
    weekly = spec(
        recurrence_sec=7 * 86400,
        start="2026-03-02T08:00:00",
        timezone="America/New_York",
    )

    found = [
        aware_time(m, NEW_YORK)
        for m in runs(weekly.recurrence_of(), at(NEW_YORK, 2026, 3, 1, 0, 0), 40)
    ]

    assert {m.weekday() for m in found} == {0}
    assert {m.strftime("%H:%M") for m in found} == {"08:00"}


# -- Fixed intervals (the original's) ------------------------------------------


def test_advancing_past_now_adds_whole_periods() -> None:
    # The original: next run 95, period 10, at time 100 -> 105.
    recurrence = Interval(10.0, anchor=95.0)

    assert recurrence.next_after(100.0) == 105.0
    # A run that lands exactly on now has passed: one more period.
    assert recurrence.next_after(105.0) == 115.0
    assert recurrence.latest_at_or_before(100.0) == 95.0
    assert recurrence.latest_at_or_before(94.0) is None


def test_runs_with_the_same_period_and_phase_are_one_schedule() -> None:
    # The original's "correspond": next runs 10 and 20 with period 10 are
    # the same schedule, 10 and 25 are not.
    first = Interval(10.0, anchor=10.0)
    second = Interval(10.0, anchor=20.0)
    shifted = Interval(10.0, anchor=25.0)

    assert runs(first, 30.0, 5) == runs(second, 30.0, 5)
    assert runs(first, 30.0, 5) != runs(shifted, 30.0, 5)


def test_fractional_periods_from_timedelta_do_not_drift() -> None:
    recurrence = Interval(0.1 * 30, anchor=1000.0)
    moment = 1000.0
    for _ in range(10_000):
        following = recurrence.next_after(moment)
        assert following is not None and following > moment
        moment = following
    assert moment == pytest.approx(1000.0 + 30_000.0)


# -- Consistency ---------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"cron": "*/7 1-3 * * *", "timezone": "Europe/Berlin"},
        {"cron": "30 1 * * 0", "timezone": "America/New_York"},
        {
            "recurrence_sec": 86400,
            "start": "2026-01-01T02:30:00",
            "timezone": "Europe/Berlin",
        },
        {
            "recurrence": "P1M",
            "start": "2026-01-31T01:30:00",
            "timezone": "America/New_York",
        },
        {
            "recurrence_sec": 5400,
            "start": "2026-01-01T00:00:00",
            "timezone": "Europe/Berlin",
        },
    ],
)
def test_latest_and_next_agree_around_any_moment(values: dict[str, object]) -> None:
    recurrence = spec(**values).recurrence_of()
    rng = random.Random(7)
    start = at(UTC, 2026, 2, 1, 0, 0)
    for _ in range(300):
        moment = start + rng.uniform(0, 365 * 86400)
        latest = recurrence.latest_at_or_before(moment)
        following = recurrence.next_after(moment)
        assert latest is not None and following is not None
        assert latest <= moment < following
        # Nothing lies between them.
        assert recurrence.next_after(latest) == following


def test_durations() -> None:
    assert parse_duration("P1M").months == 1
    assert parse_duration("P1Y").months == 12
    assert parse_duration("P2W").days == 14
    assert parse_duration("PT90M").seconds == 5400
    for bad in ("P", "PT", "1M", "P1DT1H", "P0D", "P1.5M"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_calendar_needs_a_step() -> None:
    with pytest.raises(ValueError):
        Calendar(0, 0, datetime.datetime(2026, 1, 1), UTC)
