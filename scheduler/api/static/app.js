// The scheduler's dashboard: plain JavaScript, no build step, no third-party code.
//
// Data comes from the daemon's own API (paths are relative, so the page also works behind a
// reverse proxy under a sub-path). Live updates come from /api/events, read with fetch()
// rather than EventSource because EventSource cannot send the Authorization header a token
// needs; while the stream is down the page polls every 30 s. Nothing from the API is ever
// inserted as HTML: every value goes through textContent.
"use strict";

const POLL_MS = 30000;
const RELATIVE_MS = 15000;
const PAGE_SIZE = 100;
const TOKEN_KEY = "scheduler.apiToken";
const FINISHED = new Set(["completed", "failed", "cancelled"]);

const state = {
  page: 1,
  total: 0,
  jobs: [],
  open: new Set(), // ids of jobs whose details are shown
  detailBodies: new Map(), // their content, kept across re-renders so nothing flickers
  live: false,
  lastEventId: null,
  refreshTimer: null,
  tokenPrompt: null, // the pending prompt, so simultaneous 401s ask once
  tokenDeclined: false,
};

// --- small DOM helpers -------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let sayTimer = null;

// Live refreshes rebuild rows; a keyboard user must not lose their place. Focusable controls
// carry a data-focus-key ("toggle:<id>", "action:<id>:<name>"): after a rebuild the control
// with the same key, or else its job's toggle, gets the focus back.
function keepingFocus(rebuild) {
  const key = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.focusKey : undefined;
  rebuild();
  if (key) focusKey(key);
}

function focusKey(key) {
  if (document.activeElement && document.activeElement.dataset.focusKey === key) return;
  const jobId = key.split(":")[1];
  const target = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)
    || document.querySelector(`[data-focus-key="${CSS.escape(`toggle:${jobId}`)}"]`);
  if (target) target.focus({ preventScroll: true });
}

function say(message, kind) {
  const notice = $("notice");
  notice.textContent = message || "";
  notice.dataset.kind = kind || "info";
  clearTimeout(sayTimer);
  if (kind === "done") sayTimer = setTimeout(() => say(""), 8000);
}

// --- time --------------------------------------------------------------------------------

const ISO = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const rtf = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

// The API renders instants in the job's own zone with its offset; show them as they are.
function localText(iso) {
  const m = ISO.exec(iso || "");
  if (!m) return iso || "–";
  const offset = m[4] === "Z" ? "+00:00" : m[4];
  return `${m[1]} ${m[2]}${m[3] && m[3] !== "00" ? ":" + m[3] : ""} ${offset}`;
}

function relative(iso) {
  const when = Date.parse(iso);
  if (Number.isNaN(when)) return "";
  const seconds = Math.round((when - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  // Units switch before they would round up to the next one ("in 1 hour", not "in 60 minutes").
  if (abs < 45) return seconds > 5 ? "in a few seconds" : "just now";
  if (abs < 45 * 60) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 22 * 3600) return rtf.format(Math.round(seconds / 3600), "hour");
  return rtf.format(Math.round(seconds / 86400), "day");
}

function timeEl(iso, withRelative = true) {
  if (!iso) return h("span", { class: "muted", text: "–" });
  const el = h("time", { datetime: iso, title: iso });
  el.append(localText(iso));
  if (withRelative) el.append(" ", h("span", { class: "rel", "data-at": iso, text: `(${relative(iso)})` }));
  return el;
}

function refreshRelativeTimes() {
  for (const el of document.querySelectorAll(".rel[data-at]")) {
    el.textContent = `(${relative(el.dataset.at)})`;
  }
  const next = $("next-job").querySelector("[data-at]");
  if (next) next.textContent = relative(next.dataset.at);
}

// --- schedules in words ------------------------------------------------------------------

const DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const DAY_ABBR = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };
const RRULE_DAYS = { SU: 0, MO: 1, TU: 2, WE: 3, TH: 4, FR: 5, SA: 6 };
const WEEKDAYS = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];

