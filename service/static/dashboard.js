// payq dashboard: reads the admin API with the token kept in this tab's sessionStorage.
// Everything shown is inserted as text (never as HTML).
"use strict";

(() => {
  const ROOT = document.body.dataset.apiRoot || "";
  const TOKEN_KEY = "payq-admin-token";
  const REFRESH_MS = 3000;
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let openQueue = null;
  const openBacktraces = new Set();

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(method, path) {
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    const response = await fetch(ROOT + path, {
      method, headers: { Authorization: "Bearer " + token, Accept: "application/json" }, cache: "no-store",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : response.statusText;
      throw new ApiError(response.status, detail);
    }
    return body;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  const describeJob = (job) =>
    job ? (job.class ? `${job.class}(${JSON.stringify(job.args || []).slice(1, -1)})` : job.raw || "—") : "—";
  const seconds = (s) => (s === null || s === undefined ? "—" : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

  function setStatus(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "status error" : "status";
  }

  function renderCounts(stats) {
    const items = [
      ["Processed", stats.processed], ["Failed", stats.failed], ["Pending", stats.pending],
      ["Queues", stats.queues], ["Workers", stats.workers], ["Working", stats.working],
      ["In failed list", stats.failed_list],
    ];
    $("counts").replaceChildren(...items.map(([label, n]) => el("div", {}, el("dt", {}, label), el("dd", {}, n))));
  }

  function renderQueues(data) {
    const rows = data.queues.map((q) =>
      el("tr", { "data-queue": q.name },
        el("td", {}, el("button", { type: "button", class: "link", onclick: () => showQueue(q.name) }, q.name)),
        el("td", { class: "num" }, q.length)));
    if (!rows.length) rows.push(el("tr", {}, el("td", { class: "muted", colSpan: 2 }, "No queues")));
    $("queue-rows").replaceChildren(...rows);
  }

  function renderQueueJobs(page) {
    $("queue-jobs").hidden = false;
    $("queue-jobs-name").textContent = `${page.queue} (${page.total})`;
    const items = page.jobs.map((job) => el("li", {}, describeJob(job)));
    if (!items.length) items.push(el("li", { class: "muted" }, "empty"));
    $("queue-jobs-list").replaceChildren(...items);
  }

  function renderWorkers(data) {
    const items = data.workers.map((w) =>
      el("li", { "data-worker": w.id },
        el("strong", {}, w.id),
        el("div", { class: "muted" }, `queues ${w.queues.join(", ") || "*"} · started ${when(w.started)} · heartbeat ${seconds(w.heartbeat_age_s)} ago`),
        el("div", {}, w.working_on ? `working on ${describeJob(w.working_on)} from ${w.working_on.queue || "?"} since ${when(w.working_since)}` : "idle")));
    if (!items.length) items.push(el("li", { class: "muted" }, "No workers registered"));
    $("worker-list").replaceChildren(...items);
  }

  function renderFailed(page) {
    $("failed-total").textContent = `(${page.total})`;
    const items = page.failures.map((f) => {
      const trace = el("details", { ontoggle: (e) => (e.target.open ? openBacktraces.add(f.digest) : openBacktraces.delete(f.digest)) },
        el("summary", {}, "Backtrace"), el("pre", {}, f.backtrace.join("\n") || "(none)"));
      trace.open = openBacktraces.has(f.digest);
      return el("li", { "data-digest": f.digest, class: "failure" },
        el("strong", {}, describeJob({ class: f.class, args: f.args })),
        el("div", { class: "muted" }, `queue ${f.queue || "?"} · worker ${f.worker || "?"} · failed ${when(f.failed_at)}`),
        el("div", { class: "error" }, `${f.exception}: ${f.error}`),
        trace,
        el("p", { class: "actions" },
          el("button", { type: "button", class: "retry", onclick: () => act("POST", `/failed/${f.index}/retry?digest=${f.digest}`) }, "Retry"),
          el("button", { type: "button", class: "remove danger", onclick: () => act("DELETE", `/failed/${f.index}?digest=${f.digest}`) }, "Remove")));
    });
    if (!items.length) items.push(el("li", { class: "muted" }, "No failed jobs"));
    $("failed-list").replaceChildren(...items);
  }

  function renderDelayed(page) {
    const items = page.delayed.map((slot) =>
      el("li", {}, el("strong", {}, when(slot.at)), el("ul", {}, ...slot.jobs.map((job) => el("li", {}, `${describeJob(job)} → ${job.queue || "?"}`)))));
    if (!items.length) items.push(el("li", { class: "muted" }, "No delayed jobs"));
    $("delayed-list").replaceChildren(...items);
  }

  async function refresh() {
    try {
      const [stats, queues, workers, failed, delayed] = await Promise.all([
        api("GET", "/stats"), api("GET", "/queues"), api("GET", "/workers"),
        api("GET", `/failed?limit=${PAGE}`), api("GET", `/delayed?limit=${PAGE}`),
      ]);
      renderCounts(stats); renderQueues(queues); renderWorkers(workers); renderFailed(failed); renderDelayed(delayed);
      if (openQueue) await showQueue(openQueue, true);
      setStatus(`Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return signOut("The token was refused; sign in again.");
      setStatus(`Could not refresh: ${error.message}`, true);
    }
  }

  async function showQueue(name, quiet) {
    openQueue = name;
    try {
      renderQueueJobs(await api("GET", `/queues/${encodeURIComponent(name)}/jobs?limit=${PAGE}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return closeQueue();
      if (!quiet) setStatus(`Could not list ${name}: ${error.message}`, true);
    }
  }

  function closeQueue() { openQueue = null; $("queue-jobs").hidden = true; }

  async function act(method, path) {
    try {
      await api(method, path);
    } catch (error) {
      setStatus(error.status === 409 ? "The failed list changed meanwhile; nothing was done. Showing it afresh." : `Failed: ${error.message}`, true);
    }
    await refresh();
  }

  function start() {
    $("sign-in").hidden = true; $("app").hidden = false; $("nav").hidden = false;
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  }

  function signOut(message) {
    clearInterval(timer);
    sessionStorage.removeItem(TOKEN_KEY);
    $("app").hidden = true; $("nav").hidden = true; $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
  }

  async function signIn(event) {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    try {
      await api("GET", "/stats");
    } catch (error) {
      return signOut(error.status === 401 ? "That token is not the admin token." : error.message);
    }
    $("token").value = "";
    start();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut());
    $("queue-jobs-close").addEventListener("click", closeQueue);
    $("retry-all").addEventListener("click", () => confirm("Put every failed job back on its queue?") && act("POST", "/failed/retry-all"));
    $("clear-failed").addEventListener("click", () => confirm("Remove every failed entry?") && act("DELETE", "/failed"));
    if (sessionStorage.getItem(TOKEN_KEY)) start(); else signOut();
  });
})();
