// The dashboard's languages: one message catalogue per language (en.json, ko.json, beside this
// file), the choice of language, Intl formatting, and schedules in words.
//
// Every word the page shows is looked up with t(...) on a literal key or named by a data-i18n attribute
// in index.html (greppable: tests/api/test_dashboard_i18n.py checks both catalogues against the
// keys used). A value may hold named placeholders ("{count}") and, where a language needs
// plurals, be an object keyed by an exact count ("=1") or an Intl.PluralRules category.
//
// Schedules are described once (describeSchedule: a plain object) and rendered by one function
// with the catalogue's templates and Intl's weekday and month names, in either language.
"use strict";

const LANGUAGES = ["en", "ko"];
const LANGUAGE_KEY = "scheduler.language";

const i18n = { lang: "en", messages: {}, locale: "en" };

// The first of the browser's preferred languages we speak ("ko-KR" counts as "ko"), else English.
function preferredLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(LANGUAGE_KEY);
  } catch (err) {
    stored = null; // storage disabled: follow the browser
  }
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

function rememberLanguage(lang) {
  try {
    localStorage.setItem(LANGUAGE_KEY, lang);
  } catch (err) {
    // storage disabled: the choice lasts for this page only
  }
}

// Loads a catalogue (static/i18n/<lang>.json); English when that one cannot be had.
async function loadLanguage(lang) {
  const wanted = LANGUAGES.includes(lang) ? lang : "en";
  try {
    const resp = await fetch(`static/i18n/${wanted}.json`, { cache: "no-cache" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    useCatalogue(wanted, await resp.json());
  } catch (err) {
    if (wanted !== "en") return loadLanguage("en");
    // index.html still holds the English words; the scripts' words fall back to their keys
  }
  return i18n.lang;
}

// A catalogue's "meta.locale" is the locale Intl formats its numbers, lists, plurals and names
// in; "meta.dateLocale" the one it writes instants in (English pages keep ISO 8601 order,
// "2026-11-24 05:00", which is how Intl writes dates for "sv-SE").
function useCatalogue(lang, messages) {
  i18n.lang = lang;
  i18n.messages = messages;
  i18n.locale = lang; // t() below reads its plural rules in this
  i18n.locale = t("meta.locale");
  document.documentElement.lang = lang;
}

function formatNumber(n) {
  return new Intl.NumberFormat(i18n.locale).format(n);
}

function pick(value, params) {
  if (typeof value !== "object" || value === null) return value;
  const n = params.ordinal !== undefined ? params.ordinal : params.count;
  if (`=${n}` in value) return value[`=${n}`];
  const type = params.ordinal !== undefined ? "ordinal" : "cardinal";
  const category = new Intl.PluralRules(i18n.locale, { type }).select(Number(n));
  return value[category] !== undefined ? value[category] : value.other;
}

// The message of `key` with its {placeholders} filled; numbers get the locale's grouping.
function t(key, params = {}) {
  const value = pick(i18n.messages[key], params);
  if (typeof value !== "string") return key;
  return value.replace(/\{(\w+)\}/g, (whole, name) => {
    const v = params[name];
    if (v === undefined || v === null) return whole;
    return typeof v === "number" ? formatNumber(v) : String(v);
  });
}

// Fills the elements of index.html that name their words: data-i18n (text) and
// data-i18n-<attribute> (aria-label, placeholder, title).
function translatePage(root = document) {
  for (const el of root.querySelectorAll("*")) {
    for (const attr of el.getAttributeNames()) {
      if (!attr.startsWith("data-i18n")) continue;
      const key = el.getAttribute(attr);
      const text = t(key);
      if (text === key) continue; // no catalogue could be loaded: the page's English stays
      if (attr === "data-i18n") el.textContent = text;
      else el.setAttribute(attr.slice("data-i18n-".length), text);
    }
  }
}

// --- Intl names and lists ----------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

function weekdayName(day) {
  const style = t("schedule.weekdayStyle");
  // 2023-01-01 was a Sunday: day 0.
  return new Intl.DateTimeFormat(i18n.locale, { weekday: style, timeZone: "UTC" })
    .format(Date.UTC(2023, 0, 1 + day));
}

function monthName(month) {
  return new Intl.DateTimeFormat(i18n.locale, { month: "long", timeZone: "UTC" })
    .format(Date.UTC(2023, month - 1, 1));
}

function listOf(items) {
  const separator = t("schedule.listSeparator");
  if (separator) return items.join(separator);
  return new Intl.ListFormat(i18n.locale, { type: "conjunction" }).format(items.map(String));
}

const monthDay = (d) => (d === -1 ? t("schedule.lastDay") : t("schedule.monthDay", { ordinal: d }));

function nthOf(n) {
  if (n === -1) return t("schedule.last");
  if (n < 0) return t("schedule.nthFromLast", { nth: nthOf(-n) });
  return t("schedule.nth", { ordinal: n });
}

// --- schedules: parsed once into a descriptor --------------------------------------------

const DAY_ABBR = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };
const RRULE_DAYS = { SU: 0, MO: 1, TU: 2, WE: 3, TH: 4, FR: 5, SA: 6 };
const WEEKDAYS = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const CRON_MACROS = {
  "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
};
const RRULE_UNITS = { YEARLY: "year", MONTHLY: "month", WEEKLY: "week", DAILY: "day", HOURLY: "hour", MINUTELY: "minute", SECONDLY: "second" };
const REPEAT_UNITS = { daily: "day", weekly: "week", monthly: "month" };

function cronDay(token) {
  const upper = token.toUpperCase();
  if (upper in DAY_ABBR) return DAY_ABBR[upper];
  const n = Number(token);
  return Number.isInteger(n) && n >= 0 && n <= 7 ? n % 7 : null;
}

// "1-5,SAT" as [{ from: 1, to: 5 }, { from: 6, to: 6 }], or null.
function cronDays(field) {
  const ranges = [];
  for (const piece of field.split(",")) {
    const range = piece.split("-");
    const from = cronDay(range[0]);
    const to = range.length === 2 ? cronDay(range[1]) : from;
    if (from === null || to === null || range.length > 2) return null;
    ranges.push({ from, to });
  }
  return ranges;
}

function cronClock(min, hour) {
  const num = (s) => /^\d+$/.test(s);
  const step = (s) => /^\*\/\d+$/.test(s);
  if (num(min) && num(hour)) return { kind: "at", time: `${pad(hour)}:${pad(min)}` };
  if (num(min) && hour === "*") return min === "0" ? { kind: "hourly" } : { kind: "hourlyAt", minute: pad(min) };
  if (min === "*" && hour === "*") return { kind: "minutes", count: 1 };
  if (step(min) && hour === "*") return { kind: "minutes", count: Number(min.slice(2)) };
  if (num(min) && step(hour)) return { kind: "hours", count: Number(hour.slice(2)), minute: pad(min) };
  if (num(min) && /^[\d,-]+$/.test(hour)) return { kind: "pastHours", minute: pad(min), hours: hour };
  return null;
}

function describeCron(expr) {
  const text = expr.trim();
  const f = (CRON_MACROS[text.toLowerCase()] || text).split(/\s+/);
  const raw = { form: "raw", rule: text };
  if (f.length !== 5) return raw;
  const [min, hour, dom, mon, dow] = f;
  const clock = cronClock(min, hour);
  const weekdays = dow === "*" ? [] : cronDays(dow);
  const monthDays = dom === "*" ? [] : (/^[\d,]+$/.test(dom) ? dom.split(",").map(Number) : null);
  const month = mon === "*" ? null : Number(mon);
  if (!clock || !weekdays || !monthDays) return raw;
  if (month !== null && !(/^\d+$/.test(mon) && month >= 1 && month <= 12)) return raw;
  return { form: "cron", clock, weekdays, monthDays, month };
}

function rruleParts(text) {
  const line = text.split(/\r?\n/).find((l) => /FREQ=/i.test(l));
  if (!line) return null;
  const parts = {};
  for (const pair of line.replace(/^RRULE:/i, "").split(";")) {
    const [key, value] = pair.split("=");
    if (key && value !== undefined) parts[key.toUpperCase()] = value;
  }
  return parts;
}

function describeRrule(text) {
  const parts = rruleParts(text);
  const unit = parts && RRULE_UNITS[(parts.FREQ || "").toUpperCase()];
  if (!unit) return { form: "rruleRaw" };
  const list = (v) => (v ? v.split(",") : []);
  const days = list(parts.BYDAY).map((d) => {
    const m = /^([+-]?\d+)?(SU|MO|TU|WE|TH|FR|SA)$/i.exec(d);
    return m ? { day: RRULE_DAYS[m[2].toUpperCase()], nth: m[1] ? Number(m[1]) : null } : { raw: d };
  });
  const hours = list(parts.BYHOUR).map(Number);
  const minutes = parts.BYMINUTE ? list(parts.BYMINUTE).map(Number) : [0];
  const times = [];
  for (const hh of hours) for (const mm of minutes) times.push(`${pad(hh)}:${pad(mm)}`);
  return {
    form: "rule", unit, interval: Number(parts.INTERVAL || 1), days,
    monthDays: list(parts.BYMONTHDAY).map(Number), months: list(parts.BYMONTH).map(Number),
    times, count: parts.COUNT ? Number(parts.COUNT) : null, until: parts.UNTIL || null,
  };
}

function describeRepeat(r) {
  return {
    form: "rule", unit: REPEAT_UNITS[r.freq] || r.freq, interval: r.interval || 1,
    days: (r.weekdays || []).map((d) => {
      const day = WEEKDAYS[String(d).toLowerCase()];
      return day === undefined ? { raw: d } : { day, nth: null };
    }),
    monthDays: r.monthDays || [], months: [], times: [r.time || "00:00"],
    count: r.count || null, until: r.until || null,
  };
}

// A duration as the API writes it ("1h30m", "90s", or seconds) as its parts, [{ n: "1", unit:
// "h" }, ...]; null when it is written some other way (then it is shown as written).
function durationParts(value) {
  if (typeof value === "number") return [{ n: String(value), unit: "s" }];
  const text = String(value).trim().toLowerCase();
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/.test(text)) return null;
  return [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)].map((m) => ({ n: m[1], unit: m[2] }));
}

