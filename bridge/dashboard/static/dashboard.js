// The dashboard page: state in the URL, every figure from the JSON API (api.js).

import { ApiError, download, get, request, storeKey, storedKey } from "./api.js";
import { logLines, sparkline, stackedBars } from "./charts.js";
import * as fmt from "./format.js";

const WINDOWS = {
  "1h": { grain: "minute", step: 60, n: 60, days: 1 },
  "24h": { grain: "hour", step: 3600, n: 24, days: 1 },
  "7d": { grain: "hour", step: 3600, n: 168, days: 7 },
  "30d": { grain: "day", step: 86400, n: 30, days: 30 },
};
const FILTERS = ["status", "error_type", "since", "until", "tag", "trace_id"];
const STACKS = [
  { key: "completed_executions", label: "completed", css: "completed" },
  { key: "failed_only", label: "failed", css: "failed" },
  { key: "timeout_executions", label: "timeout", css: "timeout" },
  { key: "canceled_executions", label: "canceled", css: "canceled" },
];
const PAGE_SIZE = 25;
const LIVE_EVERY_MS = 5000;

const $ = (sel) => document.querySelector(sel);

// Each panel draws only the answer to its latest request: a slow answer to an older one
// (another window, an earlier page) never overwrites a newer one. `latest("runs")`
// returns whether that request is still the panel's latest.
const asked = new Map();
function latest(panel) {
  const n = (asked.get(panel) || 0) + 1;
  asked.set(panel, n);
  return () => asked.get(panel) === n;
}
const tooltip = () => $("#tooltip");
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

// -- state: the URL holds it, so a view can be bookmarked and shared ----------
function readState() {
  const q = new URLSearchParams(location.search);
  const state = { window: Object.hasOwn(WINDOWS, q.get("window") || "") ? q.get("window") : "24h" };
  for (const k of ["plugin", "group", "run", "sort", ...FILTERS]) state[k] = q.get(k) || "";
  // A time the page cannot read is left to the API, which names it; the form shows none.
  return state;
}

