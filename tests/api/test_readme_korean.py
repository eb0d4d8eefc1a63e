"""The README's Korean homepage cards (gethomepage and Glance) read only fields the status
document has, label them in Korean, and render 실행 중 / 중지됨 / 없음 from the real JSON.

The gethomepage card is rendered with the model of its ``customapi`` widget that
``tests/api/test_dashboard.py`` holds for the English card, and its relative time with
``Intl.RelativeTimeFormat("ko")``'s words (the vectors below were printed by Node's ICU). The
Glance template is evaluated: its ``if``/``else``/``end`` and its ``.JSON`` calls, the way Glance's
Go template reads the JSON (a missing path reads as empty or false).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import pytest
import yaml

from tests.api.harness import Api
from tests.docs_text import ROOT, section
from tests.homepage import CONTRACT, js_date, lookup, render

README = ROOT / "README.md"
#: Intl.RelativeTimeFormat("ko"): the unit words, and with numeric "auto" the named ones.
_UNITS = {"second": "초", "minute": "분", "hour": "시간", "day": "일", "week": "주"}
_UNITS |= {"month": "개월", "year": "년"}
_NAMED = {
    ("second", 0): "지금",
    ("minute", 0): "현재 분",
    ("hour", 0): "현재 시간",
    ("day", -2): "그저께",
    ("day", -1): "어제",
    ("day", 0): "오늘",
    ("day", 1): "내일",
    ("day", 2): "모레",
    ("week", -1): "지난주",
    ("week", 0): "이번 주",
    ("week", 1): "다음 주",
    ("month", -1): "지난달",
    ("month", 0): "이번 달",
    ("month", 1): "다음 달",
    ("year", -1): "작년",
    ("year", 0): "올해",
    ("year", 1): "내년",
}
_CUTOFFS: dict[str, float] = {"second": 60, "minute": 3600, "hour": 86400, "day": 86400 * 7}
_CUTOFFS |= {"week": 86400 * 30, "month": 86400 * 365, "year": math.inf}


def korean_block(title: str) -> Any:
    """The YAML of the one fenced block under the README heading containing ``title``."""
    body = section(README, "### ", title)
    [block] = re.findall(r"^```yaml\n(.*?)^```", body, re.S | re.M)
    return yaml.safe_load(block)


def homepage_widgets() -> list[dict[str, Any]]:
    [group] = korean_block("gethomepage, 한국어")
    [services] = group.values()
    [service] = services
    [entry] = service.values()
    widgets: list[dict[str, Any]] = entry["widgets"]
    return widgets


def glance_template() -> str:
    [widget] = korean_block("Glance, 한국어")
    assert (widget["type"], widget["cache"]) == ("custom-api", "30s")
    assert widget["url"].endswith("/api/scheduler")
    template: str = widget["template"]
    return template


def relative_ko(ms: float, now: float, numeric: str = "always") -> str:
    """gethomepage's relativeDate (largest unit under the distance, floored) in Korean."""
    delta = math.floor((ms - now * 1000) / 1000 + 0.5)  # JavaScript's Math.round
    units = list(_CUTOFFS)
    unit = next(u for u in units if _CUTOFFS[u] > abs(delta))
    index = units.index(unit)
    count = math.floor(delta / (_CUTOFFS[units[index - 1]] if index else 1))
    if numeric == "auto" and (unit, count) in _NAMED:
        return _NAMED[unit, count]
    return f"{abs(count)}{_UNITS[unit]} {'후' if count >= 0 else '전'}"


def shown(mapping: dict[str, Any], doc: dict[str, Any], now: float) -> str:
    """What the card shows: the English model, with a relativeDate in the mapping's locale."""
    if mapping.get("format") != "relativeDate":
        return render(mapping, doc, now)
    assert mapping.get("locale") == "ko"
    plain = render({**mapping, "format": "text"}, doc, now)
    try:
        return relative_ko(js_date(plain), now, mapping.get("numeric", "always"))
    except ValueError:
        return plain  # i18next keeps a value its formatter cannot read


# --- Glance's template, evaluated -------------------------------------------------------------