// One plain description of a job's schedule, whatever way it was written.
function describeSchedule(s) {
  if (s.cron) return describeCron(s.cron);
  if (s.rrule) return describeRrule(s.rrule);
  if (s.repeat) return describeRepeat(s.repeat);
  if (s.every) {
    return { form: "every", every: durationParts(s.every) || s.every, start: s.start || null, end: s.end || null };
  }
  if (s.at) return { form: "at", at: s.at };
  if (s.delay) return { form: "delay", delay: durationParts(s.delay) || s.delay };
  return { form: "asap" };
}

// --- schedules: rendered in the page's language ------------------------------------------

const EVERY = {
  year: (count) => t("schedule.every.year", { count }),
  month: (count) => t("schedule.every.month", { count }),
  week: (count) => t("schedule.every.week", { count }),
  day: (count) => t("schedule.every.day", { count }),
  hour: (count) => t("schedule.every.hour", { count }),
  minute: (count) => t("schedule.every.minute", { count }),
  second: (count) => t("schedule.every.second", { count }),
};

const CLOCKS = {
  at: (c) => t("schedule.cron.at", { time: c.time }),
  hourly: () => t("schedule.cron.hourly"),
  hourlyAt: (c) => t("schedule.cron.hourlyAt", { minute: c.minute }),
  minutes: (c) => t("schedule.cron.minutes", { count: c.count }),
  hours: (c) => t("schedule.cron.hours", { count: c.count, minute: c.minute }),
  pastHours: (c) => t("schedule.cron.pastHours", { minute: c.minute, hours: c.hours }),
};

