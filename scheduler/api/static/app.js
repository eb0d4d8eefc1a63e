// The scheduler's dashboard: plain JavaScript, no build step. The charts (charts.js) are drawn
// by uPlot, shipped in static/vendor/ (no CDN: the page works offline).
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
const CHARTS_MS = 60000; // the charts are asked for again at least this often
const CHARTS_AFTER_EVENT_MS = 15000; // and after events, at most this often

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

// The API renders instants in the job's own zone with its offset; show that wall time, written
// the language's way by Intl, with the offset after it ("2026-11-24 05:00 +09:00" in English,
// "2026. 11. 24. 05:00 +09:00" in Korean). The wall time is formatted as if in UTC, so the
// browser's own zone never shifts it.
function localText(iso) {
  const m = ISO.exec(iso || "");
  if (!m) return iso || t("common.none");
  const [year, month, day] = m[1].split("-").map(Number);
  const [hour, minute] = m[2].split(":").map(Number);
  const second = m[3] ? Number(m[3]) : 0;
  const options = {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: second ? "2-digit" : undefined, hourCycle: "h23", timeZone: "UTC",
  };
  const wall = new Intl.DateTimeFormat(t("meta.dateLocale"), options)
    .format(Date.UTC(year, month - 1, day, hour, minute, second));
  return `${wall} ${m[4] === "Z" ? "+00:00" : m[4]}`;
}