const pad = (n) => String(n).padStart(2, "0");

function listWords(items) {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

function ordinal(n) {
  if (n < 0) return n === -1 ? "last" : `${ordinal(-n)} from last`;
  const rest = n % 100;
  const suffix = rest >= 11 && rest <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  return `${n}${suffix}`;
}

function cronDay(token) {
  const upper = token.toUpperCase();
  if (upper in DAY_ABBR) return DAY_ABBR[upper];
  const n = Number(token);
  return Number.isInteger(n) && n >= 0 && n <= 7 ? n % 7 : null;
}

function cronDays(field) {
  const parts = [];
  for (const piece of field.split(",")) {
    const range = piece.split("-");
    const from = cronDay(range[0]);
    const to = range.length === 2 ? cronDay(range[1]) : from;
    if (from === null || to === null || range.length > 2) return null;
    parts.push(from === to ? DAY_NAMES[from] : `${DAY_NAMES[from]} to ${DAY_NAMES[to]}`);
  }
  return listWords(parts);
}

const CRON_MACROS = {
  "@yearly": "every year on 1 January at 00:00",
  "@annually": "every year on 1 January at 00:00",
  "@monthly": "on the 1st of every month at 00:00",
  "@weekly": "every Sunday at 00:00",
  "@daily": "every day at 00:00",
  "@midnight": "every day at 00:00",
  "@hourly": "every hour, on the hour",
};

function cronWords(expr) {
  const text = expr.trim();
  if (CRON_MACROS[text.toLowerCase()]) return CRON_MACROS[text.toLowerCase()];
  const f = text.split(/\s+/);
  if (f.length !== 5) return null;
  const [min, hour, dom, mon, dow] = f;
  const num = (s) => /^\d+$/.test(s);
  let time;
  if (num(min) && num(hour)) time = `at ${pad(hour)}:${pad(min)}`;
  else if (num(min) && hour === "*") time = min === "0" ? "every hour, on the hour" : `every hour at :${pad(min)}`;
  else if (min === "*" && hour === "*") time = "every minute";
  else if (/^\*\/\d+$/.test(min) && hour === "*") time = `every ${min.slice(2)} minutes`;
  else if (num(min) && /^\*\/\d+$/.test(hour)) time = `every ${hour.slice(2)} hours at :${pad(min)}`;
  else if (num(min) && /^[\d,-]+$/.test(hour)) time = `at :${pad(min)} past hours ${hour}`;
  else return null;
  let days = "";
  if (dow !== "*") {
    const names = cronDays(dow);
    if (names === null) return null;
    days = `on ${names}`;
  }
  if (dom !== "*") {
    if (!/^[\d,]+$/.test(dom)) return null;
    const list = listWords(dom.split(",").map((d) => ordinal(Number(d))));
    days = days ? `${days} or on the ${list}` : `on the ${list}`;
  }
  if (mon !== "*") {
    if (!/^\d+$/.test(mon) || Number(mon) < 1 || Number(mon) > 12) return null;
    days = `${days || "every day"} in ${MONTHS[Number(mon) - 1]}`;
  }
  if (!days) return time.startsWith("every") ? time : `every day ${time}`;
  return `${days}, ${time}`;
}

function clockOf(hours, minutes) {
  if (!hours.length) return "";
  const mins = minutes.length ? minutes : [0];
  const times = [];
  for (const hh of hours) for (const mm of mins) times.push(`${pad(hh)}:${pad(mm)}`);
  return ` at ${listWords(times)}`;
}

const RRULE_UNITS = { YEARLY: "year", MONTHLY: "month", WEEKLY: "week", DAILY: "day", HOURLY: "hour", MINUTELY: "minute", SECONDLY: "second" };

function rruleWords(text) {
  const line = text.split(/\r?\n/).find((l) => /FREQ=/i.test(l));
  if (!line) return null;
  const parts = {};
  for (const pair of line.replace(/^RRULE:/i, "").split(";")) {
    const [key, value] = pair.split("=");
    if (key && value !== undefined) parts[key.toUpperCase()] = value;
  }
  const unit = RRULE_UNITS[(parts.FREQ || "").toUpperCase()];
  if (!unit) return null;
  const interval = Number(parts.INTERVAL || 1);
  let words = interval > 1 ? `every ${interval} ${unit}s` : `every ${unit}`;
  if (parts.BYDAY) {
    const days = parts.BYDAY.split(",").map((d) => {
      const m = /^([+-]?\d+)?(SU|MO|TU|WE|TH|FR|SA)$/i.exec(d);
      if (!m) return d;
      const name = DAY_NAMES[RRULE_DAYS[m[2].toUpperCase()]];
      return m[1] ? `${ordinal(Number(m[1]))} ${name}` : name;
    });
    words += ` on ${listWords(days)}`;
  }
  if (parts.BYMONTHDAY) words += ` on the ${listWords(parts.BYMONTHDAY.split(",").map((d) => ordinal(Number(d))))}`;
  if (parts.BYMONTH) words += ` in ${listWords(parts.BYMONTH.split(",").map((m) => MONTHS[Number(m) - 1] || m))}`;
  const hours = parts.BYHOUR ? parts.BYHOUR.split(",").map(Number) : [];
  const minutes = parts.BYMINUTE ? parts.BYMINUTE.split(",").map(Number) : [];
  words += clockOf(hours, minutes);
  if (parts.COUNT) words += `, ${parts.COUNT} times`;
  if (parts.UNTIL) words += `, until ${parts.UNTIL}`;
  return words;
}

function repeatWords(r) {
  const interval = r.interval || 1;
  const unit = { daily: "day", weekly: "week", monthly: "month" }[r.freq] || r.freq;
  let words = interval > 1 ? `every ${interval} ${unit}s` : `every ${unit}`;
  if (r.weekdays && r.weekdays.length) {
    words += ` on ${listWords(r.weekdays.map((d) => DAY_NAMES[WEEKDAYS[String(d).toLowerCase()]] || d))}`;
  }
  if (r.monthDays && r.monthDays.length) {
    words += ` on the ${listWords(r.monthDays.map((d) => (d === -1 ? "last day" : ordinal(d))))}`;
  }
  words += ` at ${r.time || "00:00"}`;
  if (r.count) words += `, ${r.count} times`;
  if (r.until) words += `, until ${r.until}`;
  return words;
}

// One sentence for a schedule, in the job's own zone (the raw rule is shown beside it).
function scheduleWords(job) {
  const s = job.schedule || {};
  if (s.cron) return cronWords(s.cron) || `cron rule ${s.cron}`;
  if (s.rrule) return rruleWords(s.rrule) || "an RFC 5545 rule";
  if (s.repeat) return repeatWords(s.repeat);
  if (s.every) {
    let words = `every ${s.every}`;
    if (s.start) words += `, from ${s.start}`;
    if (s.end) words += `, until ${s.end}`;
    return words;
  }
  if (s.at) return `once, at ${s.at}`;
  if (s.delay) return `once, ${s.delay} after it was created`;
  return "once, as soon as possible";
}

function scheduleRule(job) {
  const s = job.schedule || {};
  return s.cron || s.rrule || null;
}

// --- the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(method, path, { retry = true } = {}) {
  // Changes go out as JSON (with an empty body): the daemon refuses any other media type on
  // them, so that no page of another site can send one through a plain HTML form.
  const json = method === "GET" ? {} : { "Content-Type": "application/json" };
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: { Accept: "application/json", ...json, ...authHeaders() },
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (err) {
    throw new ApiError(0, "the scheduler did not answer");
  }
  if (resp.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (retry && (await askForToken())) return api(method, path, { retry: false });
    throw new ApiError(401, "this needs the API token");
  }
  if (resp.status === 204) return null;
  let body = null;
  try {
    body = await resp.json();
  } catch (err) {
    body = null;
  }
  if (!resp.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, message);
  }
  return body;
}