function cronDayWords(d) {
  const days = listOf(d.weekdays.map((r) => (r.from === r.to ? weekdayName(r.from)
    : t("schedule.cron.dayRange", { from: weekdayName(r.from), to: weekdayName(r.to) }))));
  const monthDays = listOf(d.monthDays.map(monthDay));
  const month = d.month === null ? null : monthName(d.month);
  const w = d.weekdays.length > 0;
  const m = d.monthDays.length > 0;
  if (month === null) {
    if (w && m) return t("schedule.cron.weekdaysOrMonthDays", { days, monthDays });
    if (w) return t("schedule.cron.weekdays", { days });
    return m ? t("schedule.cron.monthDays", { monthDays }) : null;
  }
  if (w && m) return t("schedule.cron.weekdaysOrMonthDaysIn", { days, monthDays, month });
  if (w) return t("schedule.cron.weekdaysIn", { days, month });
  if (m) return t("schedule.cron.monthDaysIn", { monthDays, month });
  return t("schedule.cron.everyDayIn", { month });
}

function cronSentence(d) {
  const clock = CLOCKS[d.clock.kind](d.clock);
  const days = cronDayWords(d);
  if (days) return t("schedule.cron.daysAndClock", { days, clock });
  return d.clock.kind === "at" ? t("schedule.cron.everyDay", { clock }) : clock;
}