function writeState(state, push = true) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v && !(k === "window" && v === "24h")) q.set(k, v);
  const url = `${location.pathname}${q.toString() ? `?${q}` : ""}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

let state = readState();
const last = { cur: null, week: null };
const features = { errorsApi: null, export: false, replay: false, scopes: [] };
const pages = { cursors: [null], index: 0 };

function range(now = Date.now()) {
  const w = WINDOWS[state.window];
  const stepMs = w.step * 1000;
  const start = Math.floor(now / stepMs) * stepMs - (w.n - 1) * stepMs;
  // Up to the next whole second: iso() drops the milliseconds, and a run that ended
  // in this second must be counted.
  const until = Math.ceil(now / 1000) * 1000;
  return { ...w, since: iso(start), until: iso(until), prevSince: iso(start - w.n * stepMs), prevUntil: iso(start) };
}

// -- access -----------------------------------------------------------------
async function authenticate() {
  try {
    const access = await get("/api/v1/access");
    features.scopes = access.scopes || [];
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      askForKey(storedKey() ? `The key was not accepted: ${e.message}` : "");
      return false;
    }
    throw e;
  }
}

function askForKey(message) {
  storeKey(null);
  const dialog = $("#key-dialog");
  const shown = $("#key-message");
  shown.textContent = message;
  shown.hidden = !message;
  if (!dialog.open) dialog.showModal();
  $("#key-input").focus();
}

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  storeKey($("#key-input").value.trim());
  $("#key-input").value = "";
  if (await authenticate()) {
    $("#key-dialog").close();
    await featuresKnown;
    $("#exports").hidden = !(features.export && features.scopes.includes("read"));
    start();
  }
});

async function detectFeatures() {
  // The OpenAPI document says which optional endpoints this bridge has.
  try {
    const spec = await get("/openapi.json");
    const paths = spec.paths || {};
    features.export = "/api/v1/executions/export" in paths;
    features.replay = "/api/v1/executions/{execution_id}/replay" in paths;
    const list = (paths["/api/v1/executions"] || {}).get || {};
    const param = (list.parameters || []).find((p) => p.name === "error_type");
    const schema = (param && param.schema) || {};
    const types = schema.enum || schema["x-known-values"] || [];
    const select = $("#runs-filter [name=error_type]");
    for (const t of types) select.append(new Option(t, t));
  } catch {
    features.export = features.replay = false;
  }
}

// -- panels -----------------------------------------------------------------
function showError(e) {
  const banner = $("#page-error");
  banner.textContent = e instanceof ApiError ? `The bridge answered ${e.status}: ${e.message}` : String(e);
  banner.hidden = false;
}

function delta(el, now, before, { better = "up", format = (v) => String(v), unit = "" } = {}) {
  el.className = "delta";
  if (before === null || before === undefined) { el.textContent = ""; return; }
  const diff = now - before;
  if (format(Math.abs(diff)) === format(0)) { el.textContent = "same as previous window"; return; }
  const sign = diff > 0 ? "+" : "−";
  const pct = before ? Math.round(Math.abs(diff / before) * 100) : 0;
  const rel = pct >= 1 ? ` (${sign}${pct}%)` : "";
  el.textContent = `${sign}${format(Math.abs(diff))}${unit}${rel} vs previous window`;
  const good = (diff > 0) === (better === "up");
  el.classList.add(good ? "good" : "bad");
}

function drawKpis(cur, prev) {
  const c = cur.summary, p = prev.summary;
  const kpi = (id, value) => { $(`#${id} .value`).textContent = value; return $(`#${id} .delta`); };
  delta(kpi("kpi-runs", fmt.count(c.total_executions)), c.total_executions, p.total_executions, { format: fmt.count });
  delta(kpi("kpi-success", c.total_executions ? fmt.percent(c.success_rate) : "–"),
    c.success_rate, p.total_executions && c.total_executions ? p.success_rate : null,
    { format: (v) => v.toFixed(1), unit: " pts" });
  delta(kpi("kpi-p95", c.total_executions ? fmt.duration(c.p95_duration) : "–"),
    c.p95_duration, p.total_executions && c.total_executions ? p.p95_duration : null,
    { better: "down", format: fmt.duration });
  delta(kpi("kpi-failures", fmt.count(c.failed_executions)), c.failed_executions, p.failed_executions,
    { better: "down", format: fmt.count });
}

function drawCharts(cur) {
  const starts = cur.buckets.map((b) => Date.parse(b.start));
  const days = starts.length > 1 && starts[starts.length - 1] - starts[0] >= 86400000;
  const label = (b) => fmt.bucketLabel(b.start, cur.grain, days);
  const buckets = cur.buckets.map((b) => ({
    ...b,
    failed_only: b.failed_executions - b.timeout_executions - b.canceled_executions,
  }));
  stackedBars($("#runs-chart"), buckets, STACKS, label, tooltip(), fmt.count);
  $("#runs-chart-grain").textContent = `per ${cur.grain}`;
  logLines($("#duration-chart"), cur.buckets,
    [{ key: "p50_duration", label: "p50" }, { key: "p95_duration", label: "p95" }, { key: "p99_duration", label: "p99" }]
      .map((l) => ({ ...l, css: l.label })),
    label, tooltip(), fmt.duration, (b) => b.total_executions > 0);
  $("#duration-chart-scope").textContent = state.plugin ? `of ${state.plugin}` : "of every plugin";
}

