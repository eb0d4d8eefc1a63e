// The dashboard's charts, drawn by uPlot (static/vendor/, MIT) from GET /api/stats, with the
// maintenance windows of GET /api/maintenance shaded on the timeline.
//
// Each chart is a <figure>: a caption, a role="img" element whose aria-label sums it up, and
// its numbers as a table (the text alternative, under a <details>). Loaded after app.js, whose
// helpers it uses (h, $, api, localText), and every word it shows comes from the catalogue
// (static/i18n/, looked up with t).
// Values from the API only ever go through textContent or onto the canvas.
"use strict";

const CHART_HOURS = 24;
const OUTCOME_ORDER = ["success", "error", "timeout", "cancelled", "missed", "skipped_overlap",
  "interrupted"];
const LANE_PX = 28;
const LATER_SHOWN = 3; // later runs listed per job in the timeline's table

const charts = {
  plots: [], // [{ plot, el, height }] of the figures shown now
  open: new Set(), // ids of the figures whose numbers are shown
  observer: null,
};

async function refreshCharts() {
  $("activity-title").textContent = t("charts.activity");
  let stats;
  try {
    stats = await api("GET", `api/stats?hours=${CHART_HOURS}`);
  } catch (err) {
    $("charts-notice").textContent = err.status === 401
      ? t("charts.noToken") : t("charts.unavailable", { message: err.message });
    return;
  }
  let windows = [];
  try {
    const body = await api("GET", `api/maintenance?hours=${CHART_HOURS}`);
    windows = (body && body.upcoming) || [];
  } catch (err) {
    windows = []; // a daemon without maintenance windows: nothing to shade
  }
  $("charts-notice").textContent = "";
  renderCharts(stats, windows);
}

function renderCharts(stats, windows) {
  for (const { plot } of charts.plots) plot.destroy();
  charts.plots = [];
  const figures = [runsFigure(stats), latenessFigure(stats), upcomingFigure(stats, windows)];
  $("charts").replaceChildren(...figures.map((f) => f.figure));
  for (const f of figures) {
    if (!f.draw || typeof uPlot !== "function") continue; // the tables still tell it all
    const plot = new uPlot({ ...f.options, width: Math.max(200, f.el.clientWidth) }, f.data, f.el);
    charts.plots.push({ plot, el: f.el, height: f.options.height });
  }
  watchSizes();
}

// Charts follow their box's width (a phone turned, a window resized).
function watchSizes() {
  if (!charts.observer && typeof ResizeObserver === "function") {
    charts.observer = new ResizeObserver(() => {
      for (const { plot, el, height } of charts.plots) {
        const width = Math.max(200, el.clientWidth);
        if (width !== plot.width) plot.setSize({ width, height });
      }
    });
  }
  if (!charts.observer) return;
  charts.observer.disconnect();
  for (const { el } of charts.plots) charts.observer.observe(el);
}

// --- shared parts ----------------------------------------------------------------------------

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function figureOf(id, title, label, note, table) {
  const el = h("div", { class: "chart", role: "img", "aria-label": label });
  const numbers = h("details", { class: "numbers", open: charts.open.has(id) },
    h("summary", { text: t("charts.numbers") }),
    h("div", { class: "table-scroll" }, table));
  numbers.addEventListener("toggle", () => {
    if (numbers.open) charts.open.add(id);
    else charts.open.delete(id);
  });
  const figure = h("figure", { id, class: "chart-figure" },
    h("figcaption", { class: "chart-title", text: title }), el,
    note ? h("p", { class: "chart-note muted", text: note }) : null, numbers);
  return { figure, el };
}

function dataTable(caption, headers, rows) {
  return h("table", { class: "chart-table" },
    h("caption", { class: "visually-hidden", text: caption }),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows));
}

// The hours shown, whole: a bar sits in the middle of its hour.
function hourScale(stats) {
  const starts = stats.buckets.map((b) => Date.parse(b.start) / 1000);
  const last = starts.length ? starts[starts.length - 1] + stats.bucketSeconds : 0;
  return { time: true, auto: false, range: [starts.length ? starts[0] : 0, last] };
}