function ruleDay(d) {
  if (d.raw !== undefined) return d.raw;
  if (d.nth === null) return weekdayName(d.day);
  return t("schedule.nthWeekday", { nth: nthOf(d.nth), day: weekdayName(d.day) });
}

function ruleSentence(d) {
  const every = EVERY[d.unit] ? EVERY[d.unit](d.interval) : t("schedule.every.unit", { count: d.interval, unit: d.unit });
  const months = d.months.map((m) => (m >= 1 && m <= 12 ? monthName(m) : m));
  return t("schedule.rule", {
    every,
    days: d.days.length ? t("schedule.rule.days", { days: listOf(d.days.map(ruleDay)) }) : "",
    monthDays: d.monthDays.length ? t("schedule.rule.monthDays", { monthDays: listOf(d.monthDays.map(monthDay)) }) : "",
    months: months.length ? t("schedule.rule.months", { months: listOf(months) }) : "",
    times: d.times.length ? t("schedule.rule.times", { times: listOf(d.times) }) : "",
    count: d.count ? t("schedule.rule.count", { count: d.count }) : "",
    until: d.until ? t("schedule.rule.until", { until: d.until }) : "",
  });
}

const DURATION_UNITS = {
  ms: (n) => t("duration.ms", { n }), s: (n) => t("duration.s", { n }), m: (n) => t("duration.m", { n }),
  h: (n) => t("duration.h", { n }), d: (n) => t("duration.d", { n }), w: (n) => t("duration.w", { n }),
};

function durationWords(parts) {
  if (!Array.isArray(parts)) return parts;
  return parts.map((p) => DURATION_UNITS[p.unit](p.n)).join(t("duration.joiner"));
}

const SENTENCES = {
  cron: cronSentence,
  rule: ruleSentence,
  raw: (d) => t("schedule.cronRule", { rule: d.rule }),
  rruleRaw: () => t("schedule.rruleRule"),
  every: (d) => t("schedule.interval", {
    every: durationWords(d.every),
    start: d.start ? t("schedule.interval.start", { start: d.start }) : "",
    end: d.end ? t("schedule.interval.end", { end: d.end }) : "",
  }),
  at: (d) => t("schedule.at", { at: d.at }),
  delay: (d) => t("schedule.delay", { delay: durationWords(d.delay) }),
  asap: () => t("schedule.asap"),
};

// One sentence for a schedule, in the job's own zone (the raw rule is shown beside it).
function scheduleWords(job) {
  const d = describeSchedule(job.schedule || {});
  return SENTENCES[d.form](d);
}