function drawPlugins(cur, week) {
  const sparks = new Map(week.plugins.map((p) => [p.plugin, p.buckets.map((b) => b.total_executions)]));
  const rows = cur.plugins.map((p) => ({
    plugin: p.plugin,
    runs: p.summary.total_executions,
    success: p.summary.success_rate,
    p50: p.summary.p50_duration,
    p95: p.summary.p95_duration,
    p99: p.summary.p99_duration,
    last: p.last_seen || "",
  }));
  const [key, dir] = (state.sort || "runs:desc").split(":");
  rows.sort((a, b) => (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0) * (dir === "asc" ? 1 : -1));
  for (const th of document.querySelectorAll("#plugins-table th")) {
    const b = th.querySelector("button");
    if (b && b.dataset.sort === key) th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  const body = $("#plugins-table tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.plugin = r.plugin;
    const name = document.createElement("button");
    name.type = "button";
    name.className = "link";
    name.textContent = r.plugin;
    name.addEventListener("click", () => setPlugin(state.plugin === r.plugin ? "" : r.plugin));
    const cells = [name, fmt.count(r.runs), fmt.percent(r.success), fmt.duration(r.p50),
      fmt.duration(r.p95), fmt.duration(r.p99), r.last ? fmt.ago(r.last) : "–"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (i > 0 && i < 6) td.className = "num";
      td.dataset.col = ["plugin", "runs", "success", "p50", "p95", "p99", "last"][i];
      if (typeof c === "string") td.textContent = c; else td.append(c);
      if (i === 6 && r.last) td.title = fmt.when(r.last);
      tr.append(td);
    });
    const td = document.createElement("td");
    td.append(sparkline(sparks.get(r.plugin) || [], `${r.plugin}: runs per day, last 7 days`));
    tr.append(td);
    body.append(tr);
  }
  if (!rows.length) body.innerHTML = '<tr><td colspan="8" class="muted">No runs in this window</td></tr>';
}

async function loadErrorGroups(r) {
  if (features.errorsApi !== false) {
    try {
      const body = await get("/api/v1/executions/errors", { days: r.days, plugin: state.plugin });
      features.errorsApi = true;
      return { source: "error groups", groups: groupsFromApi(body), since: body.window_start };
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
      features.errorsApi = false;
    }
  }
  return null;
}

// GET /api/v1/executions/errors: groups by fingerprint (when the bridge has that API).
function groupsFromApi(body) {
  const groups = body.groups || body.error_groups || [];
  return groups.map((g) => ({
    label: `${g.plugin ? `${g.plugin}: ` : ""}${g.error_type || ""} ${g.message || ""}`.trim(),
    count: g.count,
    first: g.first_seen,
    last: g.last_seen,
    trend: (g.daily || g.series || []).map((d) => (typeof d === "number" ? d : d.count)),
    filter: { group: g.fingerprint },
  }));
}

// Without that API: one group per error type, from the window's buckets.
function groupsByErrorType(cur) {
  const step = WINDOWS[state.window].step * 1000;
  return Object.entries(cur.summary.error_types).map(([type, count]) => {
    const trend = cur.buckets.map((b) => b.error_types[type] || 0);
    const first = trend.findIndex(Boolean);
    const last = trend.length - 1 - [...trend].reverse().findIndex(Boolean);
    const at = (i) => cur.buckets[i].start;
    const end = (i) => iso(Math.min(Date.parse(at(i)) + step, Date.parse(cur.until)));
    return { label: type, count, first: at(first), last: end(last), trend, filter: { error_type: type } };
  }).sort((a, b) => b.count - a.count);
}

function drawErrors(result, cur) {
  const groups = result ? result.groups : groupsByErrorType(cur);
  // The error groups' API counts whole UTC days: its window starts at a midnight.
  const since = result && result.since ? `, since ${result.since} 00:00 UTC` : "";
  $("#errors-source").textContent = result ? `by fingerprint${since}` : "by error type";
  const body = $("#errors-table tbody");
  body.replaceChildren();
  for (const g of groups) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.count = g.count;
    const open = () => {
      state.group = g.filter.group || "";
      state.error_type = g.filter.error_type || "";
      state.run = "";
      writeState(state);
      resetPages();
      loadRuns().then(() => $("#runs-title").scrollIntoView({ behavior: "smooth" }));
      syncForm();
    };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    const cells = [g.label, fmt.count(g.count), fmt.when(g.first), fmt.when(g.last)];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 0) td.className = "err";
      if (i === 1) td.className = "num";
      tr.append(td);
    });
    const td = document.createElement("td");
    td.append(sparkline(g.trend, `${g.label}: trend`));
    tr.append(td);
    body.append(tr);
  }
  if (!groups.length) body.innerHTML = '<tr><td colspan="5" class="muted">No errors in this window</td></tr>';
}