// Time ticks as the rest of the page writes times: 24-hour clock, the date under the first
// tick of each day, in the scheduler's zone.
function timeAxis(zone) {
  const values = (u, splits) => {
    let day = null;
    return splits.map((ts) => {
      if (ts === null) return "";
      const d = uPlot.tzDate(new Date(ts * 1000), zone);
      const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      const label = date === day ? clock : `${clock}\n${date}`;
      day = date;
      return label;
    });
  };
  return { ...axisStyle(), values };
}

function axisStyle() {
  const line = cssColor("--line");
  return { stroke: cssColor("--muted"), grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
}

function seconds(value) {
  if (value === null || value === undefined) return t("common.none");
  const n = (x) => Number(x.toPrecision(4));
  if (value < 1) return t("units.ms", { n: n(value * 1000) });
  if (value < 120) return t("units.s", { n: n(value) });
  return t("units.min", { n: n(value / 60) });
}

// An outcome's name in the charts' legend and tables.
const CHART_OUTCOMES = {
  success: () => t("charts.outcome.success"), error: () => t("charts.outcome.error"),
  timeout: () => t("charts.outcome.timeout"), cancelled: () => t("charts.outcome.cancelled"),
  missed: () => t("charts.outcome.missed"), skipped_overlap: () => t("charts.outcome.skipped_overlap"),
  interrupted: () => t("charts.outcome.interrupted"),
};

const chartOutcome = (o) => CHART_OUTCOMES[o]();

function hoursOf(stats) {
  return stats.buckets.length;
}

// --- runs per hour by outcome ----------------------------------------------------------------

function runsFigure(stats) {
  const buckets = stats.buckets;
  const hours = hoursOf(stats);
  const count = (b, o) => b.outcomes[o] || 0;
  const total = buckets.reduce((sum, b) => sum + OUTCOME_ORDER.reduce((s, o) => s + count(b, o), 0), 0);
  const failed = buckets.reduce((sum, b) => sum + count(b, "error") + count(b, "timeout"), 0);
  const rows = buckets.map((b) => h("tr", { "data-start": b.start },
    h("th", { scope: "row" }, h("time", { datetime: b.start, text: localText(b.start) })),
    OUTCOME_ORDER.map((o) => h("td", { class: "num", "data-outcome": o, text: formatNumber(count(b, o)) })),
    h("td", { class: "num", "data-outcome": "total", text: formatNumber(OUTCOME_ORDER.reduce((s, o) => s + count(b, o), 0)) })));
  const table = dataTable(t("charts.runsTitle"),
    [t("charts.hour"), ...OUTCOME_ORDER.map(chartOutcome), t("charts.total")], rows);
  const note = total ? t("charts.timesIn", { zone: stats.timezone }) : t("charts.runsNone", { hours });
  const { figure, el } = figureOf("chart-runs", t("charts.runsTitle"),
    t("charts.runsLabel", { hours, count: total, failed }), note, table);
  // Stacked bars: series k is drawn at the sum of the first k outcomes, the tallest first, so
  // each shorter one paints over the one above it; the legend shows each outcome's own count.
  const shown = OUTCOME_ORDER.filter((o) => buckets.some((b) => count(b, o) > 0));
  const stack = shown.length ? shown : ["success"];
  const sums = [];
  let running = buckets.map(() => 0);
  for (const o of stack) {
    running = running.map((v, i) => v + count(buckets[i], o));
    sums.push(running);
  }
  const xs = buckets.map((b) => Date.parse(b.start) / 1000 + stats.bucketSeconds / 2);
  const series = stack.map((o) => ({
    label: chartOutcome(o),
    stroke: cssColor(`--outcome-${o}`),
    fill: cssColor(`--outcome-${o}`),
    width: 0, // an empty hour draws nothing
    paths: uPlotBars(),
    points: { show: false },
    value: (u, v, si, idx) => (idx === null ? t("common.none") : formatNumber(count(buckets[idx], o))),
  })).reverse();
  const options = {
    height: 220,
    ...chartDefaults(stats.timezone),
    scales: { x: hourScale(stats), y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [timeAxis(stats.timezone), { ...axisStyle(), incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000, 1000000] }],
    series: [timeSeries(), ...series],
  };
  return { figure, el, draw: true, options, data: [xs, ...sums.reverse()] };
}

function uPlotBars() {
  return typeof uPlot === "function" ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
}

function chartDefaults(zone) {
  return { tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone), cursor: { drag: { x: false, y: false } } };
}