// Ask for the token once: concurrent 401s share one prompt, and "Not now" is remembered
// until the user asks to try again.
function askForToken(force = false) {
  if (state.tokenDeclined && !force) return Promise.resolve(false);
  if (state.tokenPrompt) return state.tokenPrompt;
  const dialog = $("token-dialog");
  const input = $("token-input");
  state.tokenPrompt = new Promise((resolve) => {
    input.value = "";
    dialog.addEventListener("close", () => {
      const token = input.value.trim();
      input.value = "";
      state.tokenPrompt = null;
      if (dialog.returnValue === "ok" && token) {
        sessionStorage.setItem(TOKEN_KEY, token);
        state.tokenDeclined = false;
        resolve(true);
        restartEvents();
      } else {
        state.tokenDeclined = true;
        resolve(false);
      }
    }, { once: true });
    dialog.showModal();
    input.focus();
  });
  return state.tokenPrompt;
}

// --- the status card ---------------------------------------------------------------------

function cardState(status) {
  if (!status) return ["down", "✕", "Unreachable: the scheduler did not answer"];
  if (status.state === "paused") return ["warn", "⏸", "Paused: jobs are accepted but not started"];
  if (!status.isRunning) {
    const phase = status.state === "starting" ? "Starting" : "Stopped";
    return ["down", "✕", `${phase}: jobs are not being started`];
  }
  if (status.failedJobs > 0) {
    const n = status.failedJobs;
    return ["warn", "⚠", `Running, with ${n} failed job${n === 1 ? "" : "s"}`];
  }
  return ["ok", "✓", "Running"];
}

