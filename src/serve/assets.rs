//! The page's style and script, served from memory. The script keeps the list live from
//! `/api/events`, redraws the plot from the history route, and sends the edit forms with the
//! token typed into `#token` (kept in the tab's `sessionStorage` only). It writes text with
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
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; color: #1d1d1f; }
nav { display: flex; gap: 1rem; align-items: baseline; border-bottom: 1px solid #ddd; padding-bottom: .5rem; }
nav .place { color: #666; }
#live { margin-left: auto; font-size: .85em; }
#live[data-state="live"] { color: #1a7f37; }
#live[data-state="offline"] { color: #b42318; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eee; }
td.value, td.capacity, td.holders, td.waiters, td.weight { font-variant-numeric: tabular-nums; }
meter.usage { width: 8rem; }
dl#facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl#facts dt { color: #666; }
svg#plot { width: 100%; height: 8rem; background: #fafafa; border: 1px solid #eee; }
svg#plot polyline { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
svg#plot polyline.value { stroke: #0969da; }
svg#plot polyline.capacity { stroke: #aaa; stroke-dasharray: 4 3; }
#edit { border-top: 1px solid #ddd; margin-top: 1rem; padding-top: .5rem; }
#message[data-state="error"] { color: #b42318; }
main#error .message { color: #b42318; }
@media (max-width: 40rem) { table { display: block; overflow-x: auto; } meter.usage { width: 4rem; } }
"##;

const SCRIPT: &str = r##"
"use strict";
(function () {
  const body = document.body;
  const live = document.getElementById("live");
  const message = document.getElementById("message");
  const tokenInput = document.getElementById("token");
  const query = location.search;

  function setLive(state) { if (live) { live.dataset.state = state; live.textContent = state; } }
  function say(text, ok) { if (message) { message.textContent = text; message.dataset.state = ok ? "ok" : "error"; } }

  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("shmsem-token") || "";
    tokenInput.addEventListener("input", () => sessionStorage.setItem("shmsem-token", tokenInput.value));
  }

  async function change(method, url, payload) {
    const headers = { "Authorization": "Bearer " + (tokenInput ? tokenInput.value.trim() : "") };
    const init = { method, headers };
    if (payload !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(payload); }
    const res = await fetch(url, init);
    let detail = null;
    try { detail = res.status === 204 ? null : await res.json(); } catch (e) { detail = null; }
    if (!res.ok) { throw new Error((detail && detail.error) || ("HTTP " + res.status)); }
    return detail;
  }

  function cell(tr, cls, text) {
    let td = tr.querySelector("td." + cls);
    if (!td) { td = document.createElement("td"); td.className = cls; tr.appendChild(td); }
    td.textContent = String(text);
    return td;
  }

  function row(sem) {
    const tr = document.createElement("tr");
    tr.className = "semaphore";
    tr.dataset.name = sem.name;
    const name = document.createElement("td");
    name.className = "name";
    const a = document.createElement("a");
    a.href = "/semaphores/" + encodeURIComponent(sem.name) + query;
    a.textContent = sem.name;
    name.appendChild(a);
    tr.appendChild(name);
    for (const cls of ["kind", "value", "capacity", "holders", "waiters"]) { cell(tr, cls, ""); }
    const bar = document.createElement("td");
    bar.className = "bar";
    const meter = document.createElement("meter");
    meter.className = "usage";
    meter.min = 0;
    bar.appendChild(meter);
    tr.appendChild(bar);
    return tr;
  }

  function update(tr, sem) {
    tr.dataset.kind = sem.kind;
    tr.dataset.capacity = sem.capacity;
    tr.dataset.value = sem.value;
    tr.dataset.holders = sem.holders;
    tr.dataset.waiters = sem.waiters;
    for (const cls of ["kind", "value", "capacity", "holders", "waiters"]) { cell(tr, cls, sem[cls]); }
    const meter = tr.querySelector("meter.usage");
    if (meter) { meter.max = sem.capacity; meter.value = sem.value; }
  }

  function render(list) {
    const tbody = document.querySelector("#semaphores tbody");
    if (!tbody) { return; }
    const seen = new Set();
    const byName = new Map();
    for (const tr of tbody.querySelectorAll("tr.semaphore")) { byName.set(tr.dataset.name, tr); }
    for (const sem of list) {
      seen.add(sem.name);
      let tr = byName.get(sem.name);
      if (!tr) { tr = row(sem); }
      update(tr, sem);
      tbody.appendChild(tr);
    }
    for (const [name, tr] of byName) { if (!seen.has(name)) { tr.remove(); } }
    let empty = document.getElementById("empty");
    if (list.length === 0 && !empty) {
      empty = document.createElement("p");
      empty.id = "empty";
      empty.textContent = "No semaphores.";
      document.getElementById("semaphores").after(empty);
    } else if (list.length > 0 && empty) {
      empty.remove();
    }
  }

  if (document.getElementById("list")) {
    const source = new EventSource("/api/events" + query);
    source.addEventListener("semaphores", (e) => { setLive("live"); render(JSON.parse(e.data)); });
    source.addEventListener("error", (e) => { if (e.data) { setLive("offline"); } });
    source.onerror = () => setLive("offline");
    const form = document.getElementById("create-form");
    if (form) {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const payload = { name: form.elements.name.value.trim(), persistent: form.elements.persistent.checked };
        const cap = form.elements.capacity.value.trim();
        if (cap !== "") { payload.capacity = Number(cap); }
        try { const sem = await change("POST", "/api/semaphores" + query, payload); say("created " + sem.name, true); }
        catch (err) { say(err.message, false); }
      });
    }
  }

  const main = document.getElementById("semaphore");
  if (main) {
    const name = main.dataset.name;
    const url = "/api/semaphores/" + encodeURIComponent(name);
    const plot = document.getElementById("plot");
    function points(samples, key, max) {
      const n = samples.length;
      return samples.map((s, i) => {
        const x = n > 1 ? (i * 600) / (n - 1) : 0;
        const y = 118 - (s[key] / max) * 116;
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
    }
    async function refresh() {
      try {
        const res = await fetch(url + "/history" + query);
        if (!res.ok) { setLive("offline"); return; }
        const h = await res.json();
        const samples = h.samples;
        const max = Math.max(1, ...samples.map((s) => s.capacity));
        plot.querySelector("polyline.value").setAttribute("points", points(samples, "value", max));
        plot.querySelector("polyline.capacity").setAttribute("points", points(samples, "capacity", max));
        plot.dataset.samples = samples.length;
        const last = samples[samples.length - 1];
        if (last) { main.dataset.value = last.value; main.dataset.capacity = last.capacity; }
        setLive("live");
      } catch (e) { setLive("offline"); }
    }
    refresh();
    setInterval(refresh, 1000);
    const form = document.getElementById("set-form");
    if (form) {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          const sem = await change("PATCH", url + query, { capacity: Number(form.elements.capacity.value) });
          main.dataset.capacity = sem.capacity;
          say("capacity " + sem.capacity, true);
        } catch (err) { say(err.message, false); }
      });
    }
    const remove = document.getElementById("remove");
    if (remove) {
      remove.addEventListener("click", async () => {
        const force = document.getElementById("force").checked;
        const sep = query ? "&" : "?";
        try { await change("DELETE", url + query + (force ? sep + "force=true" : "")); location.href = "/" + query; }
        catch (err) { say(err.message, false); }
      });
    }
  }

  if (document.getElementById("pid") || document.getElementById("error")) { setLive("live"); }
  body.dataset.ready = "true";
})();
"##;