// -- recent runs --------------------------------------------------------------
function toLocalInput(value) {
  const t = new Date(value || NaN);
  if (Number.isNaN(t.getTime())) return "";
  return new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

function fromLocalInput(value) {
  return value ? iso(new Date(value).getTime()) : "";
}

function syncForm() {
  const form = $("#runs-filter");
  form.plugin.value = state.plugin;
  const types = form.error_type;
  if (state.error_type && ![...types.options].some((o) => o.value === state.error_type)) {
    types.append(new Option(state.error_type, state.error_type)); // a plugin's own type
  }
  for (const k of FILTERS) {
    form[k].value = k === "since" || k === "until" ? toLocalInput(state[k]) : state[k];
  }
  $("#runs-group").hidden = !state.group;
  $("#runs-group strong").textContent = state.group;
}

function runFilter() {
  return {
    plugin: state.plugin,
    status: state.status,
    error_type: state.error_type,
    since: state.since || range().since,
    until: state.until,
    tag: state.tag,
    trace_id: state.trace_id,
    error_group: state.group,
  };
}

function resetPages() {
  pages.cursors = [null];
  pages.index = 0;
}

async function loadRuns() {
  const current = latest("runs");
  const shown = $("#runs-error");
  shown.hidden = true;
  let page;
  try {
    page = await get("/api/v1/executions", { ...runFilter(), limit: PAGE_SIZE, cursor: pages.cursors[pages.index] });
  } catch (e) {
    if (!current()) return;
    if (!(e instanceof ApiError) || e.status >= 500 || e.status === 401) throw e;
    const fields = e.body && e.body.errors ? Object.entries(e.body.errors).map(([k, v]) => `${k}: ${messages(v).join(" ")}`).join("; ") : "";
    shown.textContent = `${e.message}${fields ? ` (${fields})` : ""}`;
    shown.hidden = false;
    $("#runs-table tbody").replaceChildren();
    return;
  }
  if (!current()) return;
  pages.cursors[pages.index + 1] = page.next_cursor;
  $("#runs-total").textContent = `${fmt.count(page.total)}${page.total_is_estimate ? " (about)" : ""} matching`;
  $("#runs-page").textContent = `page ${pages.index + 1}`;
  $("#runs-newer").disabled = pages.index === 0;
  $("#runs-older").disabled = !page.next_cursor;
  const body = $("#runs-table tbody");
  body.replaceChildren();
  for (const run of page.executions) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.id = run.id;
    const status = document.createElement("span");
    status.className = `status ${run.status}`;
    status.textContent = run.status;
    const cells = [fmt.when(run.start_time), run.plugin_name, status,
      run.end_time ? fmt.duration(run.duration) : "–", String(run.attempts), firstLine(run.error)];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (typeof c === "string") td.textContent = c; else td.append(c);
      if (i === 3 || i === 4) td.className = "num";
      if (i === 5) { td.className = "err"; td.title = run.error_type || ""; }
      tr.append(td);
    });
    const open = () => openRun(run.id);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    body.append(tr);
  }
  if (!page.executions.length) body.innerHTML = '<tr><td colspan="6" class="muted">No runs match</td></tr>';
}

// A field's messages, however the API nested them (a list's are keyed by index).
function messages(value) {
  if (Array.isArray(value)) return value.flatMap(messages);
  if (value && typeof value === "object") return Object.values(value).flatMap(messages);
  return [String(value)];
}

function firstLine(text) {
  if (!text) return "";
  const lines = text.trim().split("\n");
  return lines[lines.length - 1].slice(0, 200);
}

$("#runs-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  for (const k of FILTERS) {
    state[k] = k === "since" || k === "until" ? fromLocalInput(form[k].value) : form[k].value.trim();
  }
  const plugin = form.plugin.value.trim();
  writeState(state);
  resetPages();
  if (plugin !== state.plugin) setPlugin(plugin);
  else loadRuns().catch(showError);
});
$("#runs-filter-reset").addEventListener("click", () => {
  for (const k of [...FILTERS, "group"]) state[k] = "";
  writeState(state);
  syncForm();
  resetPages();
  loadRuns().catch(showError);
});
$("#runs-group-clear").addEventListener("click", () => {
  state.group = "";
  writeState(state);
  syncForm();
  resetPages();
  loadRuns().catch(showError);
});
$("#runs-older").addEventListener("click", () => { pages.index++; loadRuns().catch(showError); });
$("#runs-newer").addEventListener("click", () => { pages.index = Math.max(0, pages.index - 1); loadRuns().catch(showError); });
for (const b of document.querySelectorAll("[data-export]")) {
  b.addEventListener("click", () => {
    const format = b.dataset.export;
    download("/api/v1/executions/export", { ...runFilter(), format }, `executions.${format}`).catch(showError);
  });
}