function renderCard(status) {
  const card = $("card");
  const [kind, icon, text] = cardState(status);
  card.dataset.state = kind;
  if (status) card.dataset.failed = status.failedJobs > 0 ? "yes" : "no";
  $("state-icon").textContent = icon;
  $("state-text").textContent = text;
  if (status) {
    $("count-total").textContent = status.totalJobs;
    $("count-pending").textContent = status.pendingJobs;
    $("count-running").textContent = status.runningJobs;
    $("count-completed").textContent = status.completedJobs;
    $("count-failed").textContent = status.failedJobs;
    const next = $("next-job");
    next.replaceChildren();
    const job = status.nextJob;
    if (!job) {
      next.textContent = "none";
    } else {
      next.append(h("strong", { text: job.workflowName }), " ",
        h("span", { class: "rel-next", "data-at": job.scheduledTime, text: relative(job.scheduledTime) }),
        " ", h("time", { class: "muted", datetime: job.scheduledTime, text: `(${localText(job.scheduledTime)})` }));
    }
    $("card-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } else {
    $("card-updated").textContent = "Showing the last numbers received; retrying every 30 s.";
  }
}

async function refreshStatus() {
  try {
    renderCard(await api("GET", "api/scheduler"));
  } catch (err) {
    renderCard(null);
  }
}

// --- the job table -----------------------------------------------------------------------

function filters() {
  return {
    status: $("filter-status").value,
    type: $("filter-type").value,
    search: $("filter-search").value.trim().toLowerCase(),
  };
}

function matchesSearch(job, search) {
  if (!search) return true;
  return [job.workflowName, job.workflowId, job.id, job.name, job.task]
    .some((v) => v && String(v).toLowerCase().includes(search));
}

async function refreshJobs() {
  const f = filters();
  const query = new URLSearchParams({ page: String(state.page), limit: String(PAGE_SIZE) });
  if (f.status) query.set("status", f.status);
  if (f.type) query.set("type", f.type);
  let body;
  try {
    body = await api("GET", `api/jobs?${query}`);
  } catch (err) {
    if (err.status === 401) say("The job list needs the API token.", "warn");
    else say(`Could not load the jobs: ${err.message}. Retrying every 30 s.`, "error");
    showTokenButton(err.status === 401);
    return;
  }
  showTokenButton(false);
  if ($("notice").dataset.kind !== "done") say("");
  state.jobs = (body && body.items) || [];
  state.total = (body && body.total) || 0;
  const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
  if (state.page > pages) {
    state.page = pages;
    return refreshJobs();
  }
  renderJobs();
  await Promise.all([...state.open].map((id) => loadDetails(id)));
}

function showTokenButton(show) {
  let button = $("token-button");
  if (!show) {
    if (button) button.remove();
    return;
  }
  if (button) return;
  button = h("button", { type: "button", id: "token-button", text: "Enter the API token",
    onclick: async () => { if (await askForToken(true)) refreshAll(); } });
  $("notice").after(button);
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: status });
}