_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_CALL = re.compile(r'\.JSON\.(Bool|Int|String|Exists) "([^"]+)"((?:\s*\|\s*[^|]+)*)$')


def glance_value(expr: str, doc: dict[str, Any]) -> Any:
    """One pipeline: ``.JSON.Kind "path"`` then ``parseTime "rfc3339"`` / ``toRelativeTime``."""
    call = _CALL.fullmatch(expr.strip())
    assert call, f"the Korean Glance template uses what this test cannot evaluate: {expr}"
    kind, path, pipes = call.groups()
    try:
        value = lookup(doc, path)
    except (KeyError, TypeError):
        value = None
    read: Any = {
        "Exists": value is not None,
        "Bool": value is True,
        "Int": value if isinstance(value, int) else 0,
        "String": value if isinstance(value, str) else "",
    }[kind]
    for pipe in filter(None, (p.strip() for p in pipes.split("|"))):
        if pipe == 'parseTime "rfc3339"':
            read = datetime.fromisoformat(read)
        elif pipe == "toRelativeTime":  # Glance's script fills the attribute in the browser
            read = f'data-dynamic-relative-time="{int(read.timestamp())}"'
        else:
            raise AssertionError(f"unknown pipe {pipe!r}")
    return read


def glance_render(template: str, doc: dict[str, Any]) -> str:
    """The template's output for ``doc``: ``if``/``else``/``end`` and value actions."""
    out: list[str] = []
    stack: list[bool] = []  # for each open ``if``: is its current branch shown
    at = 0
    for action in _ACTION.finditer(template):
        if all(stack):
            out.append(template[at : action.start()])
        at = action.end()
        expr = action[1]
        if expr.startswith("if "):
            stack.append(all(stack) and bool(glance_value(expr[3:], doc)))
        elif expr == "else":
            stack[-1] = not stack[-1] and all(stack[:-1])
        elif expr == "end":
            stack.pop()
        elif all(stack):
            out.append(str(glance_value(expr, doc)))
    assert not stack, "an if without its end"
    out.append(template[at:])
    return "".join(out)


def visible(html: str) -> str:
    """The text a person reads: tags out, spaces folded."""
    return " ".join(re.sub(r"<[^>]*>", " ", html).split())


# --- the documents --------------------------------------------------------------------------


async def status_documents(api: Api) -> dict[str, dict[str, Any]]:
    """The card with nothing scheduled, with a job due in an hour, and paused (not running)."""

    async def card() -> dict[str, Any]:
        status, doc = await api.call("GET", "/api/scheduler", auth=False)
        assert status == 200
        return dict(doc)

    empty = await card()
    await api.create(schedule={"delay": "1h"}, workflowName="야간-백업")
    busy = await card()
    await api.call("POST", "/api/scheduler/pause")
    paused = await card()
    assert (empty["nextJob"], busy["isRunning"], paused["isRunning"]) == (None, True, False)
    return {"empty": empty, "busy": busy, "paused": paused}


# --- the tests ------------------------------------------------------------------------------


def test_the_korean_gethomepage_card_is_the_english_one_with_korean_labels() -> None:
    block, listing = homepage_widgets()
    assert {w["type"] for w in (block, listing)} == {"customapi"}
    assert {w["refreshInterval"] for w in (block, listing)} == {30000}
    assert "display" not in block
    assert listing["display"] == "list"
    labels = {m["field"]: m["label"] for w in (block, listing) for m in w["mappings"]}
    assert labels == {
        "isRunning": "상태",
        "pendingJobs": "대기 중",
        "runningJobs": "실행 중",
        "failedJobs": "실패",
        "nextJob.workflowName": "다음 실행",
        "totalJobs": "총 작업",
        "completedJobs": "완료",
    }
    [state] = [m for m in block["mappings"] if m["field"] == "isRunning"]
    assert state["remap"] == [{"value": True, "to": "실행 중"}, {"value": False, "to": "중지됨"}]
    [nxt] = [m for m in listing["mappings"] if m["field"] == "nextJob.workflowName"]
    assert nxt["remap"] == [{"value": None, "to": "없음"}]
    when = nxt["additionalField"]
    assert (when["field"], when["format"], when["locale"]) == (
        "nextJob.scheduledTime",
        "relativeDate",
        "ko",
    )
    assert when.get("numeric", "always") in ("always", "auto")