// The x series: its label names the time in the legend (uPlot's own would be English).
function timeSeries() {
  return { label: t("charts.time") };
}

// --- lateness p50 / p99 ----------------------------------------------------------------------

function latenessFigure(stats) {
  const buckets = stats.buckets;
  const hours = hoursOf(stats);
  const p99s = buckets.map((b) => b.latenessP99).filter((v) => v !== null);
  const worst = p99s.length ? seconds(Math.max(...p99s)) : null;
  const cell = (v) => h("td", { class: "num", "data-value": v === null ? "" : v, text: seconds(v) });
  const rows = buckets.map((b) => h("tr", { "data-start": b.start },
    h("th", { scope: "row" }, h("time", { datetime: b.start, text: localText(b.start) })),
    cell(b.latenessP50), cell(b.latenessP99)));
  const table = dataTable(t("charts.latenessTitle"), [t("charts.hour"), t("charts.p50"), t("charts.p99")], rows);
  const note = worst === null ? t("charts.latenessNone", { hours }) : t("charts.timesIn", { zone: stats.timezone });
  const label = worst === null ? t("charts.latenessLabelNone", { hours }) : t("charts.latenessLabel", { hours, worst });
  const { figure, el } = figureOf("chart-lateness", t("charts.latenessTitle"), label, note, table);
  const xs = buckets.map((b) => Date.parse(b.start) / 1000 + stats.bucketSeconds / 2);
  const line = (label, key, color) => ({
    label, stroke: cssColor(color), width: 2, points: { show: true, size: 5 },
    value: (u, v) => seconds(v),
  });
  const options = {
    height: 200,
    ...chartDefaults(stats.timezone),
    scales: { x: hourScale(stats), y: { distr: 3, log: 10, range: logRange } },
    axes: [timeAxis(stats.timezone), {
      ...axisStyle(), size: 64, values: (u, splits) => splits.map((v) => (v === null ? "" : seconds(v))),
    }],
    series: [timeSeries(), line(t("charts.p50"), "latenessP50", "--accent"), line(t("charts.p99"), "latenessP99", "--warn")],
  };
  const data = [xs, buckets.map((b) => b.latenessP50), buckets.map((b) => b.latenessP99)];
  return { figure, el, draw: true, options, data };
}

// Whole powers of ten around the values (1 ms to 1 s when there are none).
function logRange(u, min, max) {
  if (min === null || max === null || !(min > 0)) return [0.001, 1];
  const low = 10 ** Math.floor(Math.log10(min));
  const high = 10 ** Math.ceil(Math.log10(max));
  return [low, high > low ? high : low * 10];
}

// --- upcoming runs, one lane per job ---------------------------------------------------------

function upcomingFigure(stats, windows) {
  const lanes = stats.upcoming;
  const hours = hoursOf(stats);
  const runs = lanes.reduce((sum, lane) => sum + lane.runs.length, 0);
  const rows = lanes.map((lane) => h("tr", { "data-job-id": lane.jobId },
    h("th", { scope: "row", class: "lane-name", title: lane.name, text: lane.name }),
    h("td", { class: "num", "data-value": lane.runs.length, text: formatNumber(lane.runs.length) }),
    h("td", {}, h("time", { datetime: lane.runs[0], text: localText(lane.runs[0]) })),
    h("td", {}, laterRuns(lane.runs.slice(1)))));
  const table = h("div", {},
    dataTable(t("charts.upcomingTitle", { hours }),
      [t("charts.job"), t("charts.runsCount"), t("charts.nextRun"), t("charts.laterRuns")], rows),
    windows.length ? maintenanceList(windows) : null);
  const notes = [lanes.length ? t("charts.timesIn", { zone: stats.timezone }) : t("charts.upcomingNone", { hours })];
  if (windows.length) notes.push(t("charts.maintenanceShaded"));
  if (stats.upcomingTruncated) notes.push(t("charts.upcomingCut"));
  const { figure, el } = figureOf("chart-upcoming", t("charts.upcomingTitle", { hours }),
    t("charts.upcomingLabel", { hours, jobs: lanes.length, count: runs }), notes.join(" "), table);
  const start = Date.now() / 1000;
  const end = start + hours * stats.bucketSeconds;
  const n = lanes.length;
  const options = {
    height: Math.max(1, n) * LANE_PX + 50,
    ...chartDefaults(stats.timezone),
    legend: { show: false },
    cursor: { show: false },
    scales: {
      x: { time: true, auto: false, range: [start, end] },
      y: { auto: false, range: [-0.5, Math.max(1, n) - 0.5] },
    },
    axes: [timeAxis(stats.timezone), {
      ...axisStyle(),
      size: (u) => (narrow(u) ? 100 : 150),
      grid: { show: false },
      splits: () => lanes.map((_, i) => n - 1 - i),
      values: (u, splits) => splits.map((y) => laneName(lanes[n - 1 - y], narrow(u) ? 12 : 20)),
    }],
    series: [timeSeries(), { paths: () => null, points: { show: false } }],
    hooks: {
      drawClear: [(u) => shadeWindows(u, windows, lanes)],
      draw: [(u) => markRuns(u, lanes)],
    },
  };
  return { figure, el, draw: n > 0, options, data: [[start, end], [null, null]] };
}