function renderJobs() {
  keepingFocus(renderRows);
}

function renderRows() {
  const f = filters();
  const rows = $("job-rows");
  const shown = state.jobs.filter((job) => matchesSearch(job, f.search));
  rows.replaceChildren();
  if (!shown.length) {
    const text = state.total === 0 && !f.status && !f.type
      ? "No jobs yet. Jobs created over the API, in config.toml or in code appear here."
      : "No jobs match these filters.";
    rows.append(h("tr", { class: "empty" }, h("td", { colspan: 7, text })));
  }
  for (const job of shown) rows.append(...jobRows(job));
  const first = state.total ? (state.page - 1) * PAGE_SIZE + 1 : 0;
  const last = Math.min(state.total, state.page * PAGE_SIZE);
  const searchNote = f.search ? `, ${shown.length} matching the search on this page` : "";
  $("page-info").textContent = `Jobs ${first}–${last} of ${state.total}${searchNote}`;
  $("job-caption").textContent = `Jobs ${first} to ${last} of ${state.total}`;
  $("page-prev").disabled = state.page <= 1;
  $("page-next").disabled = last >= state.total;
}

function jobRows(job) {
  const open = state.open.has(job.id);
  const detailsId = `details-${job.id}`;
  const toggle = h("button", {
    type: "button", class: "toggle", "aria-expanded": open ? "true" : "false",
    "aria-controls": detailsId, text: open ? "Hide" : "Details", "data-focus-key": `toggle:${job.id}`,
    "aria-label": `${open ? "Hide" : "Show"} details of ${job.workflowName}`,
    onclick: () => toggleDetails(job.id),
  });
  const row = h("tr", { class: "job", "data-job-id": job.id },
    h("th", { scope: "row", "data-label": "Workflow" },
      h("span", { class: "name", text: job.workflowName }),
      h("span", { class: "id", text: job.id })),
    h("td", { "data-label": "Type", text: job.type }),
    h("td", { "data-label": "Status" }, statusBadge(job.status)),
    h("td", { "data-label": "Next run" }, timeEl(job.scheduledTime)),
    h("td", { "data-label": "Last run" }, timeEl(job.executedAt)),
    h("td", { class: "num", "data-label": "Runs", text: job.runs }),
    h("td", { class: "actions" }, toggle));
  const details = h("tr", { class: "details", id: detailsId, hidden: !open },
    h("td", { colspan: 7 }, open ? detailBody(job.id) : null));
  return [row, details];
}

function detailBody(id) {
  let body = state.detailBodies.get(id);
  if (!body) {
    body = h("div", { class: "details-body" }, "Loading…");
    state.detailBodies.set(id, body);
  }
  return body;
}

async function toggleDetails(id) {
  if (state.open.has(id)) {
    state.open.delete(id);
    state.detailBodies.delete(id);
  } else {
    state.open.add(id);
  }
  renderJobs();
  if (state.open.has(id)) await loadDetails(id);
}

// --- job details -------------------------------------------------------------------------

