// The kbroker console: one page, no build step, no dependencies. Everything it shows comes from the control
// plane's JSON endpoints and its server-sent events (/events); everything it changes goes through JSON POSTs
// to the same origin (control_http.py). Views are chosen by the URL's hash: #/topics, #/topics/NAME, ...
"use strict";

const view = document.getElementById("view");
let snapshot = null;            // the latest /events snapshot
const samples = [];             // [{time, totals}] for the charts, the last few minutes
const HISTORY = 180;
let detailRefresh = null;       // the open detail view's refresher, called on every snapshot

// -- helpers -------------------------------------------------------------------------------------

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function fmtBytes(n) {
  if (n == null) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function fmtNum(n) { return n == null ? "" : Number(n).toLocaleString("en-US"); }
function fmtTime(ms) { return ms == null || ms < 0 ? "" : new Date(ms).toISOString().replace("T", " ").replace("Z", ""); }

// The control plane's bearer token, when it has one (--control-token): asked for once, kept for the tab.
let token = sessionStorage.getItem("kbroker-token");
function authHeaders(h = {}) {
  if (token) h.Authorization = "Bearer " + token;
  return h;
}
function askToken() {
  if (askToken.open) return;
  askToken.open = true;
  const t = prompt("This control plane needs its token (kbroker serve --control-token):");
  askToken.open = false;
  if (t && t.trim()) { token = t.trim(); sessionStorage.setItem("kbroker-token", token); }
}
const delay = ms => new Promise(r => setTimeout(r, ms));

async function api(path, body) {
  const opts = body === undefined ? {headers: authHeaders()} :
    {method: "POST", headers: authHeaders({"Content-Type": "application/json"}), body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  if (r.status === 401) { askToken(); throw new Error("the control plane's token is needed"); }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}
function toast(msg, error) {
  const t = document.getElementById("toast");
  t.textContent = msg; t.className = error ? "error" : ""; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}
async function act(fn, ok) {
  try { const r = await fn(); if (ok) toast(ok); return r; } catch (e) { toast(e.message, true); return null; }
}

// A record field from the control plane: {"encoding": "utf-8"|"base64", "data": ...} or null.
function fieldBytes(f) {
  if (f == null) return null;
  if (f.encoding === "utf-8") return new TextEncoder().encode(f.data);
  const bin = atob(f.data); const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function showBytes(f, format, quiet) {
  const b = fieldBytes(f);
  if (b == null) return '<span class="muted">null</span>';
  if (format === "hex") return esc(Array.from(b, x => x.toString(16).padStart(2, "0")).join(" "));
  const text = new TextDecoder("utf-8", {fatal: false}).decode(b);
  if (format === "json") {
    try { return esc(JSON.stringify(JSON.parse(text), null, 2)); } catch (e) {
      return esc(text) + (quiet ? "" : ' <span class="tag">not JSON</span>');
    }
  }
  return esc(text);
}
// A key or value as the schema registry decodes it ({"schema_id", "schema_type", "json"}, from the control
// plane when the bytes carry a registered id); without one, the bytes as text.
function showDecoded(f, d, quiet) {
  if (d == null) return showBytes(f, "text", quiet);
  return `<span class="tag" data-testid="schema-id">schema id ${esc(d.schema_id)} (${esc(d.schema_type)})</span>\n` +
    esc(JSON.stringify(d.json, null, 2));
}
function showField(f, d, format, quiet) {
  return format === "decoded" ? showDecoded(f, d, quiet) : showBytes(f, format, quiet);
}

function table(headers, rows, attrs = "") {
  const th = headers.map(h => `<th${h.num ? ' class="num"' : ""}>${esc(h.label ?? h)}</th>`).join("");
  return `<table ${attrs}><thead><tr>${th}</tr></thead><tbody>${rows.join("") ||
    `<tr><td colspan="${headers.length}" class="muted">none</td></tr>`}</tbody></table>`;
}

// -- live updates ----------------------------------------------------------------------------------

// Server-sent events read with fetch rather than EventSource, which cannot send the token.
async function connect() {
  const live = document.getElementById("live");
  for (;;) {
    try {
      const r = await fetch("/events", {headers: authHeaders(), cache: "no-store"});
      if (r.status === 401) { askToken(); if (!token) { live.textContent = "no token"; } }
      else if (r.ok) {
        live.textContent = "live"; live.className = "live";
        const reader = r.body.getReader(), decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buf += decoder.decode(value, {stream: true});
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            onEvent(buf.slice(0, end));
            buf = buf.slice(end + 2);
          }
        }
      }
    } catch (e) { /* the broker went away: try again */ }
    live.className = "live off";
    if (live.textContent !== "no token") live.textContent = "reconnecting";
    await delay(2000);
  }
}

function onEvent(text) {
  let name = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trimStart();
  }
  if (name !== "snapshot" || !data) return;
  snapshot = JSON.parse(data);
  if (snapshot.totals) {
    samples.push(snapshot.totals);
    if (samples.length > HISTORY) samples.shift();
  }
  refresh();
}

