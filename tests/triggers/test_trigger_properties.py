"""Property tests: random cron expressions against a brute-force oracle written here, and
random RRULEs (away from DST changes) against plain dateutil.

The oracle applies SPEC.md's rule minute by minute, independently of the implementation: a
cron expression whose minute or hour field starts with ``*`` runs at every real minute whose
local reading matches; any other runs once per matching local time - at its first occurrence,
or, when the time does not exist (a spring-forward gap), at the first instant after the gap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule as du
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from scheduler.cli.next import upcoming
from scheduler.errors import InvalidSchedule
from scheduler.model import Schedule
from scheduler.schedules import load_zone
from scheduler.triggers import compile_schedule

SETTINGS = settings(
    max_examples=70,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# (zone, a local date-time near which the offset changes)
TRANSITIONS = [
    ("America/New_York", datetime(2026, 3, 8, 2)),
    ("America/New_York", datetime(2026, 11, 1, 1)),
    ("Europe/Berlin", datetime(2026, 3, 29, 2)),
    ("Europe/Berlin", datetime(2026, 10, 25, 2)),
    ("Australia/Lord_Howe", datetime(2026, 4, 5, 1, 30)),
    ("Australia/Lord_Howe", datetime(2026, 10, 4, 2)),
    ("Asia/Seoul", datetime(1987, 5, 10, 2)),
    ("Asia/Seoul", datetime(1987, 10, 11, 2)),
    ("Asia/Seoul", datetime(1988, 5, 8, 2)),
    ("Asia/Seoul", datetime(2026, 6, 1, 12)),  # no change at all
]
WINDOW = timedelta(days=1)
MINUTE = timedelta(minutes=1)
RANGES = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 7)}


# --- cron expressions ------------------------------------------------------------------------


def field(name: str, *, hot: list[int] | None = None) -> st.SearchStrategy[str]:
    low, high = RANGES[name]
    value = st.sampled_from(hot) | st.integers(low, high) if hot else st.integers(low, high)
    step = st.integers(1, max(2, (high - low) // 2))
    return st.one_of(
        st.just("*"),
        step.map(lambda n: f"*/{n}"),
        value.map(str),
        st.lists(value, min_size=2, max_size=3, unique=True).map(lambda v: ",".join(map(str, v))),
        st.tuples(value, value).map(lambda v: f"{min(v)}-{max(v)}"),
        st.tuples(value, value, step).map(lambda v: f"{min(v[:2])}-{max(v[:2])}/{v[2]}"),
    )


@st.composite
def cron_expressions(draw: st.DrawFn, month: int, day: int) -> str:
    minute = draw(field("minute", hot=[0, 15, 30, 45]))
    hour = draw(field("hour", hot=[0, 1, 2, 3]))
    dom = draw(st.one_of(st.just("*"), field("dom", hot=[day - 1, day, day + 1])))
    months = draw(st.one_of(st.just("*"), st.just(str(month)), field("month")))
    dow = draw(st.one_of(st.just("*"), field("dow")))
    return f"{minute} {hour} {dom} {months} {dow}"


def expand(text: str, name: str) -> set[int]:
    low, high = RANGES[name]
    values: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(x) for x in span.split("-"))
        else:
            first = last = int(span)
            if step:
                last = high
        values.update(range(first, last + 1, int(step or 1)))
    if name == "dow" and values & {0, 7}:
        values |= {0, 7}  # both spell Sunday
    return values


def matcher(expr: str) -> Callable[[datetime], bool]:
    minute, hour, dom, month, dow = expr.split()
    sets = {
        "minute": expand(minute, "minute"),
        "hour": expand(hour, "hour"),
        "dom": expand(dom, "dom"),
        "month": expand(month, "month"),
        "dow": expand(dow, "dow"),
    }
    both = dom.startswith("*") or dow.startswith("*")  # Debian cron: then AND, else OR

    def matches(wall: datetime) -> bool:
        if wall.minute not in sets["minute"] or wall.hour not in sets["hour"]:
            return False
        if wall.month not in sets["month"]:
            return False
        day_ok = wall.day in sets["dom"]
        weekday_ok = (wall.weekday() + 1) % 7 in sets["dow"]  # cron: 0 (and 7) is Sunday
        return (day_ok and weekday_ok) if both else (day_ok or weekday_ok)

    return matches


def oracle(expr: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """Runs in (start, end] by the SPEC rule, minute by minute."""
    matches = matcher(expr)
    minute, hour, _ = expr.split(maxsplit=2)
    wildcard = minute.startswith("*") or hour.startswith("*")
    first_utc = (start - timedelta(hours=6)).replace(second=0, microsecond=0)
    minutes = [first_utc + MINUTE * i for i in range(int((end - start) / MINUTE) + 12 * 60)]
    readings = [moment.astimezone(tz).replace(tzinfo=None) for moment in minutes]
    occurrences: dict[datetime, list[datetime]] = defaultdict(list)
    for moment, reading in zip(minutes, readings, strict=True):
        occurrences[reading].append(moment)
    # where the reading jumps forward: (last reading before, first minute after) of each gap
    gaps = [
        (readings[i - 1], minutes[i])
        for i in range(1, len(minutes))
        if readings[i] - readings[i - 1] > MINUTE
    ]
    runs: set[datetime] = set()
    if wildcard:
        runs = {m for m, reading in zip(minutes, readings, strict=True) if matches(reading)}
    else:
        wall, last = min(readings), max(readings)
        while wall <= last:
            if matches(wall):
                if occurrences.get(wall):
                    runs.add(occurrences[wall][0])
                else:  # in a gap: the first real minute whose reading is later
                    runs.add(min(after for before, after in gaps if before < wall))
            wall += MINUTE
    return [r.astimezone(tz).isoformat() for r in sorted(runs) if start < r <= end]


@st.composite
def cron_cases(draw: st.DrawFn) -> tuple[str, str, datetime]:
    zone, near = draw(st.sampled_from(TRANSITIONS))
    offset = draw(st.integers(-20 * 60, 2 * 60))  # the day from the start covers the change
    expr = draw(cron_expressions(near.month, near.day))
    return expr, zone, (near + timedelta(minutes=offset)).replace(tzinfo=load_zone(zone))


@SETTINGS
@given(cron_cases())
def test_cron_matches_a_brute_force_oracle_of_the_spec_rule(
    case: tuple[str, str, datetime],
) -> None:
    expr, zone, local_start = case
    tz = load_zone(zone)
    start = local_start.astimezone(UTC)
    end = start + WINDOW
    try:
        trigger = compile_schedule(Schedule(cron=expr), tz, created=start)
    except InvalidSchedule:
        reject()
    got = []
    current = trigger.next_after(start)
    while current is not None and current.astimezone(UTC) <= end:
        got.append(current.isoformat())
        current = trigger.next_after(current)
    assert got == oracle(expr, tz, start, end)


# --- RRULEs against plain dateutil -----------------------------------------------------------

DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def rrule_cases(draw: st.DrawFn) -> tuple[str, str, datetime, datetime]:
    zone = draw(st.sampled_from(["Asia/Seoul", "UTC", "America/New_York", "Europe/Berlin"]))
    dst_free = zone in {"Asia/Seoul", "UTC"}
    freqs = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY"] + (["HOURLY", "MINUTELY"] if dst_free else [])
    freq = draw(st.sampled_from(freqs))
    parts = [f"FREQ={freq}", f"INTERVAL={draw(st.integers(1, 5))}"]
    ordinal = freq in {"MONTHLY", "YEARLY"} and draw(st.booleans())
    if draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))
        if ordinal:
            days = [f"{draw(st.sampled_from([-2, -1, 1, 2, 3]))}{day}" for day in days]
        parts.append("BYDAY=" + ",".join(days))
    if draw(st.booleans()):
        month_days = st.integers(1, 28) | st.integers(-5, -1)
        picked = draw(st.lists(month_days, min_size=1, max_size=3, unique=True))
        parts.append("BYMONTHDAY=" + ",".join(map(str, picked)))
    if freq == "YEARLY" and draw(st.booleans()):
        parts.append(
            "BYMONTH="
            + ",".join(
                map(str, draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True)))
            )
        )
    if freq in {"YEARLY", "MONTHLY", "WEEKLY", "DAILY"} and draw(st.booleans()):
        hours = draw(st.lists(st.integers(4, 23), min_size=1, max_size=2, unique=True))
        parts.append("BYHOUR=" + ",".join(map(str, hours)))
    if draw(st.booleans()):
        parts.append(f"BYMINUTE={draw(st.integers(0, 59))}")
    if freq in {"MONTHLY", "YEARLY"} and not ordinal and draw(st.booleans()):
        # e.g. the last weekday of the month; positions beyond a period's count never match
        if not any(p.startswith("BYDAY") for p in parts):
            parts.append("BYDAY=MO,TU,WE,TH,FR")
        parts.append(f"BYSETPOS={draw(st.sampled_from([-1, 1]))}")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(DAYS))}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 60))}")
    dtstart = draw(st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1))).replace(microsecond=0)
    if not dst_free:
        dtstart = dtstart.replace(hour=draw(st.integers(4, 23)))
    query = dtstart + timedelta(seconds=draw(st.integers(-30 * 86400, 15 * 365 * 86400)))
    return ";".join(parts), zone, dtstart, query


@SETTINGS
@given(rrule_cases())
def test_rrule_matches_plain_dateutil_away_from_dst_changes(
    case: tuple[str, str, datetime, datetime],
) -> None:
    body, zone, dtstart, query = case
    tz = load_zone(zone)
    text = f"DTSTART:{dtstart:%Y%m%dT%H%M%S}\n{body}"
    try:
        trigger = compile_schedule(Schedule(rrule=text), tz, created=dtstart.replace(tzinfo=tz))
    except InvalidSchedule:
        reject()
    after = query.replace(tzinfo=tz).astimezone(UTC)
    plain = du.rrulestr(
        body if "WKST" in body else body + ";WKST=MO", dtstart=dtstart.replace(tzinfo=tz)
    )
    expected = [run.isoformat() for run in plain.xafter(after, count=8)]
    assert [run.isoformat() for run in upcoming(trigger, after, 8)] == expected
