"""The viewer's single page: HTML, CSS and plain JavaScript (no build step, no CDN, works offline).

State lives in the URL hash (``#run=0&status=completed&open=12``, ``#tab=compare&task=...``), so
every view can be linked to, reloaded, and opened by a headless browser in tests.
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentkit view</title>
<style>
:root { --bg:#f6f7f9; --panel:#fff; --ink:#1f2328; --muted:#656d76; --line:#d8dee4; --accent:#4263eb;
        --pass:#2f9e44; --fail:#e03131; --warn:#f08c00; --think:#f3f0ff; --tool:#fff9db; --obs:#f1f3f5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink); background:var(--bg); }
header { display:flex; align-items:center; gap:18px; padding:10px 18px; background:#1f2328; color:#fff; }
header h1 { font-size:16px; margin:0; font-weight:600; letter-spacing:.2px; }
header .runs { display:flex; gap:6px; flex-wrap:wrap; }
header .runs button { background:#32383f; color:#fff; border:1px solid #444c56; border-radius:6px; padding:4px 10px; cursor:pointer; }
header .runs button.active { background:var(--accent); border-color:var(--accent); }
header .runs button .muted { color:rgba(255,255,255,.72); }
nav.tabs { display:flex; gap:4px; padding:8px 18px 0; border-bottom:1px solid var(--line); background:var(--panel); }
nav.tabs a { padding:7px 14px; color:var(--muted); text-decoration:none; border-bottom:2px solid transparent; }
nav.tabs a.active { color:var(--ink); border-color:var(--accent); font-weight:600; }
main { padding:14px 18px; }
.filters { display:flex; flex-wrap:wrap; gap:8px; align-items:center; margin-bottom:10px; }
.filters select, .filters input { padding:5px 7px; border:1px solid var(--line); border-radius:6px; background:#fff; font:inherit; }
.filters select { max-width:170px; }
.filters input[type=number] { width:96px; }
.filters .count { color:var(--muted); margin-left:auto; }
.split { display:grid; grid-template-columns:minmax(520px, 58%) 1fr; gap:14px; align-items:start; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; }
table { width:100%; border-collapse:collapse; font-size:13px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid #eef1f4; white-space:nowrap; }
th { color:var(--muted); font-weight:600; background:#fafbfc; position:sticky; top:0; }
td.reason { color:var(--muted); max-width:200px; overflow:hidden; text-overflow:ellipsis; }
td.task { max-width:170px; overflow:hidden; text-overflow:ellipsis; }
.table-card { overflow-x:auto; }
tr.row { cursor:pointer; }
tr.row:hover { background:#f1f5ff; }
tr.row.selected { background:#e7edff; }
.badge { display:inline-block; padding:1px 7px; border-radius:10px; font-size:12px; font-weight:600; background:#e9ecef; color:#495057; }
.badge.pass { background:#d3f9d8; color:#1b6e2f; } .badge.fail { background:#ffe3e3; color:#a51d1d; }
.badge.warn { background:#fff3bf; color:#8a5a00; }
.pager { display:flex; gap:8px; align-items:center; justify-content:flex-end; padding:8px; }
.pager button { border:1px solid var(--line); background:#fff; border-radius:6px; padding:3px 10px; cursor:pointer; }
.detail { padding:14px 16px; min-height:300px; position:sticky; top:10px; max-height:calc(100vh - 20px); overflow:auto; }
.meta code { word-break:break-all; white-space:normal; }
.detail h2 { font-size:15px; margin:0 0 6px; word-break:break-all; }
.meta { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:6px 14px; margin:10px 0 12px; font-size:12.5px; }
.meta div span { color:var(--muted); display:block; font-size:11.5px; }
.verdict { padding:8px 10px; border-radius:6px; margin:8px 0; }
.verdict.pass { background:#ebfbee; border:1px solid #b2f2bb; } .verdict.fail { background:#fff5f5; border:1px solid #ffc9c9; }
.msg { border-left:3px solid var(--line); padding:6px 10px; margin:8px 0; background:#fff; border-radius:0 6px 6px 0; }
.msg .role { font-size:11.5px; font-weight:700; text-transform:uppercase; letter-spacing:.4px; color:var(--muted); margin-bottom:3px; }
.msg.system { border-color:#adb5bd; } .msg.user { border-color:var(--accent); } .msg.assistant { border-color:#7950f2; }
.msg.tool { border-color:var(--warn); background:var(--obs); } .msg.tool.error { border-color:var(--fail); background:#fff5f5; }
pre { margin:4px 0; white-space:pre-wrap; word-break:break-word; font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
details.think { background:var(--think); border-radius:6px; padding:4px 8px; margin:4px 0; }
details.think summary { cursor:pointer; color:#5f3dc4; font-size:12.5px; }
.call { background:var(--tool); border:1px solid #ffe066; border-radius:6px; padding:5px 8px; margin:5px 0; }
.call .name { font-weight:700; font-family:ui-monospace,monospace; }
.empty { color:var(--muted); padding:30px; text-align:center; }
.plots { display:grid; grid-template-columns:repeat(auto-fill, minmax(460px, 1fr)); gap:14px; }
.plots img { width:100%; border:1px solid var(--line); border-radius:8px; background:#fff; }
.compare { display:grid; gap:14px; }
.compare .col { padding:12px 14px; min-width:0; }
.compare .col h3 { margin:0 0 6px; font-size:14px; }
.compare .col h2 { font-size:14px; }
.muted { color:var(--muted); }
button.link { background:none; border:none; color:var(--accent); cursor:pointer; padding:0; font:inherit; }
</style>
</head>
<body>
<header><h1>agentkit view</h1><div class="runs" id="runs"></div></header>
<nav class="tabs"><a href="#" data-tab="table" id="tab-table">Trajectories</a><a href="#" data-tab="plots" id="tab-plots">Plots</a>
<a href="#" data-tab="compare" id="tab-compare">Compare runs</a></nav>
<main id="main"><div class="empty">loading…</div></main>
<script>
"use strict";
const FILTERS = ["status", "verdict", "strategy", "env", "family", "ability", "min_turns", "max_turns", "q", "sort"];
let RUNS = [];
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const fmt = (x, d = 2) => x === null || x === undefined ? "–" : (typeof x === "number" && !Number.isInteger(x) ? x.toFixed(d) : x);

function state() {
  const s = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
  s.run = Number(s.run || 0); s.page = Number(s.page || 0); s.tab = s.tab || "table";
  return s;
}
function go(changes, replace) {
  const s = {...state(), ...changes};
  for (const k of Object.keys(s)) if (s[k] === "" || s[k] === null || s[k] === undefined) delete s[k];
  const hash = "#" + new URLSearchParams(s).toString();
  if (replace) history.replaceState(null, "", hash); else location.hash = hash;
  render();
}
async function api(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}
function verdictBadge(passed) {
  if (passed === null || passed === undefined) return '<span class="badge">no verdict</span>';
  return passed ? '<span class="badge pass">passed</span>' : '<span class="badge fail">failed</span>';
}
function statusBadge(status) {
  return `<span class="badge ${status === "completed" ? "" : "warn"}">${esc(status)}</span>`;
}

function renderRuns(s) {
  document.getElementById("runs").innerHTML = RUNS.map(r =>
    `<button class="${r.run === s.run ? "active" : ""}" data-run="${r.run}" title="${esc(r.path)}">${esc(r.name)}
     <span class="muted">· ${r.trajectories} · ${r.judged ? Math.round(100 * r.passed / r.judged) + "% pass" : "–"}</span></button>`).join("");
  document.querySelectorAll("#runs button").forEach(b => b.onclick = () => go({run: b.dataset.run, page: 0, open: ""}));
  document.querySelectorAll("nav.tabs a").forEach(a => {
    a.classList.toggle("active", a.dataset.tab === s.tab);
    a.onclick = e => { e.preventDefault(); go({tab: a.dataset.tab}); };
  });
}

function select(name, values, current, label) {
  return `<select data-filter="${name}" id="filter-${name}" aria-label="${label}"><option value="">${label}: all</option>` +
    values.map(v => `<option ${v === current ? "selected" : ""}>${esc(v)}</option>`).join("") + "</select>";
}

async function renderTable(s) {
  const run = RUNS[s.run];
  const params = new URLSearchParams({run: s.run, page: s.page, size: 50});
  for (const k of FILTERS) if (s[k]) params.set(k, s[k]);
  const data = await api("/api/trajectories?" + params);
  const f = run.facets;
  const pages = Math.max(1, Math.ceil(data.total / data.size));
  const rows = data.rows.map(r => `<tr class="row ${String(r.i) === s.open ? "selected" : ""}" data-i="${r.i}">
      <td>${esc(r.family)}</td><td class="task" title="${esc(r.id)}">${esc(r.task_id)}</td><td>${statusBadge(r.status)}</td><td>${verdictBadge(r.passed)}</td>
      <td>${fmt(r.reward)}</td><td>${r.turns}</td><td>${r.tool_calls}${r.tool_errors ? ` <span class="badge fail">${r.tool_errors} err</span>` : ""}</td>
      <td>${r.completion_tokens || "~" + Math.round(r.chars / 4)}</td><td class="reason" title="${esc(r.reason)}">${esc(r.reason)}</td></tr>`).join("");
  document.getElementById("main").innerHTML = `
    <div class="filters" id="filters">
      ${select("status", f.status, s.status, "status")}
      ${select("verdict", ["passed", "failed", "none"], s.verdict, "verdict")}
      ${select("strategy", f.strategy, s.strategy, "strategy")}
      ${select("env", f.env, s.env, "env")}
      ${select("family", f.family, s.family, "family")}
      ${select("ability", f.ability, s.ability, "ability")}
      <input type="number" min="0" placeholder="min turns" data-filter="min_turns" value="${esc(s.min_turns || "")}">
      <input type="number" min="0" placeholder="max turns" data-filter="max_turns" value="${esc(s.max_turns || "")}">
      <input type="search" placeholder="search id / reason" data-filter="q" value="${esc(s.q || "")}">
      <select data-filter="sort" aria-label="sort"><option value="">file order</option>
        ${["turns", "-turns", "-chars", "-tool_errors", "-reward", "reward"].map(v => `<option ${v === s.sort ? "selected" : ""}>${v}</option>`).join("")}</select>
      <span class="count" id="count">${data.total} of ${run.trajectories} trajectories</span>
    </div>
    <div class="split">
      <div class="card table-card"><table id="traj-table"><thead><tr><th>family</th><th>task</th><th>status</th><th>verdict</th><th>reward</th>
        <th>turns</th><th>tools</th><th title="completion tokens (~ chars/4 when the run has no counts)">tokens</th><th>reason</th></tr></thead><tbody>${rows ||
        '<tr><td colspan="9" class="empty">no trajectory matches these filters</td></tr>'}</tbody></table>
        <div class="pager"><button id="prev" ${s.page <= 0 ? "disabled" : ""}>‹ prev</button>
        <span class="muted">page ${s.page + 1} / ${pages}</span><button id="next" ${s.page + 1 >= pages ? "disabled" : ""}>next ›</button></div></div>
      <div class="card detail" id="detail"><div class="empty">select a trajectory</div></div>
    </div>`;
  document.querySelectorAll("[data-filter]").forEach(el => el.onchange = () => go({[el.dataset.filter]: el.value, page: 0}));
  document.querySelectorAll("tr.row").forEach(tr => tr.onclick = () => go({open: tr.dataset.i}, true));
  document.getElementById("prev").onclick = () => go({page: s.page - 1});
  document.getElementById("next").onclick = () => go({page: s.page + 1});
  if (s.open !== undefined && s.open !== "") await renderDetail(s.run, Number(s.open), document.getElementById("detail"), true);
}

function renderContent(text) {
  const parts = [];
  const re = /<think>([\s\S]*?)(<\/think>|$)/g;
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) parts.push(`<pre>${esc(text.slice(last, m.index))}</pre>`);
    parts.push(`<details class="think"><summary>thinking · ${m[1].length} chars</summary><pre>${esc(m[1].trim())}</pre></details>`);
    last = re.lastIndex;
    if (m[0].length === 0) break;
  }
  if (last < text.length && text.slice(last).trim()) parts.push(`<pre>${esc(text.slice(last))}</pre>`);
  return parts.join("");
}
function prettyArgs(args) {
  try { return JSON.stringify(JSON.parse(args), null, 2); } catch (e) { return args; }
}
function renderMessages(messages) {
  return messages.map(m => {
    if (m.role === "system") return `<div class="msg system"><details><summary class="role">system · ${(m.content || "").length} chars</summary><pre>${esc(m.content)}</pre></details></div>`;
    if (m.role === "tool") {
      const error = /^\s*(error|traceback)/i.test(m.content || "");
      return `<div class="msg tool ${error ? "error" : ""}"><div class="role">observation${m.name ? " · " + esc(m.name) : ""} <span class="muted">${esc(m.tool_call_id || "")}</span></div><pre>${esc(m.content)}</pre></div>`;
    }
    const calls = (m.tool_calls || []).map(c => `<div class="call"><span class="name">${esc(c.function.name)}</span> <span class="muted">${esc(c.id)}</span><pre>${esc(prettyArgs(c.function.arguments))}</pre></div>`).join("");
    return `<div class="msg ${m.role}"><div class="role">${m.role}</div>${renderContent(m.content || "")}${calls}</div>`;
  }).join("");
}
function renderRecord(rec, compact) {
  const st = rec.stats || {}, sec = st.seconds || {}, pv = rec.provenance || {}, v = rec.verdict;
  const verdict = v ? `<div class="verdict ${v.passed ? "pass" : "fail"}">${verdictBadge(v.passed)} <b>reward ${fmt(rec.reward)}</b> — ${esc(v.reason)}</div>`
                    : `<div class="verdict fail">${statusBadge(rec.status)} ${esc(rec.error || "no verdict")}</div>`;
  return `<h2>${esc(rec.id)}</h2><div>${statusBadge(rec.status)} <span class="muted">${esc(rec.task.env)} · ${esc(pv.strategy || "")} · ${esc(pv.model || "")}</span></div>
    ${verdict}
    <div class="meta">
      <div><span>turns</span>${st.turns ?? "–"}</div><div><span>tool calls / errors</span>${st.tool_calls ?? 0} / ${st.tool_errors ?? 0}</div>
      <div><span>tokens prompt / completion</span>${st.prompt_tokens ?? 0} / ${st.completion_tokens ?? 0}</div>
      <div><span>seconds model / tools / verify</span>${fmt(sec.model)} / ${fmt(sec.tools, 3)} / ${fmt(sec.verify, 3)}</div>
      <div><span>total seconds</span>${fmt(sec.total)}</div>
      <div><span>chat template sha256</span><code title="${esc(pv.chat_template_sha256 || "")}">${esc((pv.chat_template_sha256 || "–").slice(0, 12))}</code></div>
      ${compact ? "" : `<div><span>sampling</span><code>${esc(JSON.stringify(pv.sampling || {}))}</code></div><div><span>task</span>${esc(rec.task.id)}</div>`}
    </div>
    <div class="msgs">${renderMessages(rec.messages || [])}</div>`;
}
async function renderDetail(run, i, el, withCompare) {
  el.innerHTML = '<div class="empty">loading…</div>';
  const data = await api(`/api/trajectory?run=${run}&i=${i}`);
  const rec = data.record;
  el.innerHTML = (withCompare && RUNS.length > 1 ? `<div style="float:right"><button class="link" id="compare-btn">compare this task across runs →</button></div>` : "") + renderRecord(rec, false);
  el.dataset.loaded = rec.id;
  const b = document.getElementById("compare-btn");
  if (b) b.onclick = () => go({tab: "compare", task: rec.task.id});
}

async function renderPlots(s) {
  const names = await api(`/api/plots?run=${s.run}`);
  document.getElementById("main").innerHTML = `<div class="plots" id="plots">${names.map(n =>
    `<img alt="${esc(n)}" src="/plots/${s.run}/${encodeURIComponent(n)}">`).join("")}</div>`;
}

async function renderCompare(s) {
  const main = document.getElementById("main");
  const input = `<div class="filters"><input id="compare-task" type="search" placeholder="task id" value="${esc(s.task || "")}" style="min-width:320px">
    <button id="compare-go">compare</button><span class="muted">the same task in each run, side by side</span></div>`;
  if (!s.task) { main.innerHTML = input + '<div class="empty">open a trajectory and choose “compare”, or type a task id</div>'; bindCompare(); return; }
  const data = await api(`/api/compare?task_id=${encodeURIComponent(s.task)}`);
  main.innerHTML = input + `<div class="compare" id="compare" style="grid-template-columns:repeat(${data.columns.length}, minmax(0, 1fr))">` +
    data.columns.map(c => `<div class="card col"><h3>${esc(c.name)} <span class="muted">· ${c.trajectories.length} trajectories of this task</span></h3>` +
      (c.trajectories.length ? c.trajectories.slice(0, 1).map(t => renderRecord(t.record, true)).join("") : '<div class="empty">not in this run</div>') + "</div>").join("") + "</div>";
  bindCompare();
}
function bindCompare() {
  const go_ = () => go({task: document.getElementById("compare-task").value});
  document.getElementById("compare-go").onclick = go_;
  document.getElementById("compare-task").onchange = go_;
}

async function render() {
  const s = state();
  renderRuns(s);
  try {
    if (s.tab === "plots") await renderPlots(s);
    else if (s.tab === "compare") await renderCompare(s);
    else await renderTable(s);
    document.body.dataset.ready = "1";
  } catch (e) {
    document.getElementById("main").innerHTML = `<div class="empty">${esc(e.message)}</div>`;
  }
}
window.addEventListener("hashchange", render);
api("/api/runs").then(r => { RUNS = r; render(); });
</script>
</body>
</html>
"""