function refresh() {
  const route = parseRoute();
  if (route.name === "overview") renderOverview();
  else if (route.name === "topics") renderTopicsTable();
  else if (route.name === "groups") renderGroupsTable();
  else if (route.name === "clients") renderClients();
  if (detailRefresh) detailRefresh();
}

// -- routing ---------------------------------------------------------------------------------------

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (!parts.length) return {name: "overview"};
  if (parts[0] === "topics" && parts[1]) return {name: "topic", topic: parts[1]};
  if (parts[0] === "groups" && parts[1]) return {name: "group", group: parts[1]};
  return {name: parts[0]};
}

function route() {
  const r = parseRoute();
  detailRefresh = null;
  document.querySelectorAll("header nav a").forEach(a => {
    const nav = a.dataset.nav;
    a.classList.toggle("active", nav === r.name || (nav === "topics" && r.name === "topic") ||
      (nav === "groups" && r.name === "group"));
  });
  if (r.name === "overview") { view.innerHTML = overviewHtml(); renderOverview(); }
  else if (r.name === "topics") showTopics();
  else if (r.name === "topic") showTopic(r.topic);
  else if (r.name === "groups") { view.innerHTML = '<h1>Consumer groups</h1><div id="groups-table"></div>'; renderGroupsTable(); }
  else if (r.name === "group") showGroup(r.group);
  else if (r.name === "clients") { view.innerHTML = '<h1>Clients</h1><div id="clients"></div>'; renderClients(); }
  else if (r.name === "brokers") showBrokers();
  else view.innerHTML = "<h1>Not found</h1>";
}

// -- overview: numbers and charts ---------------------------------------------------------------

// Latency over each interval, from the difference of two snapshots' histogram buckets (metrics.py).
function intervalLatency(a, b, name, q) {
  const x = (a.latency_ms[name] || {}), y = b.latency_ms[name];
  if (!y) return null;
  const n = y.count - (x.count || 0);
  if (n <= 0) return null;
  if (q == null) return (y.sum - (x.sum || 0)) / n;
  let seen = 0;
  for (let i = 0; i < y.buckets.length; i++) {
    seen += y.buckets[i] - ((x.buckets || [])[i] || 0);
    if (seen >= q * n) return i < b.latency_bounds_ms.length ? b.latency_bounds_ms[i] : b.latency_bounds_ms.at(-1);
  }
  return null;
}
const CHARTS = [
  {id: "messages", title: "Messages in / s", series: [["in", t => t.messages_in]]},
  {id: "bytes", title: "Bytes / s", series: [["in", t => t.bytes_in], ["out", t => t.bytes_out]], bytes: true},
  {id: "requests", title: "Requests / s", series: [["Produce", t => t.requests.Produce || 0],
    ["Fetch", t => t.requests.FetchConsumer || 0], ["all", t => Object.values(t.requests).reduce((a, b) => a + b, 0)]]},
  {id: "latency", title: "Produce latency (ms)", interval: true,
    series: [["p99", (a, b) => intervalLatency(a, b, "Produce", 0.99)], ["mean", (a, b) => intervalLatency(a, b, "Produce")],
             ["p50", (a, b) => intervalLatency(a, b, "Produce", 0.5)]]},
];
const COLORS = ["#2563eb", "#16a34a", "#c2410c"];

function overviewHtml() {
  return `<h1>Overview</h1><div class="cards" id="cards"></div><div class="charts">${CHARTS.map(c =>
    `<div class="chart"><div class="title"><span>${esc(c.title)}</span><span id="legend-${c.id}"></span></div>
     <canvas id="chart-${c.id}" width="760" height="280" data-testid="chart-${c.id}"></canvas></div>`).join("")}</div>`;
}