// -- one run -------------------------------------------------------------------
function jsonTree(value, key = null) {
  const keyPart = () => {
    const k = document.createElement("span");
    k.className = "j-key";
    k.textContent = `${JSON.stringify(key)}: `;
    return k;
  };
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const details = document.createElement("details");
    details.open = entries.length <= 20;
    const summary = document.createElement("summary");
    if (key !== null) summary.append(keyPart());
    summary.append(Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`);
    details.append(summary);
    for (const [k, v] of entries) details.append(jsonTree(v, Array.isArray(value) ? null : k));
    return details;
  }
  const line = document.createElement("div");
  if (key !== null) line.append(keyPart());
  const v = document.createElement("span");
  v.className = value === null ? "j-null" : `j-${typeof value === "string" ? "str" : typeof value === "number" ? "num" : "bool"}`;
  v.textContent = JSON.stringify(value);
  line.append(v);
  return line;
}

function section(title, ...content) {
  const wrap = document.createElement("section");
  const h = document.createElement("h3");
  h.textContent = title;
  wrap.append(h, ...content);
  return wrap;
}

function jsonBlock(value, id) {
  const box = document.createElement("div");
  box.className = "json";
  box.id = id;
  if (value === null || value === undefined || value === "") box.textContent = "(none)";
  else box.append(jsonTree(value));
  return box;
}

async function openRun(id, fromUrl = false) {
  const dialog = $("#run-dialog");
  state.run = id;
  if (!fromUrl) writeState(state);
  $("#run-replay-result").hidden = true;
  let detail;
  try {
    detail = await get(`/api/v1/executions/${encodeURIComponent(id)}`, { parse_json: "true" });
  } catch (e) {
    $("#run-title").textContent = "Run";
    $("#run-body").replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: e.message }));
    if (!dialog.open) dialog.showModal();
    return;
  }
  const run = detail.execution;
  $("#run-title").textContent = `${run.plugin_name} · ${run.status}`;
  const facts = document.createElement("dl");
  facts.className = "facts";
  facts.id = "run-facts";
  const fact = (k, v) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    if (typeof v === "string") dd.textContent = v; else dd.append(v);
    dd.dataset.fact = k;
    facts.append(dt, dd);
  };
  fact("id", run.id);
  fact("status", run.status);
  fact("started", fmt.when(run.start_time));
  fact("ended", fmt.when(run.end_time));
  fact("duration", run.end_time ? fmt.duration(run.duration) : "–");
  fact("attempts", String(run.attempts));
  fact("method", run.http_method || "–");
  const trace = document.createElement("button");
  trace.type = "button";
  trace.className = "link";
  trace.textContent = run.trace_id || "–";
  trace.addEventListener("click", () => {
    dialog.close();
    state.trace_id = run.trace_id;
    writeState(state);
    syncForm();
    resetPages();
    loadRuns().catch(showError);
  });
  fact("trace id", trace);
  if (run.replay_of) fact("replay of", runLink(run.replay_of));
  const replays = detail.replayed_by || [];
  if (replays.length) {
    const list = document.createElement("span");
    replays.forEach((r) => list.append(runLink(typeof r === "string" ? r : r.id), " "));
    fact("replays", list);
  }
  if (run.replays) fact("repeated deliveries", `${run.replays} answered with this run's result`);
  const attempts = document.createElement("table");
  attempts.id = "run-attempts";
  attempts.innerHTML = "<thead><tr><th>#</th><th>Status</th><th>Started</th><th class=num>Duration</th><th>Error</th></tr></thead>";
  const tbody = document.createElement("tbody");
  for (const a of detail.attempts || []) {
    const tr = document.createElement("tr");
    for (const [i, c] of [String(a.number), a.status, fmt.when(a.start_time), fmt.duration(a.duration), firstLine(a.error)].entries()) {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 3) td.className = "num";
      tr.append(td);
    }
    tbody.append(tr);
  }
  attempts.append(tbody);
  const scroll = document.createElement("div");
  scroll.className = "scroll";
  scroll.append(attempts);
  const parts = [facts, section("Attempts", scroll)];
  if (run.error) {
    const pre = document.createElement("pre");
    pre.id = "run-error";
    pre.textContent = run.error;
    parts.push(section(`Error${run.error_type ? ` (${run.error_type})` : ""}`, pre));
  }
  parts.push(section("Input", jsonBlock(run.input, "run-input")));
  parts.push(section("Output", jsonBlock(run.output, "run-output")));
  parts.push(section("Tags", jsonBlock(run.tags, "run-tags")));
  parts.push(section("Request", jsonBlock(run.metadata, "run-metadata")));
  $("#run-body").replaceChildren(...parts);
  const replay = $("#run-replay");
  replay.hidden = !(features.replay && features.scopes.includes("write"));
  replay.onclick = () => replayRun(run.id);
  if (!dialog.open) dialog.showModal();
}