async function loadDetails(id) {
  const holder = state.detailBodies.get(id);
  const job = state.jobs.find((j) => j.id === id);
  if (!holder || !job) return;
  let runs = [];
  let next = [];
  const problems = [];
  await Promise.all([
    api("GET", `api/jobs/${encodeURIComponent(id)}/runs`)
      .then((b) => { runs = (b && b.items) || []; })
      .catch((err) => problems.push(`run history: ${err.message}`)),
    FINISHED.has(job.status) ? null : api("GET", `api/jobs/${encodeURIComponent(id)}/next?n=5`)
      .then((b) => { next = (b && b.items) || []; })
      .catch((err) => problems.push(`next runs: ${err.message}`)),
  ]);
  const content = detailsContent(job, runs, next, problems).filter(Boolean);
  keepingFocus(() => holder.replaceChildren(...content));
}

function detailsContent(job, runs, next, problems) {
  const rule = scheduleRule(job);
  const facts = h("dl", { class: "facts" },
    h("dt", { text: "Schedule" }),
    h("dd", {}, scheduleWords(job), rule ? [" ", h("code", { text: rule })] : null,
      h("span", { class: "muted", text: ` (${job.timezone})` })),
    h("dt", { text: "Task" }), h("dd", { text: job.task }),
    h("dt", { text: "Priority" }), h("dd", { text: job.priority }),
    h("dt", { text: "Attempt" }), h("dd", { text: `${job.attempt} (up to ${job.maxRetries} retries)` }),
    h("dt", { text: "Created" }), h("dd", {}, timeEl(job.createdAt)),
    job.pausedUntil ? [h("dt", { text: "Paused until" }), h("dd", {}, timeEl(job.pausedUntil))] : null,
    job.error ? [h("dt", { text: "Last error" }), h("dd", { class: "error", text: job.error })] : null);
  return [
    h("div", { class: "details-grid" },
      h("section", { "aria-label": `About ${job.workflowName}` }, facts, actionsFor(job)),
      h("section", { "aria-label": "Next runs" }, h("h3", { text: "Next runs" }), nextList(next, job))),
    h("section", { "aria-label": "Run history" }, h("h3", { text: "Run history" }), runTable(runs)),
    problems.length ? h("p", { class: "error", text: `Could not load the ${problems.join("; ")}` }) : null,
  ];
}

function nextList(items, job) {
  if (!items.length) {
    const why = FINISHED.has(job.status) ? "None: this job has finished." : "None scheduled.";
    return h("p", { class: "muted", text: why });
  }
  return h("ol", { class: "next-runs" }, items.map((item) => h("li", {}, timeEl(item.local))));
}

function runTable(runs) {
  if (!runs.length) return h("p", { class: "muted", text: "No runs yet." });
  return h("table", { class: "runs" },
    h("thead", {}, h("tr", {},
      ["Scheduled", "Started", "Outcome", "Duration", "Attempt", "Error or reason"]
        .map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, runs.map((run) => h("tr", {},
      h("td", { "data-label": "Scheduled" }, timeEl(run.scheduledTime, false)),
      h("td", { "data-label": "Started" }, timeEl(run.startedAt, false)),
      h("td", { "data-label": "Outcome" }, h("span", { class: `badge outcome-${run.outcome}`, text: run.outcome.replace("_", " ") })),
      h("td", { "data-label": "Duration", text: duration(run.duration) }),
      h("td", { "data-label": "Attempt", text: run.attempt }),
      h("td", { "data-label": "Error or reason", class: run.error ? "error" : "", text: run.error || run.reason || "" })))));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 120 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// --- actions -----------------------------------------------------------------------------

const ACTIONS = [
  { name: "run", label: "Run now", when: (s) => s === "pending" || s === "running", done: "Run queued" },
  { name: "pause", label: "Pause", when: (s) => s === "pending" || s === "running", done: "Paused" },
  { name: "resume", label: "Resume", when: (s) => s === "paused", done: "Resumed" },
  { name: "cancel", label: "Cancel", when: (s) => !FINISHED.has(s), done: "Cancelled" },
  { name: "retry", label: "Retry", when: (s) => s === "failed", done: "Queued again" },
  { name: "delete", label: "Delete", when: () => true, done: "Deleted", danger: true },
];

function actionsFor(job) {
  const buttons = ACTIONS.filter((a) => a.when(job.status)).map((a) => h("button", {
    type: "button", class: a.danger ? "danger" : "", "data-action": a.name, text: a.label,
    "data-focus-key": `action:${job.id}:${a.name}`,
    "aria-label": `${a.label}: ${job.workflowName}`,
    onclick: (ev) => act(job, a, ev.currentTarget),
  }));
  return h("div", { class: "action-bar", role: "group", "aria-label": `Actions for ${job.workflowName}` }, buttons);
}

async function act(job, action, button) {
  if (action.name === "delete" && !window.confirm(`Delete the job ${job.workflowName}? Its history goes with it.`)) return;
  const key = button.dataset.focusKey; // a disabled button loses the focus: note where it was
  button.disabled = true;
  try {
    const path = `api/jobs/${encodeURIComponent(job.id)}`;
    await api(action.name === "delete" ? "DELETE" : "POST", action.name === "delete" ? path : `${path}/${action.name}`);
    if (action.name === "delete") {
      state.open.delete(job.id);
      state.detailBodies.delete(job.id);
    }
    say(`${action.done}: ${job.workflowName}.`, "done");
  } catch (err) {
    say(`${action.label} failed for ${job.workflowName}: ${err.message}`, "error");
  } finally {
    button.disabled = false;
  }
  await refreshAll();
  if (!document.activeElement || document.activeElement === document.body) focusKey(key);
}

// --- live events -------------------------------------------------------------------------

function setConnection(mode, text) {
  $("connection").dataset.mode = mode;
  $("connection-text").textContent = text;
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refreshAll();
  }, 500);
}

