//! The page's style and script, served from memory. The script keeps the list live from
//! `/api/events` (rows updated, added and removed in place), sorts and filters it, keeps one
//! semaphore's page live and draws its plot, and sends the edit forms with the token (taken from
//! the address's `?token=`, then kept in the tab's `sessionStorage` and removed from the address
//! bar, or typed into `#token`) in the header `X-Shmsem-Token`. It writes text with
//! `textContent`, never as HTML.

use axum::{http::header, response::IntoResponse};

/// `GET /assets/style.css`.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// `GET /assets/app.js`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

const STYLE: &str = r##"
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fff; --muted: #666; --line: #e5e5e5; --accent: #0969da; --bad: #b42318; --good: #1a7f37; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e6e6; --bg: #16181c; --muted: #9aa0a6; --line: #30343a; --accent: #58a6ff; --bad: #ff7b72; --good: #3fb950; } }
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
nav { border-bottom: 1px solid var(--line); padding-bottom: .5rem; margin-bottom: .5rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th[data-sort] { cursor: pointer; user-select: none; }
th[data-sort][aria-sort="ascending"]::after { content: " ▲"; }
th[data-sort][aria-sort="descending"]::after { content: " ▼"; }
td.capacity, td.value, td.holders, td.waiters, td.weight, td.pid { font-variant-numeric: tabular-nums; }
td.cmdline { white-space: normal; word-break: break-all; color: var(--muted); }
meter { width: 6rem; vertical-align: middle; }
#filter { width: 100%; max-width: 20rem; padding: .3rem; }
dl#summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl#summary dt { color: var(--muted); }
svg#history { width: 100%; height: 8rem; border: 1px solid var(--line); }
svg#history polyline { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
svg#history polyline.value, .legend .value { stroke: var(--accent); color: var(--accent); }
svg#history polyline.waiters, .legend .waiters { stroke: var(--bad); color: var(--bad); }
svg#history polyline.capacity, .legend .capacity { stroke: var(--muted); color: var(--muted); stroke-dasharray: 4 3; }
#changes { border-top: 1px solid var(--line); margin-top: 1rem; padding-top: .5rem; display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
#changes form { display: flex; flex-wrap: wrap; gap: .4rem; }
#changes input, #changes select, #changes button { font: inherit; }
#changes input[name="capacity"] { width: 6rem; }
#message.ok { color: var(--good); }
#message.error, #error { color: var(--bad); }
@media (max-width: 40rem) { body { padding: .5rem; } th, td { padding: .25rem .3rem; } td.owner, th[data-sort="owner"] { display: none; } }
"##;

const SCRIPT: &str = r##"
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const message = $("message");
  const tokenInput = $("token");

  // The token: from ?token= (then out of the address bar), else sessionStorage, else #token.
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("shmsem-token", params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("shmsem-token") || "";
    tokenInput.addEventListener("input", () => sessionStorage.setItem("shmsem-token", tokenInput.value.trim()));
  }
  const token = () => (tokenInput ? tokenInput.value.trim() : "") || sessionStorage.getItem("shmsem-token") || "";

  function say(text, ok) {
    if (!message) { return; }
    message.textContent = text;
    message.className = ok ? "ok" : "error";
  }

  async function change(method, url, payload) {
    const headers = token() ? { "X-Shmsem-Token": token() } : {};
    const init = { method, headers };
    if (payload !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(payload); }
    const res = await fetch(url, init);
    let detail = null;
    if (res.status !== 204) { try { detail = await res.json(); } catch (e) { detail = null; } }
    if (!res.ok) { throw new Error((detail && detail.error) || ("HTTP " + res.status)); }
    return detail;
  }

  const path = (s) => [s.scope, s.namespace, s.name].map(encodeURIComponent).join("/");
  const kindText = (s) => s.kind === "auto" ? "auto (" + s.idle_ms + " ms idle)" : "persistent";
  const ownerText = (s) => s.owner + ":" + s.group + " " + s.mode;

  // ----- the list -----
  const table = $("semaphores");
  function cell(tr, cls) {
    let td = tr.querySelector("td." + cls);
    if (!td) { td = document.createElement("td"); td.className = cls; tr.appendChild(td); }
    return td;
  }
  function fill(tr, s) {
    cell(tr, "scope").textContent = s.scope;
    cell(tr, "namespace").textContent = s.namespace;
    const name = cell(tr, "name");
    let a = name.querySelector("a");
    if (!a) { a = document.createElement("a"); name.appendChild(a); }
    a.href = "/sem/" + path(s);
    a.textContent = s.name;
    cell(tr, "kind").textContent = kindText(s);
    cell(tr, "owner").textContent = ownerText(s);
    cell(tr, "capacity").textContent = String(s.capacity);
    const value = cell(tr, "value");
    let span = value.querySelector("span");
    let meter = value.querySelector("meter");
    if (!span) { span = document.createElement("span"); value.appendChild(span); value.appendChild(document.createTextNode(" ")); }
    if (!meter) { meter = document.createElement("meter"); meter.min = 0; value.appendChild(meter); }
    span.textContent = s.value + "/" + s.capacity;
    meter.max = s.capacity;
    meter.value = s.value;
    cell(tr, "holders").textContent = String(s.holders);
    cell(tr, "waiters").textContent = String(s.waiters);
  }
  let sortKey = null, sortDir = 1;
  const sortValue = (tr, key) => {
    const td = tr.querySelector("td." + key);
    const text = td ? td.textContent : "";
    const n = parseFloat(text);
    return ["capacity", "value", "holders", "waiters"].includes(key) && !isNaN(n) ? n : text;
  };
  function applyView() {
    const tbody = table.tBodies[0];
    const rows = Array.from(tbody.rows);
    if (sortKey) {
      rows.sort((a, b) => {
        const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
      });
      for (const tr of rows) { tbody.appendChild(tr); }
    }
    const needle = $("filter") ? $("filter").value.trim().toLowerCase() : "";
    for (const tr of rows) { tr.hidden = needle !== "" && !tr.dataset.name.toLowerCase().includes(needle); }
  }
  function render(list) {
    const tbody = table.tBodies[0];
    const key = (scope, ns, name) => scope + "\u0000" + ns + "\u0000" + name;
    const byKey = new Map();
    for (const tr of Array.from(tbody.rows)) { byKey.set(key(tr.dataset.scope, tr.dataset.namespace, tr.dataset.name), tr); }
    const seen = new Set();
    for (const s of list) {
      const k = key(s.scope, s.namespace, s.name);
      seen.add(k);
      let tr = byKey.get(k);
      if (!tr) {
        tr = document.createElement("tr");
        tr.className = "sem";
        tr.dataset.scope = s.scope;
        tr.dataset.namespace = s.namespace;
        tr.dataset.name = s.name;
        tbody.appendChild(tr);
      }
      fill(tr, s);
    }
    for (const [k, tr] of byKey) { if (!seen.has(k)) { tr.remove(); } }
    applyView();
  }
  if (table) {
    for (const th of table.querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        sortDir = sortKey === th.dataset.sort ? -sortDir : 1;
        sortKey = th.dataset.sort;
        for (const other of table.querySelectorAll("th[data-sort]")) { other.removeAttribute("aria-sort"); }
        th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        applyView();
      });
    }
    if ($("filter")) { $("filter").addEventListener("input", applyView); }
    const events = new EventSource("/api/events");
    events.addEventListener("semaphores", (e) => { try { render(JSON.parse(e.data)); } catch (err) { /* a bad event: keep the rows */ } });
    const create = $("create");
    if (create) {
      create.addEventListener("submit", async (e) => {
        e.preventDefault();
        const f = create.elements;
        const s = { scope: f.scope.value, namespace: f.namespace.value.trim() || "default", name: f.name.value.trim() };
        const payload = { capacity: Number(f.capacity.value || 1), kind: f.kind.value };
        if (f.group.value.trim()) { payload.group = f.group.value.trim(); }
        if (f.mode.value.trim()) { payload.mode = f.mode.value.trim(); }
        try { await change("POST", "/api/sem/" + path(s), payload); say("created " + s.name, true); }
        catch (err) { say(err.message, false); }
      });
    }
    const reap = $("reap");
    if (reap) {
      reap.addEventListener("click", async () => {
        const places = new Set(Array.from(table.tBodies[0].rows).map((tr) => tr.dataset.scope + "/" + tr.dataset.namespace));
        if (places.size === 0) { places.add("local/default"); }
        try {
          let count = 0;
          for (const p of places) {
            const [scope, ns] = p.split("/");
            const back = await change("POST", "/api/reap/" + encodeURIComponent(scope) + "/" + encodeURIComponent(ns));
            count += back.length;
          }
          say("reaped " + count + " dead holder" + (count === 1 ? "" : "s"), true);
        } catch (err) { say(err.message, false); }
      });
    }
  }

  // ----- one semaphore -----
  const title = $("title");
  const summary = $("summary");
  if (summary && title && title.dataset.name) {
    const api = "/api/sem/" + path({ scope: title.dataset.scope, namespace: title.dataset.namespace, name: title.dataset.name });
    const dd = (cls, text) => { const d = summary.querySelector("dd." + cls); if (d) { d.textContent = text; } };
    function parties(id, list) {
      const tbody = $(id).tBodies[0];
      tbody.textContent = "";
      const now = Date.now();
      for (const p of list) {
        const tr = document.createElement("tr");
        tr.dataset.pid = p.pid;
        const pid = document.createElement("td"); pid.className = "pid";
        const a = document.createElement("a"); a.href = "/pid/" + p.pid; a.textContent = p.pid; pid.appendChild(a);
        const cmd = document.createElement("td"); cmd.className = "cmdline"; cmd.textContent = p.cmdline || "";
        const w = document.createElement("td"); w.className = "weight"; w.textContent = p.weight;
        const since = document.createElement("td"); since.className = "since"; since.dataset.sinceMs = p.since_ms;
        since.textContent = Math.max(0, Math.round((now - p.since_ms) / 1000)) + " s ago";
        tr.append(pid, cmd, w, since);
        tbody.appendChild(tr);
      }
    }
    async function refresh() {
      try {
        const res = await fetch(api);
        if (!res.ok) { say((await res.json()).error, false); return; }
        const s = await res.json();
        dd("kind", kindText(s)); dd("owner", ownerText(s));
        dd("capacity", String(s.capacity)); dd("value", String(s.value));
        dd("available", String(Math.max(0, s.capacity - s.value)));
        parties("holders", s.holders);
        parties("waiters", s.waiters);
      } catch (e) { /* the server may be restarting: try again next time */ }
    }
    const plot = $("history");
    function points(samples, key, max) {
      const n = samples.length;
      return samples.map((s, i) => ((n > 1 ? (i * 600) / (n - 1) : 0).toFixed(1) + "," + (118 - (s[key] / max) * 116).toFixed(1))).join(" ");
    }
    async function redraw() {
      try {
        const res = await fetch(api + "/history");
        if (!res.ok) { return; }
        const samples = (await res.json()).samples;
        const max = Math.max(1, ...samples.map((s) => Math.max(s.capacity, s.waiters)));
        for (const key of ["value", "waiters", "capacity"]) { plot.querySelector("polyline." + key).setAttribute("points", points(samples, key, max)); }
        plot.dataset.samples = samples.length;
      } catch (e) { /* as above */ }
    }
    refresh(); redraw();
    setInterval(refresh, 500);
    setInterval(redraw, 1000);
    const edit = $("edit");
    if (edit) {
      edit.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          await change("POST", api + "/capacity", { capacity: Number(edit.elements.capacity.value) });
          await change("POST", api + "/kind", { kind: edit.elements.kind.value });
          say("changed", true);
          refresh();
        } catch (err) { say(err.message, false); }
      });
    }
    const remove = $("remove");
    if (remove) {
      remove.addEventListener("click", async () => {
        const force = $("force") && $("force").checked;
        try { await change("DELETE", api + (force ? "?force=true" : "")); say("removed", true); location.href = "/"; }
        catch (err) { say(err.message, false); }
      });
    }
  }
  document.body.dataset.ready = "true";
})();
"##;