async def test_every_field_the_korean_cards_read_is_in_the_status_json(api: Api) -> None:
    docs = await status_documents(api)
    mappings = [m for w in homepage_widgets() for m in w["mappings"]]
    mappings += [m["additionalField"] for m in mappings if "additionalField" in m]
    for mapping in mappings:
        assert mapping["field"] in CONTRACT, mapping["field"]
        for doc in docs.values():
            if not (mapping["field"].startswith("nextJob.") and doc["nextJob"] is None):
                assert isinstance(lookup(doc, mapping["field"]), CONTRACT[mapping["field"]])
    reads = re.findall(r'\.JSON\.\w+ "([^"]+)"', glance_template())
    assert reads
    assert set(reads) <= set(CONTRACT), set(reads) - set(CONTRACT)


async def test_the_korean_gethomepage_card_shows_korean_for_true_false_and_null(
    api: Api,
) -> None:
    docs = await status_documents(api)
    now = api.clock.time()
    block, listing = homepage_widgets()
    [state] = [m for m in block["mappings"] if m["field"] == "isRunning"]
    assert shown(state, docs["busy"], now) == "실행 중"
    assert shown(state, docs["paused"], now) == "중지됨"
    [nxt] = [m for m in listing["mappings"] if m["field"] == "nextJob.workflowName"]
    assert shown(nxt, docs["busy"], now) == "야간-백업"
    assert shown(nxt["additionalField"], docs["busy"], now) == "1시간 후"
    assert shown(nxt, docs["empty"], now) == "없음"
    assert shown(nxt["additionalField"], docs["empty"], now) == ""
    counts = {m["label"]: shown(m, docs["busy"], now) for m in block["mappings"][1:]}
    assert counts == {"대기 중": "1", "실행 중": "0", "실패": "0"}


async def test_the_korean_glance_card_renders_running_stopped_and_none(api: Api) -> None:
    docs = await status_documents(api)
    template = glance_template()
    busy = visible(glance_render(template, docs["busy"]))
    assert busy == "실행 중 상태 1 대기 중 0 실행 중 0 실패 다음 실행: 야간-백업"
    due = int(datetime.fromisoformat(docs["busy"]["nextJob"]["scheduledTime"]).timestamp())
    assert f'<span data-dynamic-relative-time="{due}"></span>' in glance_render(
        template, docs["busy"]
    )
    assert due == api.clock.time() + 3600
    paused = visible(glance_render(template, docs["paused"]))
    assert paused.startswith("중지됨 상태 1 대기 중")
    empty = visible(glance_render(template, docs["empty"]))
    assert empty.endswith("다음 실행: 없음")
    assert re.findall(r"[A-Za-z]+", empty + busy + paused) == []


def test_the_glance_model_follows_if_else_and_a_missing_path() -> None:
    template = '{{ if .JSON.Exists "a.b" }}yes {{ .JSON.String "a.b" }}{{ else }}no{{ end }}!'
    assert glance_render(template, {"a": {"b": "x"}}) == "yes x!"
    assert glance_render(template, {"a": None}) == "no!"
    with pytest.raises(AssertionError, match="cannot evaluate"):
        glance_render('{{ .JSON.Float "a" }}', {"a": 1.5})


@pytest.mark.parametrize(
    ("seconds", "numeric", "text"),
    [
        (3600, "always", "1시간 후"),
        (-90, "always", "2분 전"),  # floored, as gethomepage does
        (86400 + 60, "auto", "내일"),
        (86400 + 60, "always", "1일 후"),
        (2 * 86400, "auto", "모레"),
        (0, "auto", "지금"),
        (30 * 86400, "always", "1개월 후"),
        (-7 * 86400, "auto", "지난주"),
    ],
)
def test_the_korean_relative_date_model_matches_intl(seconds: int, numeric: str, text: str) -> None:
    now = 1_795_392_000.0
    assert relative_ko((now + seconds) * 1000, now, numeric) == text