const narrow = (u) => u.width < 560;

// The axis has room for a short name only; the table has the whole one.
function laneName(lane, chars) {
  if (!lane) return "";
  const name = lane.name;
  return name.length > chars ? `${name.slice(0, chars - 1)}…` : name;
}

function laterRuns(runs) {
  const shown = runs.slice(0, LATER_SHOWN).map((t) => h("time", { datetime: t, text: localText(t) }));
  const parts = [];
  shown.forEach((el, i) => parts.push(i ? t("charts.listSeparator") : "", el));
  if (runs.length > LATER_SHOWN) parts.push(` ${t("charts.andMore", { count: runs.length - LATER_SHOWN })}`);
  return parts.length ? parts : t("common.none");
}

function maintenanceList(windows) {
  const row = (w) => (Array.isArray(w.tasks)
    ? t("charts.maintenanceRowTasks", { name: w.name, start: localText(w.start), end: localText(w.end), tasks: w.tasks.join(", ") })
    : t("charts.maintenanceRow", { name: w.name, start: localText(w.start), end: localText(w.end) }));
  return h("section", { class: "maintenance", "aria-label": t("charts.maintenance") },
    h("h3", { text: t("charts.maintenance") }),
    h("ul", {}, windows.map((w) => h("li", { text: row(w) }))));
}

// The y of lane i in canvas pixels, and a lane's height there.
function laneBand(u, n, i) {
  const y = u.valToPos(n - 1 - i, "y", true);
  const height = Math.abs(u.valToPos(0, "y", true) - u.valToPos(1, "y", true));
  return { y, height };
}

function xSpan(u, from, to) {
  const min = u.scales.x.min;
  const max = u.scales.x.max;
  if (to <= min || from >= max) return null;
  const x0 = u.valToPos(Math.max(from, min), "x", true);
  const x1 = u.valToPos(Math.min(to, max), "x", true);
  return [x0, Math.max(1, x1 - x0)];
}

// A window with tasks shades the lanes of those tasks; one without (every task) all of them.
function shadeWindows(u, windows, lanes) {
  const ctx = u.ctx;
  const n = lanes.length;
  ctx.save();
  ctx.fillStyle = cssColor("--maintenance");
  for (const w of windows) {
    const span = xSpan(u, Date.parse(w.start) / 1000, Date.parse(w.end) / 1000);
    if (!span) continue;
    if (!Array.isArray(w.tasks)) {
      ctx.fillRect(span[0], u.bbox.top, span[1], u.bbox.height);
      continue;
    }
    lanes.forEach((lane, i) => {
      if (!w.tasks.includes(lane.task)) return;
      const band = laneBand(u, n, i);
      ctx.fillRect(span[0], band.y - band.height / 2, span[1], band.height);
    });
  }
  ctx.restore();
}

function markRuns(u, lanes) {
  const ctx = u.ctx;
  const n = lanes.length;
  const dpr = window.devicePixelRatio || 1;
  ctx.save();
  ctx.fillStyle = cssColor("--accent");
  lanes.forEach((lane, i) => {
    const band = laneBand(u, n, i);
    const tall = band.height * 0.6;
    for (const t of lane.runs) {
      const span = xSpan(u, Date.parse(t) / 1000, Date.parse(t) / 1000 + 1);
      if (!span) continue;
      ctx.fillRect(span[0] - dpr, band.y - tall / 2, 3 * dpr, tall);
    }
  });
  ctx.restore();
}