function renderOverview() {
  const cards = document.getElementById("cards");
  if (!cards || !snapshot) return;
  const s = snapshot, t = s.totals || {};
  const lag = s.groups.reduce((a, g) => a + g.lag, 0);
  const card = (k, v, id) => `<div class="card"><div class="k">${esc(k)}</div><div class="v" data-testid="${id}">${esc(v)}</div></div>`;
  cards.innerHTML = card("Topics", s.topics.length, "count-topics") +
    card("Records stored", fmtNum(s.topics.reduce((a, x) => a + x.records, 0)), "count-records") +
    card("Stored", fmtBytes(s.topics.reduce((a, x) => a + x.size_bytes, 0)), "count-bytes") +
    card("Consumer groups", s.groups.length, "count-groups") + card("Total lag", fmtNum(lag), "count-lag") +
    card("Connections", s.clients.length, "count-clients") + card("Messages in", fmtNum(t.messages_in), "count-in");
  for (const c of CHARTS) drawChart(c);
}

function drawChart(c) {
  const canvas = document.getElementById("chart-" + c.id);
  if (!canvas) return;
  const g = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 36;
  g.clearRect(0, 0, W, H);
  const lines = c.series.map(([name, get]) => {
    const pts = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i], dt = b.time - a.time;
      if (c.interval) { const v = get(a, b); if (v != null) pts.push([b.time, v]); }
      else if (dt > 0) pts.push([b.time, Math.max(0, (get(b) - get(a)) / dt)]);
    }
    return {name, pts};
  });
  const all = lines.flatMap(l => l.pts);
  const max = Math.max(1, ...all.map(p => p[1]));
  const t1 = samples.length ? samples[samples.length - 1].time : 0, t0 = samples.length ? samples[0].time : 0;
  g.strokeStyle = "#e4e7ec"; g.fillStyle = "#667085"; g.font = "20px system-ui"; g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = pad / 2 + (H - pad) * i / 2;
    g.beginPath(); g.moveTo(pad * 2, y); g.lineTo(W, y); g.stroke();
    const v = max * (1 - i / 2);
    g.fillText(c.bytes ? fmtBytes(Math.round(v)) : (v >= 100 ? Math.round(v) : v.toFixed(1)), 0, y + 6);
  }
  lines.forEach((l, i) => {
    g.strokeStyle = COLORS[i % COLORS.length]; g.lineWidth = 3; g.beginPath();
    l.pts.forEach(([t, v], j) => {
      const x = pad * 2 + (W - pad * 2) * (t - t0) / (t1 - t0 || 1), y = pad / 2 + (H - pad) * (1 - v / max);
      j ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  });
  const last = l => l.pts.length ? l.pts[l.pts.length - 1][1] : null;
  document.getElementById("legend-" + c.id).innerHTML = lines.map((l, i) => {
    const v = last(l);
    return `<span style="color:${COLORS[i % COLORS.length]}">${esc(l.name)} ${v == null ? "-" :
      c.bytes ? fmtBytes(Math.round(v)) : v.toFixed(1)}</span>`;
  }).join(" &nbsp;");
}

// -- topics ----------------------------------------------------------------------------------------

function showTopics() {
  view.innerHTML = `<h1>Topics</h1>
    <form class="inline" id="create-topic">
      <label>Name <input name="name" required data-testid="new-topic-name"></label>
      <label>Partitions <input name="partitions" type="number" min="1" value="1" style="width:6em" data-testid="new-topic-partitions"></label>
      <label>Configs (k=v, comma separated) <input name="configs" placeholder="retention.ms=60000" size="30"></label>
      <button type="submit" data-testid="create-topic">Create topic</button>
    </form><div id="topics-table"></div>`;
  document.getElementById("create-topic").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target), configs = {};
    String(f.get("configs") || "").split(",").map(s => s.trim()).filter(Boolean).forEach(kv => {
      const i = kv.indexOf("="); configs[kv.slice(0, i).trim()] = kv.slice(i + 1).trim();
    });
    const r = await act(() => api("/topics", {name: f.get("name"), partitions: Number(f.get("partitions")), configs}),
      "created " + f.get("name"));
    if (r) { ev.target.reset(); renderTopicsTable(await api("/topics")); }
  });
  renderTopicsTable();
}