function runLink(id) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "link";
  b.textContent = id;
  b.addEventListener("click", () => openRun(id));
  return b;
}

// POST /api/v1/executions/<id>/replay (when the bridge has that API).
async function replayRun(id) {
  const out = $("#run-replay-result");
  out.hidden = false;
  try {
    const answer = await request("POST", `/api/v1/executions/${encodeURIComponent(id)}/replay`);
    out.replaceChildren("Replayed as ", runLink(answer.execution_id));
  } catch (e) {
    out.textContent = `Replay refused: ${e.message}`;
  }
}

$("#run-close").addEventListener("click", () => $("#run-dialog").close());
$("#run-dialog").addEventListener("close", () => {
  if (state.run) { state.run = ""; writeState(state); }
});

// -- storage and live figures ---------------------------------------------------
async function loadStorage() {
  const [info, health] = await Promise.all([get("/api/v1/executions/storage/info"), get("/health")]);
  const dl = $("#storage");
  dl.replaceChildren();
  const cleanup = info.last_cleanup;
  const storage = (health.checks && health.checks.storage) || {};
  const facts = [
    ["backend", info.type],
    ["location", info.location],
    ["size", fmt.bytes(info.size_bytes)],
    ["records", fmt.count(info.total_records)],
    ["oldest record", fmt.when(info.oldest_record)],
    ["retention", `${info.retention_days} days`],
    ["last cleanup", cleanup ? `${fmt.when(cleanup.at)} (${fmt.count(cleanup.deleted)} deleted)` : "never"],
    ["waiting to be written", fmt.count(storage.unsaved_records || 0)],
    ["health", info.healthy ? "healthy" : info.health_message],
  ];
  for (const [k, v] of facts) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.dataset.fact = k;
    dl.append(dt, dd);
  }
  if (!performance.getEntriesByName("storage-drawn").length) performance.mark("storage-drawn");
}

async function loadLive() {
  const current = latest("live");
  const now = Date.now();
  const [running, lastMinute] = await Promise.all([
    get("/api/v1/executions", { status: "running", plugin: state.plugin, limit: 1 }),
    get("/api/v1/executions", { since: iso(now - 60000), plugin: state.plugin, limit: 1 }),
  ]);
  if (!current()) return;
  $("#live-inflight").textContent = fmt.count(running.total);
  $("#live-rate").textContent = fmt.count(lastMinute.total);
  $("#live-state").textContent = `updated ${new Date(now).toLocaleTimeString()}`;
}

let liveTimer = null;
function startLive() {
  clearInterval(liveTimer);
  liveTimer = setInterval(() => {
    if (!document.hidden) loadLive().catch(() => { $("#live-state").textContent = "not updating"; });
  }, LIVE_EVERY_MS);
}
document.addEventListener("visibilitychange", () => {
  $("#live-state").textContent = document.hidden ? "paused" : $("#live-state").textContent;
  if (!document.hidden) loadLive().catch(() => {});
});