function relative(iso) {
  const when = Date.parse(iso);
  if (Number.isNaN(when)) return "";
  const seconds = Math.round((when - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  // Units switch before they would round up to the next one ("in 1 hour", not "in 60 minutes").
  if (abs < 45) return seconds > 5 ? t("time.inSeconds") : t("time.justNow");
  const rtf = new Intl.RelativeTimeFormat(i18n.locale, { numeric: "auto" });
  if (abs < 45 * 60) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 22 * 3600) return rtf.format(Math.round(seconds / 3600), "hour");
  return rtf.format(Math.round(seconds / 86400), "day");
}

// The browser's clock time with its offset ("13:05:09 +09:00"), as the API writes zones.
function clockText(date) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return `${time} ${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function timeEl(iso, withRelative = true) {
  if (!iso) return h("span", { class: "muted", text: t("common.none") });
  const el = h("time", { datetime: iso, title: iso });
  el.append(localText(iso));
  if (withRelative) el.append(" ", h("span", { class: "rel", "data-at": iso, text: t("time.relative", { when: relative(iso) }) }));
  return el;
}

function refreshRelativeTimes() {
  for (const el of document.querySelectorAll(".rel[data-at]")) {
    el.textContent = t("time.relative", { when: relative(el.dataset.at) });
  }
  const next = $("next-job").querySelector("[data-at]");
  if (next) next.textContent = relative(next.dataset.at);
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
    throw new ApiError(0, t("api.noAnswer"));
  }
  if (resp.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (retry && (await askForToken())) return api(method, path, { retry: false });
    throw new ApiError(401, t("api.needsToken"));
  }
  if (resp.status === 204) return null;
  let body = null;
  try {
    body = await resp.json();
  } catch (err) {
    body = null;
  }
  if (!resp.ok) {
    const message = body && body.error && body.error.message ? body.error.message : t("api.http", { status: String(resp.status) });
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
  if (!status) return ["down", "✕", t("card.unreachable")];
  if (status.state === "paused") return ["warn", "⏸", t("card.paused")];
  if (!status.isRunning) {
    return ["down", "✕", status.state === "starting" ? t("card.starting") : t("card.stopped")];
  }
  if (status.failedJobs > 0) return ["warn", "⚠", t("card.runningWithFailed", { count: status.failedJobs })];
  return ["ok", "✓", t("card.running")];
}

function renderCard(status) {
  const card = $("card");
  const [kind, icon, text] = cardState(status);
  card.dataset.state = kind;
  if (status) card.dataset.failed = status.failedJobs > 0 ? "yes" : "no";
  $("state-icon").textContent = icon;
  $("state-text").textContent = text;
  if (status) {
    $("count-total").textContent = formatNumber(status.totalJobs);
    $("count-pending").textContent = formatNumber(status.pendingJobs);
    $("count-running").textContent = formatNumber(status.runningJobs);
    $("count-completed").textContent = formatNumber(status.completedJobs);
    $("count-failed").textContent = formatNumber(status.failedJobs);
    const next = $("next-job");
    next.replaceChildren();
    const job = status.nextJob;
    if (!job) {
      next.textContent = t("card.noNextJob");
    } else {
      next.append(h("strong", { text: job.workflowName }), " ",
        h("span", { class: "rel-next", "data-at": job.scheduledTime, text: relative(job.scheduledTime) }),
        " ", h("time", { class: "muted", datetime: job.scheduledTime, text: t("time.relative", { when: localText(job.scheduledTime) }) }));
    }
    $("card-updated").textContent = t("card.updated", { clock: clockText(new Date()) });
  } else {
    $("card-updated").textContent = t("card.stale");
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
    if (err.status === 401) say(t("jobs.needsToken"), "warn");
    else say(t("jobs.loadFailed", { message: err.message }), "error");
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
  button = h("button", { type: "button", id: "token-button", text: t("token.enter"),
    onclick: async () => { if (await askForToken(true)) refreshAll(); } });
  $("notice").after(button);
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: STATUS_WORDS[status] ? STATUS_WORDS[status]() : status });
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
    const text = state.total === 0 && !f.status && !f.type ? t("jobs.none") : t("jobs.noMatch");
    rows.append(h("tr", { class: "empty" }, h("td", { colspan: 7, text })));
  }
  for (const job of shown) rows.append(...jobRows(job));
  const first = state.total ? (state.page - 1) * PAGE_SIZE + 1 : 0;
  const last = Math.min(state.total, state.page * PAGE_SIZE);
  const range = { first, last, total: state.total };
  const searchNote = f.search ? t("jobs.searchNote", { count: shown.length }) : "";
  $("page-info").textContent = t("jobs.pageInfo", { ...range, searchNote });
  $("job-caption").textContent = t("jobs.caption", range);
  $("page-prev").disabled = state.page <= 1;
  $("page-next").disabled = last >= state.total;
}

function jobRows(job) {
  const open = state.open.has(job.id);
  const detailsId = `details-${job.id}`;
  const toggle = h("button", {
    type: "button", class: "toggle", "aria-expanded": open ? "true" : "false",
    "aria-controls": detailsId, text: open ? t("jobs.hide") : t("jobs.details"), "data-focus-key": `toggle:${job.id}`,
    "aria-label": open ? t("jobs.hideDetailsOf", { name: job.workflowName }) : t("jobs.showDetailsOf", { name: job.workflowName }),
    onclick: () => toggleDetails(job.id),
  });
  const row = h("tr", { class: "job", "data-job-id": job.id },
    h("th", { scope: "row", "data-label": t("jobs.workflow") },
      h("div", { class: "who" },
        h("span", { class: "name", title: job.workflowName, text: job.workflowName }),
        h("span", { class: "id", title: job.id, text: job.id }))),
    h("td", { "data-label": t("jobs.type"), text: TYPE_WORDS[job.type] ? TYPE_WORDS[job.type]() : job.type }),
    h("td", { "data-label": t("jobs.status") }, statusBadge(job.status),
      h("div", { class: "progress-holder" }, progressEl(job))),
    h("td", { "data-label": t("jobs.nextRun") }, timeEl(job.scheduledTime)),
    h("td", { "data-label": t("jobs.lastRun") }, timeEl(job.executedAt)),
    h("td", { class: "num", "data-label": t("jobs.runs"), text: formatNumber(job.runs) }),
    h("td", { class: "actions" }, toggle));
  const details = h("tr", { class: "details", id: detailsId, hidden: !open },
    h("td", { colspan: 7 }, open ? detailBody(job.id) : null));
  return [row, details];
}

// A running job's reported progress: a native <progress> (its value is read out) and the
// percent with the task's message, kept to one line (the whole message is its title).
function progressEl(job) {
  const p = job.progress;
  if (!p || typeof p.percent !== "number") return null;
  const percent = Math.round(p.percent);
  const text = p.message ? t("progress.withMessage", { percent, message: p.message })
    : t("progress.percent", { percent });
  return h("div", { class: "progress" },
    h("progress", { max: 100, value: p.percent, "aria-label": t("progress.of", { name: job.workflowName }) }),
    h("span", { class: "progress-text", title: text, text }));
}

// A job-progress event: that job's bar changes in place, nothing else is fetched.
function showProgress(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch (err) {
    return;
  }
  const job = state.jobs.find((j) => j.id === event.jobId);
  if (!job) return;
  job.progress = { percent: event.percent, message: event.message };
  const row = document.querySelector(`tr.job[data-job-id="${CSS.escape(job.id)}"]`);
  const holder = row && row.querySelector(".progress-holder");
  if (holder) holder.replaceChildren(...[progressEl(job)].filter(Boolean));
}

function detailBody(id) {
  let body = state.detailBodies.get(id);
  if (!body) {
    body = h("div", { class: "details-body" }, t("details.loading"));
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
  let why = null;
  const problems = [];
  await Promise.all([
    // A daemon without the explain route answers 404: the panel goes without it.
    api("GET", `api/jobs/${encodeURIComponent(id)}/explain`)
      .then((b) => { why = b; })
      .catch((err) => { if (err.status !== 404) problems.push(t("details.problemWhy", { message: err.message })); }),
    api("GET", `api/jobs/${encodeURIComponent(id)}/runs`)
      .then((b) => { runs = (b && b.items) || []; })
      .catch((err) => problems.push(t("details.problemRuns", { message: err.message }))),
    FINISHED.has(job.status) ? null : api("GET", `api/jobs/${encodeURIComponent(id)}/next?n=5`)
      .then((b) => { next = (b && b.items) || []; })
      .catch((err) => problems.push(t("details.problemNext", { message: err.message }))),
  ]);
  const content = detailsContent(job, runs, next, why, problems).filter(Boolean);
  keepingFocus(() => holder.replaceChildren(...content));
}

// "Why?": GET /api/jobs/{id}/explain. The API writes its sentences in English; a page in
// English shows them as they are, a page in another language writes its own from each
// reason's stable code and details (as clients translate the API's errors by code).
const API_LANGUAGE = "en";

function whySection(why, job) {
  if (!why) return null;
  const reasons = Array.isArray(why.reasons) ? why.reasons : [];
  const own = i18n.lang !== API_LANGUAGE;
  const text = (r) => (own && REASONS[r.code] ? REASONS[r.code](r.details || {}) : r.message || r.code);
  return h("section", { class: "why", "aria-label": t("details.why") },
    h("h3", { text: t("details.why") }),
    h("p", { class: "why-summary", text: own ? whySummary(why, job) : why.summary || "" }),
    reasons.length ? h("ul", { class: "why-reasons" },
      reasons.map((r) => h("li", { "data-code": r.code, text: text(r) }))) : null);
}

function whySummary(why, job) {
  const name = job.workflowName;
  if (why.status === "running") return t("why.running", { name });
  if (!why.nextRun) return why.status === "paused" ? t("why.untilResumed", { name }) : t("why.noMore", { name });
  const when = localText(why.nextRun);
  return Date.parse(why.nextRun) <= Date.now() ? t("why.late", { name, when }) : t("why.next", { name, when });
}

const reasonTime = (iso) => localText(iso);
const REASONS = {
  quarantined: (d) => t("why.quarantined", { count: d.interruptions, at: reasonTime(d.at) }),
  rule_ended: (d) => (d.last ? t("why.ruleEndedLast", { last: reasonTime(d.last) }) : t("why.ruleEnded")),
  no_next_run: (d) => t("why.noNextRun", { status: STATUS_WORDS[d.status] ? STATUS_WORDS[d.status]() : d.status }),
  paused: (d) => t("why.paused", {
    by: d.by ? t("why.pausedBy", { by: d.by }) : "",
    until: d.until ? t("why.pausedUntil", { until: reasonTime(d.until) }) : "",
    reason: d.reason ? t("why.pausedReason", { reason: d.reason }) : "",
  }),
  scheduler_paused: () => t("why.schedulerPaused"),
  maintenance: (d) => t("why.maintenance", { window: d.window, from: reasonTime(d.from), until: reasonTime(d.until) }),
  rate_limited: (d) => t("why.rateLimited", { task: d.task, count: d.count, per: d.per, until: reasonTime(d.until) }),
  waiting_for_slot: (d) => (d.limit === "task"
    ? t("why.taskSlot", { task: d.task, running: d.running, max: d.max, count: d.ahead })
    : t("why.slot", { running: d.running, max: d.max, count: d.ahead })),
  retry_backoff: (d) => t("why.retry", { attempt: d.attempt, at: reasonTime(d.at) }),
  misfired: (d) => t("why.missed", { count: d.count, from: reasonTime(d.from), to: reasonTime(d.to) }),
  overlap_skipped: (d) => t("why.overlap", { at: reasonTime(d.at) }),
  dst_shifted: (d) => (d.skipped ? t("why.dstSkipped", { at: reasonTime(d.at) })
    : d.kind === "gap" ? t("why.dstMoved", { at: reasonTime(d.at) }) : t("why.dstFold", { at: reasonTime(d.at) })),
};

function detailsContent(job, runs, next, why, problems) {
  const rule = scheduleRule(job);
  const facts = h("dl", { class: "facts" },
    h("dt", { text: t("details.schedule") }),
    h("dd", {}, scheduleWords(job), rule ? [" ", h("code", { text: rule })] : null,
      h("span", { class: "muted", text: ` ${t("time.relative", { when: job.timezone })}` })),
    h("dt", { text: t("details.task") }), h("dd", { text: job.task }),
    h("dt", { text: t("details.priority") }), h("dd", { text: PRIORITY_WORDS[job.priority] ? PRIORITY_WORDS[job.priority]() : job.priority }),
    h("dt", { text: t("details.attempt") }),
    h("dd", { text: t("details.attemptOf", { attempt: job.attempt, count: job.maxRetries }) }),
    h("dt", { text: t("details.created") }), h("dd", {}, timeEl(job.createdAt)),
    job.pausedUntil ? [h("dt", { text: t("details.pausedUntil") }), h("dd", {}, timeEl(job.pausedUntil))] : null,
    job.error ? [h("dt", { text: t("details.lastError") }), h("dd", { class: "error", text: job.error })] : null);
  return [
    h("div", { class: "details-grid" },
      h("section", { "aria-label": t("details.about", { name: job.workflowName }) }, facts, actionsFor(job)),
      h("section", { "aria-label": t("details.nextRuns") }, h("h3", { text: t("details.nextRuns") }), nextList(next, job))),
    whySection(why, job),
    h("section", { "aria-label": t("details.history") }, h("h3", { text: t("details.history") }), runTable(runs)),
    problems.length ? h("p", { class: "error", text: t("details.problems", { problems: problems.join("; ") }) }) : null,
  ];
}

function nextList(items, job) {
  if (!items.length) {
    const why = FINISHED.has(job.status) ? t("details.nextNoneFinished") : t("details.nextNone");
    return h("p", { class: "muted", text: why });
  }
  return h("ol", { class: "next-runs" }, items.map((item) => h("li", {}, timeEl(item.local))));
}

function runTable(runs) {
  if (!runs.length) return h("p", { class: "muted", text: t("details.noRuns") });
  const heads = [t("runs.scheduled"), t("runs.started"), t("runs.outcome"), t("runs.duration"),
    t("runs.attempt"), t("runs.errorOrReason")];
  const cell = (i, attrs, ...children) => h("td", { "data-label": heads[i], ...attrs }, ...children);
  return h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, heads.map((text) => h("th", { scope: "col", text })))),
    h("tbody", {}, runs.map((run) => h("tr", {},
      cell(0, {}, timeEl(run.scheduledTime, false)),
      cell(1, {}, timeEl(run.startedAt, false)),
      cell(2, {}, h("span", { class: `badge outcome-${run.outcome}`, text: outcomeWord(run.outcome) })),
      cell(3, { text: duration(run.duration) }),
      cell(4, { text: formatNumber(run.attempt) }),
      cell(5, { class: run.error ? "error" : "", text: run.error || run.reason || "" })))));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("common.none");
  if (seconds < 1) return t("units.ms", { n: Math.round(seconds * 1000) });
  if (seconds < 120) return t("units.s", { n: seconds.toFixed(1) });
  const m = Math.floor(seconds / 60);
  return m < 120 ? t("units.minS", { min: m, s: Math.round(seconds % 60) })
    : t("units.hMin", { h: Math.floor(m / 60), min: m % 60 });
}

// --- actions -----------------------------------------------------------------------------

// Labels are functions: they are read in the language of the moment.
const ACTIONS = [
  { name: "run", label: () => t("action.run"), when: (s) => s === "pending" || s === "running", done: () => t("action.runDone") },
  { name: "pause", label: () => t("action.pause"), when: (s) => s === "pending" || s === "running", done: () => t("action.pauseDone") },
  { name: "resume", label: () => t("action.resume"), when: (s) => s === "paused", done: () => t("action.resumeDone") },
  { name: "cancel", label: () => t("action.cancel"), when: (s) => !FINISHED.has(s), done: () => t("action.cancelDone") },
  { name: "retry", label: () => t("action.retry"), when: (s) => s === "failed", done: () => t("action.retryDone") },
  { name: "delete", label: () => t("action.delete"), when: () => true, done: () => t("action.deleteDone"), danger: true },
];

const STATUS_WORDS = {
  pending: () => t("status.pending"), running: () => t("status.running"),
  completed: () => t("status.completed"), failed: () => t("status.failed"),
  cancelled: () => t("status.cancelled"), paused: () => t("status.paused"),
};

const TYPE_WORDS = {
  immediate: () => t("type.immediate"), delayed: () => t("type.delayed"),
  scheduled: () => t("type.scheduled"), recurring: () => t("type.recurring"),
};

const PRIORITY_WORDS = {
  critical: () => t("priority.critical"), high: () => t("priority.high"),
  normal: () => t("priority.normal"), low: () => t("priority.low"),
};

const OUTCOME_WORDS = {
  success: () => t("outcome.success"), error: () => t("outcome.error"),
  timeout: () => t("outcome.timeout"), cancelled: () => t("outcome.cancelled"),
  missed: () => t("outcome.missed"), skipped_overlap: () => t("outcome.skipped_overlap"),
  interrupted: () => t("outcome.interrupted"),
};

const outcomeWord = (o) => (OUTCOME_WORDS[o] ? OUTCOME_WORDS[o]() : o);

function actionsFor(job) {
  const buttons = ACTIONS.filter((a) => a.when(job.status)).map((a) => h("button", {
    type: "button", class: a.danger ? "danger" : "", "data-action": a.name, text: a.label(),
    "data-focus-key": `action:${job.id}:${a.name}`,
    "aria-label": t("action.on", { action: a.label(), name: job.workflowName }),
    onclick: (ev) => act(job, a, ev.currentTarget),
  }));
  return h("div", { class: "action-bar", role: "group", "aria-label": t("action.group", { name: job.workflowName }) }, buttons);
}

async function act(job, action, button) {
  if (action.name === "delete" && !window.confirm(t("action.confirmDelete", { name: job.workflowName }))) return;
  const key = button.dataset.focusKey; // a disabled button loses the focus: note where it was
  button.disabled = true;
  try {
    const path = `api/jobs/${encodeURIComponent(job.id)}`;
    await api(action.name === "delete" ? "DELETE" : "POST", action.name === "delete" ? path : `${path}/${action.name}`);
    if (action.name === "delete") {
      state.open.delete(job.id);
      state.detailBodies.delete(job.id);
    }
    say(t("action.done", { done: action.done(), name: job.workflowName }), "done");
  } catch (err) {
    say(t("action.failed", { action: action.label(), name: job.workflowName, message: err.message }), "error");
  } finally {
    button.disabled = false;
  }
  await refreshAll();
  if (!document.activeElement || document.activeElement === document.body) focusKey(key);
}

// --- live events -------------------------------------------------------------------------

const CONNECTION_WORDS = {
  connecting: () => t("connection.connecting"),
  live: () => t("connection.live"),
  polling: () => t("connection.polling"),
};

function setConnection(mode) {
  $("connection").dataset.mode = mode;
  $("connection-text").textContent = CONNECTION_WORDS[mode]();
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
    setConnection("live");
    scheduleRefresh(); // catch up on what happened while the stream was down
    await readStream(resp.body);
    attempt = 0;
  } catch (err) {
    if (controller.signal.aborted) return;
  }
  state.live = false;
  if (events !== controller) return;
  setConnection("polling");
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

function onEvent(type, data) {
  if (type === "stream-overflow") return; // the stream ends next; reconnecting resumes it
  if (type === "job-progress") {
    showProgress(data); // frequent: in place, no refresh
    return;
  }
  scheduleRefresh();
}

// --- wiring ------------------------------------------------------------------------------

let chartsAt = 0; // when the charts were last asked for

// The charts follow events too, but at most every CHARTS_AFTER_EVENT_MS: runs come in bursts.
function refreshChartsSoon() {
  if (typeof refreshCharts !== "function") return; // charts.js did not load
  if (Date.now() - chartsAt < CHARTS_AFTER_EVENT_MS) return;
  chartsAt = Date.now();
  refreshCharts();
}

async function refreshAll() {
  refreshChartsSoon();
  await Promise.all([refreshStatus(), refreshJobs()]);
}

// The page in another language: its own words at once, then everything drawn from data again.
async function switchLanguage(lang) {
  rememberLanguage(lang);
  await loadLanguage(lang);
  showLanguage();
  state.detailBodies.clear(); // the open panels are rebuilt in the new language
  chartsAt = 0;
  await refreshAll();
}

function showLanguage() {
  translatePage();
  if ($("token-button")) $("token-button").textContent = t("token.enter");
  $("language").value = i18n.lang;
  setConnection($("connection").dataset.mode);
  refreshRelativeTimes();
}

async function init() {
  await loadLanguage(preferredLanguage());
  showLanguage();
  $("language").addEventListener("change", (ev) => switchLanguage(ev.target.value));
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
  setInterval(() => { chartsAt = 0; refreshChartsSoon(); }, CHARTS_MS);
}

document.addEventListener("DOMContentLoaded", init);