let events = null; // the AbortController of the open stream

function restartEvents() {
  if (events) events.abort();
  events = null;
  connectEvents(0);
}

async function connectEvents(attempt) {
  const controller = new AbortController();
  events = controller;
  try {
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (state.lastEventId !== null) headers["Last-Event-ID"] = state.lastEventId;
    const resp = await fetch("api/events", { headers, signal: controller.signal, cache: "no-store" });
    if (!resp.ok || !resp.body) throw new ApiError(resp.status, `HTTP ${resp.status}`);
    state.live = true;
    setConnection("live", "Live");
    scheduleRefresh(); // catch up on what happened while the stream was down
    await readStream(resp.body);
    attempt = 0;
  } catch (err) {
    if (controller.signal.aborted) return;
  }
  state.live = false;
  if (events !== controller) return;
  setConnection("polling", "Live updates unavailable; refreshing every 30 s");
  refreshStatus(); // a dropped stream often means a stopped daemon: show it now
  const delay = Math.min(POLL_MS, 2000 * 2 ** attempt);
  setTimeout(() => { if (events === controller) connectEvents(attempt + 1); }, delay);
}

async function readStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (event.data.length) onEvent(event.type, event.data.join("\n"));
        event = { type: "message", data: [] };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = val;
        else if (field === "data") event.data.push(val);
        else if (field === "id") state.lastEventId = val;
      }
    }
  }
}

function onEvent(type) {
  if (type === "stream-overflow") return; // the stream ends next; reconnecting resumes it
  scheduleRefresh();
}

// --- wiring ------------------------------------------------------------------------------

async function refreshAll() {
  await Promise.all([refreshStatus(), refreshJobs()]);
}

function init() {
  $("filters").addEventListener("submit", (ev) => ev.preventDefault());
  $("filter-status").addEventListener("change", () => { state.page = 1; refreshJobs(); });
  $("filter-type").addEventListener("change", () => { state.page = 1; refreshJobs(); });
  $("filter-search").addEventListener("input", () => renderJobs());
  $("page-prev").addEventListener("click", () => { state.page -= 1; refreshJobs(); });
  $("page-next").addEventListener("click", () => { state.page += 1; refreshJobs(); });
  refreshAll();
  connectEvents(0);
  setInterval(() => (state.live ? refreshStatus() : refreshAll()), POLL_MS);
  setInterval(refreshRelativeTimes, RELATIVE_MS);
}

document.addEventListener("DOMContentLoaded", init);