// -- the whole page ---------------------------------------------------------------
function setPlugin(plugin) {
  state.plugin = plugin;
  state.group = "";
  writeState(state);
  resetPages();
  loadAll();
}

async function loadAll() {
  const current = latest("page");
  const r = range();
  document.body.dataset.loading = "true";
  $("#page-error").hidden = true;
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(b.dataset.window === state.window));
  $("#plugin-filter").hidden = !state.plugin;
  $("#plugin-filter-name").textContent = state.plugin;
  syncForm();
  const day = 86400000;
  const weekSince = iso(Math.floor(Date.now() / day) * day - 6 * day);
  const plugin = state.plugin;
  // Every request at once: the panels that need no series do not wait for it.
  const series = Promise.all([
    get("/api/v1/executions/timeseries", { since: r.since, until: r.until, grain: r.grain, plugin }),
    get("/api/v1/executions/timeseries", { since: r.prevSince, until: r.prevUntil, grain: r.grain, plugin }),
    get("/api/v1/executions/timeseries", { since: weekSince, until: r.until, grain: "day", plugin, plugin_buckets: "true" }),
  ]);
  const groups = loadErrorGroups(r);
  const others = Promise.all([loadRuns(), loadLive()]);
  try {
    const [cur, prev, week] = await series;
    if (!current()) return;
    drawKpis(cur, prev);
    drawCharts(cur);
    Object.assign(last, { cur, week });
    drawPlugins(cur, week);
    $("#plugin-names").replaceChildren(...cur.plugins.map((p) => new Option(p.plugin)));
    const errors = await groups;
    if (!current()) return;
    drawErrors(errors, cur);
    await others;
    if (state.run && current()) {
      await Promise.all([featuresKnown, accessKnown]);
      await openRun(state.run, true);
    }
  } catch (e) {
    if (!current()) return;
    if (e instanceof ApiError && e.status === 401) askForKey(`The key was not accepted: ${e.message}`);
    else showError(e);
  } finally {
    // Settled, so that a failed panel leaves no unhandled rejection behind.
    await Promise.allSettled([series, groups, others]);
    // A newer load draws the rest, and says when the page is loaded.
    if (!current()) return;
    if (!performance.getEntriesByName("dashboard-drawn").length) performance.mark("dashboard-drawn");
    // Storage last, at the foot of the page: its record count reads every row's index
    // entry, so it would slow the panels above if asked at the same time.
    await loadStorage().catch(showError);
    document.body.dataset.loading = "false";
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  }
}

for (const b of document.querySelectorAll("[data-window]")) {
  b.addEventListener("click", () => {
    state.window = b.dataset.window;
    writeState(state);
    resetPages();
    loadAll();
  });
}
$("#plugin-filter-clear").addEventListener("click", () => setPlugin(""));
for (const b of document.querySelectorAll("#plugins-table [data-sort]")) {
  b.addEventListener("click", () => {
    const [key, dir] = (state.sort || "runs:desc").split(":");
    state.sort = `${b.dataset.sort}:${key === b.dataset.sort && dir === "desc" ? "asc" : "desc"}`;
    writeState(state, false);
    if (last.cur) drawPlugins(last.cur, last.week);
  });
}
window.addEventListener("popstate", () => {
  state = readState();
  if (!state.run && $("#run-dialog").open) $("#run-dialog").close();
  resetPages();
  loadAll();
});

let started = false;
function start() {
  if (!started) {
    started = true;
    startLive();
  }
  return loadAll();
}

// The OpenAPI document needs no key: read it while the key is checked. With no key
// needed, or one kept from earlier in this tab, the panels are asked for at once too
// (a key that no longer works gets the same message from either).
const featuresKnown = detectFeatures();
let accessKnown = Promise.resolve(true);
(async () => {
  try {
    if (document.body.dataset.needsKey === "true" && !storedKey()) {
      await authenticate();
      return;
    }
    accessKnown = authenticate();
    const loading = start();
    const [allowed] = await Promise.all([accessKnown, featuresKnown]);
    if (allowed) $("#exports").hidden = !(features.export && features.scopes.includes("read"));
    await loading;
  } catch (e) {
    showError(e);
  }
})();