function renderTopicsTable(topics) {
  const el = document.getElementById("topics-table");
  if (!el) return;
  topics = topics || (snapshot && snapshot.topics);
  if (!topics) { api("/topics").then(renderTopicsTable); return; }
  el.innerHTML = table(["Topic", {label: "Partitions", num: 1}, {label: "Records", num: 1}, {label: "Size", num: 1}, "Configs"],
    topics.map(t => `<tr data-topic="${esc(t.name)}"><td><a href="#/topics/${encodeURIComponent(t.name)}">${esc(t.name)}</a>
      ${t.internal ? '<span class="tag">internal</span>' : ""}</td><td class="num">${t.partitions}</td>
      <td class="num">${fmtNum(t.records)}</td><td class="num">${fmtBytes(t.size_bytes)}</td>
      <td>${Object.entries(t.configs).map(([k, v]) => `<span class="tag">${esc(k)}=${esc(v)}</span>`).join(" ")}</td></tr>`),
    'data-testid="topics"');
}

async function showTopic(name) {
  const t = await act(() => api("/topics/" + encodeURIComponent(name)));
  if (!t) { view.innerHTML = `<h1>${esc(name)}</h1><p class="muted">no such topic</p>`; return; }
  const parts = t.partitions.map(p => `<option value="${p.partition}">${p.partition}</option>`).join("");
  view.innerHTML = `<h1>Topic ${esc(t.name)} <button class="danger" id="delete-topic">Delete</button></h1>
    <div class="muted">id ${esc(t.topic_id)}</div>
    <h2>Partitions</h2><div id="partitions"></div>
    <h2>Records</h2>
    <form class="inline" id="browse">
      <label>Partition <select name="partition" data-testid="browse-partition">${parts}</select></label>
      <label>From <select name="mode" data-testid="browse-mode"><option value="newest">newest</option>
        <option value="offset">offset</option><option value="timestamp">time</option></select></label>
      <label>Offset / time <input name="at" placeholder="0 or 2024-01-01T00:00:00Z" data-testid="browse-at"></label>
      <label>Limit <input name="limit" type="number" value="50" min="1" max="1000" style="width:6em"></label>
      <label>Show as <select name="format" data-testid="browse-format"><option>text</option><option>json</option><option>hex</option>
        <option value="decoded">decoded (schema registry)</option></select></label>
      <button type="submit" data-testid="browse">Show records</button>
    </form><div id="records"></div>
    <h2>Produce a record</h2>
    <form class="inline" id="produce">
      <label>Partition <select name="partition">${parts}</select></label>
      <label>Key <input name="key" data-testid="produce-key"></label>
      <label>Value <textarea name="value" rows="1" cols="40" data-testid="produce-value"></textarea></label>
      <label>Headers (JSON object) <input name="headers" placeholder='{"source": "console"}'></label>
      <button type="submit" data-testid="produce">Produce</button>
    </form>
    <h2>Configs</h2><div id="configs"></div>`;
  renderPartitions(t); renderConfigs(t);
  detailRefresh = async () => {
    const fresh = await api("/topics/" + encodeURIComponent(name)).catch(() => null);
    if (fresh && parseRoute().topic === name) renderPartitions(fresh);
  };
  document.getElementById("delete-topic").addEventListener("click", async () => {
    if (!confirm(`Delete topic ${name} and all its records?`)) return;
    if (await act(() => api(`/topics/${encodeURIComponent(name)}/delete`, {}), "deleted " + name)) location.hash = "#/topics";
  });
  const browse = document.getElementById("browse");
  browse.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(browse), q = new URLSearchParams({partition: f.get("partition"), limit: f.get("limit")});
    const at = String(f.get("at") || "").trim();
    if (f.get("mode") === "newest") q.set("newest", "1");
    else if (f.get("mode") === "offset") q.set("offset", at || "0");
    else q.set("timestamp", /^\d+$/.test(at) ? at : String(Date.parse(at)));
    const recs = await act(() => api(`/topics/${encodeURIComponent(name)}/records?${q}`));
    if (!recs) return;
    // Until the user picks a format, records whose values the schema registry decodes are shown decoded.
    const format = browse.querySelector("[name=format]");
    if (!formatChosen && recs.some(r => r.value_decoded)) format.value = "decoded";
    renderRecords(recs, format.value);
  });
  let formatChosen = false;
  browse.querySelector("[name=format]").addEventListener("change", () => { formatChosen = true; browse.requestSubmit(); });
  document.getElementById("produce").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    let headers = {};
    try { headers = f.get("headers") ? JSON.parse(f.get("headers")) : {}; } catch (e) { toast("headers: " + e.message, true); return; }
    const r = await act(() => api(`/topics/${encodeURIComponent(name)}/records`, {
      partition: Number(f.get("partition")), key: f.get("key") || null, value: f.get("value"), headers}));
    if (r) { toast(`produced at offset ${r.offset} of partition ${r.partition}`); browse.requestSubmit(); }
  });
  browse.requestSubmit();
}

function renderPartitions(t) {
  const el = document.getElementById("partitions");
  if (!el) return;
  el.innerHTML = table([{label: "Partition", num: 1}, {label: "Log start", num: 1}, {label: "High watermark", num: 1},
    {label: "Log end", num: 1}, {label: "Records", num: 1}, {label: "Size", num: 1}, {label: "Segments", num: 1}],
    t.partitions.map(p => `<tr><td class="num">${p.partition}</td><td class="num">${fmtNum(p.log_start_offset)}</td>
      <td class="num">${fmtNum(p.high_watermark)}</td><td class="num">${fmtNum(p.log_end_offset)}</td>
      <td class="num">${fmtNum(p.high_watermark - p.log_start_offset)}</td><td class="num">${fmtBytes(p.size_bytes)}</td>
      <td class="num">${p.segments}</td></tr>`), 'data-testid="partitions"');
}

function renderRecords(recs, format) {
  document.getElementById("records").innerHTML = table([{label: "Offset", num: 1}, "Timestamp", "Key", "Value", "Headers"],
    recs.map(r => `<tr data-offset="${r.offset}"><td class="num">${r.offset}</td><td>${fmtTime(r.timestamp)}</td>
      <td><pre>${showField(r.key, r.key_decoded, format, true)}</pre></td><td><pre>${showField(r.value, r.value_decoded, format)}</pre></td>
      <td>${r.headers.map(h => `<pre>${esc(h.key)}: ${showBytes(h.value, format === "decoded" ? "text" : format, true)}</pre>`).join("")}</td></tr>`),
    'data-testid="records"');
}

function renderConfigs(t) {
  const el = document.getElementById("configs");
  el.innerHTML = table(["Config", "Value", ""], t.configs.map(c => `<tr data-config="${esc(c.name)}">
    <td title="${esc(c.doc)}">${esc(c.name)} ${c.default ? '<span class="muted">default</span>' : '<span class="tag">set</span>'}</td>
    <td><input value="${esc(c.value)}" size="28"></td>
    <td><button class="plain" data-save>Save</button> ${c.default ? "" : '<button class="plain" data-reset>Reset</button>'}</td></tr>`),
    'data-testid="configs"');
  el.querySelectorAll("tr[data-config]").forEach(row => {
    const key = row.dataset.config, save = row.querySelector("[data-save]"), reset = row.querySelector("[data-reset]");
    const send = async value => {
      const fresh = await act(() => api(`/topics/${encodeURIComponent(t.name)}/configs`, {[key]: value}),
        value == null ? `${key} back to its default` : `${key} = ${value}`);
      if (fresh) renderConfigs(fresh);
    };
    save.addEventListener("click", () => send(row.querySelector("input").value));
    if (reset) reset.addEventListener("click", () => send(null));
  });
}

// -- groups ----------------------------------------------------------------------------------------

function renderGroupsTable() {
  const el = document.getElementById("groups-table");
  if (!el) return;
  if (!snapshot) { api("/groups").then(gs => drawGroups(el, gs)); return; }
  drawGroups(el, snapshot.groups);
}
function drawGroups(el, groups) {
  el.innerHTML = table(["Group", "State", {label: "Members", num: 1}, {label: "Lag", num: 1}],
    groups.map(g => `<tr data-group="${esc(g.group_id)}"><td><a href="#/groups/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a></td>
      <td><span class="tag state-${esc(g.state)}">${esc(g.state)}</span></td><td class="num">${g.members}</td>
      <td class="num" data-testid="group-lag">${fmtNum(g.lag)}</td></tr>`), 'data-testid="groups"');
}

async function showGroup(id) {
  view.innerHTML = `<h1>Consumer group ${esc(id)} <span id="group-state"></span></h1>
    <h2>Members</h2><div id="members"></div><h2>Offsets and lag</h2><div id="lag"></div>
    <h2>Reset offsets</h2><div id="reset"></div>`;
  let lastState = null;
  const render = async () => {
    const g = await api("/groups/" + encodeURIComponent(id)).catch(() => null);
    if (!g || parseRoute().group !== id) return;
    document.getElementById("group-state").innerHTML = `<span class="tag state-${esc(g.state)}" data-testid="group-state">${esc(g.state)}</span>`;
    document.getElementById("members").innerHTML = table(["Member", "Client id", "Host", "Assignment"],
      g.members.map(m => `<tr><td>${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.client_host)}</td>
        <td>${m.assignment ? esc(JSON.stringify(m.assignment)) : ""}</td></tr>`));
    document.getElementById("lag").innerHTML = table(["Topic", {label: "Partition", num: 1}, {label: "Committed", num: 1},
      {label: "Log end", num: 1}, {label: "Lag", num: 1}],
      g.lag.map(r => `<tr data-partition="${esc(r.topic)}-${r.partition}"><td>${esc(r.topic)}</td><td class="num">${r.partition}</td>
        <td class="num">${fmtNum(r.offset)}</td><td class="num">${fmtNum(r.high_watermark)}</td>
        <td class="num" data-testid="lag">${fmtNum(r.lag)}</td></tr>`), 'data-testid="group-lag-table"');
    const empty = g.members.length === 0;
    if (empty !== lastState) {
      lastState = empty;
      const topics = [...new Set(g.lag.map(r => r.topic))];
      document.getElementById("reset").innerHTML = empty ? `<form class="inline" id="reset-form">
        <label>Topic <select name="topic"><option value="">all</option>${topics.map(t => `<option>${esc(t)}</option>`).join("")}</select></label>
        <label>To <select name="to"><option>earliest</option><option>latest</option><option>offset</option><option>timestamp</option></select></label>
        <label>Offset / time (ms) <input name="value"></label><button type="submit" data-testid="reset-offsets">Reset offsets</button></form>`
        : '<p class="muted">Only an empty group\'s offsets can be reset: stop its consumers first.</p>';
      const form = document.getElementById("reset-form");
      if (form) form.addEventListener("submit", async ev => {
        ev.preventDefault();
        const f = new FormData(form), body = {to: f.get("to")};
        if (f.get("topic")) body.topic = f.get("topic");
        if (f.get("value")) body.value = Number(f.get("value"));
        if (await act(() => api(`/groups/${encodeURIComponent(id)}/reset-offsets`, body), "offsets reset")) render();
      });
    }
  };
  detailRefresh = render;
  render();
}

// -- clients and brokers ---------------------------------------------------------------------------

function renderClients() {
  const el = document.getElementById("clients");
  if (!el || !snapshot) return;
  el.innerHTML = table([{label: "Connection", num: 1}, "Listener", "Peer", "Client id", "Software", "Principal"],
    snapshot.clients.map(c => `<tr><td class="num">${c.connection}</td><td>${esc(c.listener)}</td><td>${esc(c.peer)}</td>
      <td>${esc(c.client_id)}</td><td>${esc(c.software_name)} ${esc(c.software_version)}</td><td>${esc(c.principal)}</td></tr>`),
    'data-testid="clients"') + "<h2>Latest requests</h2>" +
    table(["Time", "API", {label: "Version", num: 1}, "Client id", {label: "Connection", num: 1}, "Peer"],
      snapshot.requests.slice().reverse().map(r => `<tr><td>${fmtTime(r.time * 1000)}</td><td>${esc(r.api)}</td>
        <td class="num">${r.api_version}</td><td>${esc(r.client_id)}</td><td class="num">${r.connection}</td><td>${esc(r.peer)}</td></tr>`),
      'data-testid="requests"');
}

async function showBrokers() {
  const bs = await act(() => api("/brokers"));
  if (!bs) return;
  view.innerHTML = "<h1>Brokers</h1>" + table(["Node", "Address", "Listeners", "Control plane", "Storage", "Cluster id"],
    bs.map(b => `<tr><td>${b.node_id}</td><td>${esc(b.host)}:${b.port}</td>
      <td>${b.listeners.map(l => `${esc(l.name)} (${esc(l.security_protocol)}) ${esc(l.host)}:${l.port}`).join("<br>")}</td>
      <td>${esc(b.control)}</td><td>${esc(b.storage)} ${esc(b.data_dir)}</td><td>${esc(b.cluster_id)}</td></tr>`),
    'data-testid="brokers"');
}

window.addEventListener("hashchange", route);
route();
connect();
