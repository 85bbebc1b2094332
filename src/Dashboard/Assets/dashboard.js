// LaneQueue dashboard: a small page of plain JavaScript. Pages are hash routes (#/lanes, #/fleet, #/task/ID,
// #/dead-letters/LANE, #/scheduled); lanes and fleet refresh from api/stats every second without a reload, the Scheduled
// page's delayed tasks from api/delayed at the same beat. Actions post forms with the antiforgery token the server put in
// <body data-token>; they are shown only when the server says this user may act.
"use strict";

const LANES = ["control", "query", "execute", "generate"];
const MODES = ["internal", "external", "hybrid"];
const body = document.body;
const canAct = body.dataset.actions === "true";
const main = document.getElementById("main");
const live = document.getElementById("live");
let latest = null;
let page = null;

// h("td", { class: "num" }, "text", child...): builds elements; text always goes in as text, never as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function waitText(seconds) {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function time(at) {
  return at ? new Date(at).toLocaleTimeString([], { hour12: false }) : "";
}

function dateTime(at) {
  return at ? new Date(at).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

async function post(url, fields) {
  const form = new URLSearchParams(fields || {});
  form.set(body.dataset.tokenField, body.dataset.token);
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin", body: form,
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

// Replaces what an element shows with nodes, arrays of nodes and nulls (skipped).
function show(el, ...nodes) {
  el.replaceChildren(...nodes.flat(2).filter(n => n !== null && n !== undefined && n !== false));
}

function note(text, error) {
  const old = main.querySelector(".note.flash");
  if (old) old.remove();
  const el = h("div", { class: `note flash${error ? " error" : ""}`, role: "status" }, text);
  main.prepend(el);
  if (!error) setTimeout(() => el.remove(), 5000);
}

async function act(what, url, fields, after) {
  if (!confirm(`${what}?`)) return;
  try {
    const result = await post(url, fields);
    const counts = ["redriven", "purged"].filter(k => k in result).map(k => ` (${k} ${result[k]})`).join("");
    note(`${what}: done${counts}.`);
    if (after) await after(result);
  } catch (e) {
    note(`${what}: ${e.message}`, true);
  }
}

// ---- sparkline -------------------------------------------------------------------------------------------------------

function sparkline(values) {
  const w = 100, h = 24;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const max = Math.max(1, ...values);
  const n = Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => `${((i / n) * w).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
  if (pts.length === 1) pts.push(`${w},${pts[0].split(",")[1]}`);
  const area = document.createElementNS(svg.namespaceURI, "path");
  area.setAttribute("d", `M0,${h} L${pts.join(" L")} L${w},${h} Z`);
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(area, line);
  const title = document.createElementNS(svg.namespaceURI, "title");
  title.textContent = `ready over the last ${values.length} samples (max ${max})`;
  svg.append(title);
  return svg;
}

// ---- lanes -----------------------------------------------------------------------------------------------------------

const lanesPage = {
  render() {
    const rows = LANES.map(lane => h("tr", { "data-lane": lane },
      h("td", { class: "lane-name" }, lane),
      h("td", { class: "num", "data-col": "ready" }),
      h("td", { class: "num", "data-col": "held" }),
      h("td", { class: "num", "data-col": "oldest" }),
      h("td", { class: "num", "data-col": "running" }),
      h("td", { class: "num", "data-col": "rate" }),
      h("td", { "data-col": "paused" }),
      h("td", { "data-col": "mode" }),
      h("td", { class: "num", "data-col": "completed" }),
      h("td", { class: "num", "data-col": "failed" }),
      h("td", { class: "num", "data-col": "dead" }),
      h("td", { "data-col": "depth" }),
      canAct ? h("td", { class: "actions" }, ...laneActions(lane)) : null));
    show(main,
      h("h1", {}, "Lanes"),
      h("table", { id: "lanes" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Lane"), h("th", { class: "num" }, "Ready"),
          h("th", { class: "num", title: "Delivered to a consumer and waiting there for a slot (not started; not ready at the broker any more)" }, "Held"),
          h("th", { class: "num", title: "How long the oldest waiting task has waited (needs the dashboard's ManagementUrl)" }, "Oldest wait"),
          h("th", { class: "num" }, "Running / limit"),
          h("th", { class: "num" }, "Finished / s"), h("th", {}, "Paused"), h("th", {}, "Mode"),
          h("th", { class: "num" }, "Completed"), h("th", { class: "num" }, "Failed"), h("th", { class: "num" }, "Dead letters"),
          h("th", {}, "Ready, last 2 min"), canAct ? h("th", {}, "Actions") : null)),
        h("tbody", {}, rows)),
      // Sessions per lane: what the live consumers hold of each session (their heartbeats' busiest sessions, summed), and the
      // lane's per-session limit (SessionLimits) and session shards (SessionShards) as the consumers report them.
      h("section", { id: "sessions" },
        h("h2", {}, "Sessions"),
        h("p", { class: "muted" }, "Per lane, the busiest 10 sessions across the consumers: tasks running, and tasks the consumers hold waiting for a slot (a backlog still at the broker is not counted)."),
        h("div", { class: "sessions-grid" }, LANES.map(lane => h("div", { class: "panel", "data-sessions-lane": lane },
          h("h3", {}, lane),
          h("p", { class: "muted session-rules" },
            "Per-session limit: ", h("span", { "data-col": "session-limit" }, "–"),
            " · shards: ", h("span", { "data-col": "session-shards" }, "–")),
          h("table", { class: "sessions", hidden: true },
            h("thead", {}, h("tr", {}, h("th", {}, "Session"), h("th", { class: "num" }, "Running"), h("th", { class: "num" }, "Waiting"))),
            h("tbody", {})),
          h("p", { class: "muted", "data-col": "no-sessions" }, "No session holds tasks."))))),
      // Pending external tasks: the runs whose slot a consumer holds while an external worker does the work (the same
      // list as ILaneQueueProducer.GetPendingExternalTasksAsync and `lanequeue external pending`).
      h("section", { id: "external-pending" },
        h("h2", {}, "Pending external tasks"),
        h("p", { class: "muted", "data-col": "external-pending" }, ""),
        h("table", { id: "external-tasks" },
          h("thead", {}, h("tr", {},
            h("th", {}, "Task"), h("th", {}, "Lane"), h("th", {}, "Consumer"), h("th", { class: "num" }, "Attempt"),
            h("th", {}, "Announced"), h("th", {}, "Deadline"))),
          h("tbody", {}))));
    if (latest) this.update(latest);
  },

  update(data) {
    const snap = data.snapshot;
    const consumers = snap.consumers.length;
    for (const view of snap.lanes) {
      const s = view.stats;
      const row = main.querySelector(`tr[data-lane="${s.lane}"]`);
      if (!row) continue;
      const cell = col => row.querySelector(`[data-col="${col}"]`);
      cell("ready").textContent = s.pending ?? "–";
      cell("held").textContent = s.waiting;
      cell("oldest").textContent = view.oldest_wait_s == null ? "–" : waitText(view.oldest_wait_s);
      cell("running").textContent = `${s.active} / ${s.max_concurrency}`;
      cell("rate").textContent = view.rate.toFixed(1);
      const paused = cell("paused");
      paused.replaceChildren(...(s.paused_on > 0
        ? [h("span", { class: "paused" }, `paused on ${s.paused_on} of ${consumers}`), h("span", { class: "reasons" }, s.paused_reasons.join("; "))]
        : [h("span", { class: "muted" }, consumers === 0 ? "no consumer" : "no")]));
      cell("mode").textContent = s.handler_mode;
      cell("completed").textContent = s.completed;
      cell("failed").textContent = s.failed;
      const dead = cell("dead");
      dead.replaceChildren(s.dead_letters_waiting > 0
        ? h("a", { href: `#/dead-letters/${s.lane}`, class: "bad" }, s.dead_letters_waiting)
        : h("span", { class: "muted" }, "0"));
      cell("depth").replaceChildren(sparkline(view.depth));
      const toggle = row.querySelector("button[data-action=pause]");
      if (toggle) {
        const isPaused = s.paused_on > 0 && s.paused_reasons.some(r => r.includes("operator"));
        toggle.textContent = isPaused ? "Resume" : "Pause";
        toggle.dataset.paused = isPaused;
      }
    }
    for (const view of snap.lanes) updateSessions(view.stats.lane, view.sessions);
    const external = main.querySelector('[data-col="external-pending"]');
    if (external) external.textContent = `${snap.external_pending} task(s) waiting for an external worker across the fleet.`;
    const pending = main.querySelector("#external-tasks");
    if (pending) {
      pending.hidden = snap.external_tasks.length === 0;
      pending.querySelector("tbody").replaceChildren(...snap.external_tasks.map(t => h("tr", { "data-task": t.task_id },
        h("td", {}, h("a", { href: `#/task/${encodeURIComponent(t.task_id)}` }, t.task_id)), h("td", {}, t.lane),
        h("td", {}, t.consumer), h("td", { class: "num" }, t.attempt), h("td", {}, time(t.announced_at)), h("td", {}, time(t.deadline)))));
    }
  },
};

// A per-session limit as the page says it: 1 is "sequential", none set is "none".
function sessionLimitText(limit) {
  return limit == null ? "none" : limit === 1 ? "sequential" : `${limit} at once`;
}

// The consumers' values of a lane setting: one when they agree, each when they differ, "–" with no consumer.
function fleetValues(values, text) {
  if (!values || values.length === 0) return "–";
  return values.map(text).join(" / ") + (values.length > 1 ? " (consumers differ)" : "");
}

function updateSessions(lane, sessions) {
  const block = main.querySelector(`[data-sessions-lane="${lane}"]`);
  if (!block || !sessions) return;
  block.querySelector('[data-col="session-limit"]').textContent = fleetValues(sessions.limits, sessionLimitText);
  block.querySelector('[data-col="session-shards"]').textContent = fleetValues(sessions.shards, n => n === 0 ? "none" : String(n));
  const table = block.querySelector("table.sessions");
  table.hidden = sessions.top.length === 0;
  block.querySelector('[data-col="no-sessions"]').hidden = sessions.top.length > 0;
  // Session ids are whatever producers sent: they go in as text (h), never as HTML.
  table.querySelector("tbody").replaceChildren(...sessions.top.map(s => h("tr", { "data-session": s.session ?? "" },
    h("td", { "data-col": "session" }, s.session == null ? h("span", { class: "muted" }, "(no session)") : s.session),
    h("td", { class: "num", "data-col": "running" }, s.running),
    h("td", { class: "num", "data-col": "waiting" }, s.waiting))));
}

function laneActions(lane) {
  const toggle = h("button", { "data-action": "pause", type: "button" }, "Pause");
  toggle.addEventListener("click", () => {
    const resume = toggle.dataset.paused === "true";
    act(`${resume ? "Resume" : "Pause"} lane ${lane}`, `api/lanes/${lane}/${resume ? "resume" : "pause"}`);
  });
  const mode = h("select", { "data-action": "mode", "aria-label": `Handler mode of ${lane}` }, MODES.map(m => h("option", { value: m }, m)));
  const set = h("button", { type: "button", "data-action": "set-mode", title: "Set this lane's handler mode on every consumer" }, "Set");
  set.addEventListener("click", () => act(`Set lane ${lane} to ${mode.value} mode`, `api/lanes/${lane}/mode`, { mode: mode.value }));
  return [toggle, mode, set];
}

// ---- fleet -----------------------------------------------------------------------------------------------------------

const fleetPage = {
  render() {
    show(main, h("h1", {}, "Fleet"), h("div", { id: "fleet" }));
    if (latest) this.update(latest);
  },

  update(data) {
    const consumers = data.snapshot.consumers;
    const target = main.querySelector("#fleet");
    if (!target) return;
    if (consumers.length === 0) {
      target.replaceChildren(h("p", { class: "note" }, "No consumer heard: none is running, or they report to another vhost."));
      return;
    }
    target.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {},
        h("th", {}, "Consumer"), h("th", {}, "Host / pid"), h("th", {}, "Version"), h("th", {}, "Topology"), h("th", {}, "Started"),
        h("th", { class: "num" }, "Last heartbeat"), h("th", { class: "num" }, "Slots in use"),
        h("th", { class: "num" }, "External pending"), h("th", {}, "Lanes (running / limit)"))),
      h("tbody", {}, consumers.map(c => {
        const b = c.heartbeat;
        return h("tr", { "data-consumer": b.consumer },
          h("td", { class: "lane-name nowrap" }, b.consumer),
          h("td", { class: "nowrap" }, `${b.host} / ${b.pid}`),
          h("td", { "data-col": "version" }, b.version || "–"),
          h("td", {}, b.topology),
          h("td", { class: "nowrap" }, dateTime(b.started_at)),
          h("td", { class: "num" }, `${(c.heard_ms_ago / 1000).toFixed(1)} s ago`),
          h("td", { class: "num" }, `${b.slots_in_use} / ${b.slot_budget}`),
          h("td", { class: "num" }, b.external_pending),
          h("td", {}, b.lanes.map(l => `${l.lane} ${l.active}/${l.max_concurrency}${l.paused ? " (paused)" : ""}`).join(", ")));
      }))));
  },
};

// ---- task ------------------------------------------------------------------------------------------------------------

// A progress report as text: "40% message" for the percent form, its JSON otherwise.
function progressText(p) {
  if (p && typeof p === "object" && typeof p.percent === "number")
    return `${Math.round(p.percent * 10) / 10}%${typeof p.message === "string" ? " " + p.message : ""}`;
  return JSON.stringify(p);
}

// The task page; while the task has no result it reads the history again every second (progress, retries, the end).
let taskRefresh = null;

async function taskPage(id, again) {
  clearTimeout(taskRefresh);
  if (!again) show(main, h("h1", {}, "Task ", h("code", {}, id)), h("p", { class: "muted" }, "Reading the task history…"));
  let history;
  try {
    history = await getJson(`api/tasks/${encodeURIComponent(id)}`);
  } catch (e) {
    show(main, h("h1", {}, "Task ", h("code", {}, id)), h("div", { class: "note error" }, e.message));
    return;
  }
  if (location.hash !== `#/task/${encodeURIComponent(id)}`) return; // left the page meanwhile
  const events = history.events;
  const final = history.final;
  const title = h("h1", {}, "Task ", h("code", {}, id));
  if (!final) taskRefresh = setTimeout(() => taskPage(id, true), 1000);
  if (events.length === 0 && !final) {
    show(main, title, h("div", { class: "note", id: "task-missing" },
      "Nothing in the task history: not run yet, older than the history keeps, or submitted to another vhost. This page looks again every second."));
    return;
  }
  const lane = final?.lane ?? events[0]?.lane;
  const others = events.filter(e => e.event !== "command.progress");
  const last = others[others.length - 1] ?? events[events.length - 1];
  const status = final ? final.status : last.event.replace("command.", "");
  const reports = events.filter(e => e.event === "command.progress");
  const latestReport = reports[reports.length - 1];
  const percent = typeof latestReport?.progress?.percent === "number" ? latestReport.progress.percent : null;
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "Lane"), h("dd", {}, lane ?? "–"),
    h("dt", {}, "Status"), h("dd", { id: "task-status" }, status),
    h("dt", {}, "Attempts"), h("dd", {}, final?.attempts ?? last?.attempt ?? "–"),
    h("dt", {}, "Consumer"), h("dd", {}, final?.consumer ?? last?.consumer ?? "–"),
    latestReport ? [h("dt", {}, "Progress"), h("dd", { id: "task-progress" },
      percent != null ? h("progress", { max: "100", value: String(percent) }) : null, " ", progressText(latestReport.progress))] : null,
    final?.started_at ? [h("dt", {}, "Started"), h("dd", {}, dateTime(final.started_at))] : null,
    final?.finished_at ? [h("dt", {}, "Finished"), h("dd", {}, dateTime(final.finished_at))] : null);
  const hidden = Math.max(0, (history.progress_reports ?? reports.length) - reports.length); // the api sends the latest 50
  const timeline = h("table", { id: "timeline" },
    h("thead", {}, h("tr", {}, h("th", {}, "At"), h("th", {}, "Event"), h("th", { class: "num" }, "Attempt"), h("th", {}, "Consumer"), h("th", {}, "Detail"))),
    h("tbody", {}, events.map(e => {
      const name = e.event.replace("command.", "");
      return h("tr", { "data-event": name },
        h("td", { class: "nowrap" }, dateTime(e.at)),
        h("td", { class: `event-${name}` }, name),
        h("td", { class: "num" }, e.attempt),
        h("td", {}, e.consumer ?? ""),
        h("td", {}, e.progress !== undefined ? progressText(e.progress) : e.error ?? (e.delay_ms != null ? `retry in ${e.delay_ms} ms` : "")));
    })));
  const timelineNote = hidden > 0 ? h("p", { class: "muted", id: "progress-hidden" }, `${hidden} earlier progress report(s) not shown.`) : null;
  const payload = h("div", { id: "task-payload" }, history.payload != null
    ? h("pre", {}, JSON.stringify(history.payload, null, 2))
    : h("p", { class: "muted" }, history.payload_bytes != null
      ? `${history.payload_bytes} bytes: larger than the consumer keeps in the history (LaneQueue:HistoryPayloadMaxBytes).`
      : "Not in the history: the task has not started (a started task's payload is kept with its start)."));
  show(main, title, h("div", { class: "panel" }, facts),
    h("h2", {}, "Timeline"), timelineNote, timeline,
    h("h2", {}, "Result"), final ? h("pre", { id: "task-result" }, JSON.stringify(final.result ?? null, null, 2)) : h("p", { class: "muted" }, "No result yet."),
    final?.error ? [h("h2", {}, "Error"), h("pre", { class: "bad", id: "task-error" }, final.error)] : null,
    h("h2", {}, "Payload"), payload);
  if (history.payload == null && lane && (status === "dead_lettered" || last?.event === "command.dead_lettered")) {
    try {
      const letters = await getJson(`api/lanes/${lane}/dead-letters`);
      const mine = letters.find(l => l.task_id === id);
      if (mine) payload.replaceChildren(h("pre", {}, mine.body), h("p", {}, h("a", { href: `#/dead-letters/${lane}` }, `In the ${lane} dead letters: ${mine.reason}`)));
    } catch { /* the note stays */ }
  }
}

// ---- dead letters ----------------------------------------------------------------------------------------------------

async function deadLettersPage(lane) {
  if (!LANES.includes(lane)) lane = "control";
  const tabs = h("div", { class: "tabs" }, LANES.map(l => h("a", { href: `#/dead-letters/${l}`, class: l === lane ? "active" : null }, l)));
  const refresh = () => deadLettersPage(lane);
  const toolbar = h("div", { class: "toolbar" },
    h("button", { type: "button", onclick: refresh }, "Refresh"),
    canAct ? h("button", { type: "button", "data-action": "redrive-all", onclick: () => act(`Redrive every dead letter of ${lane}`, `api/lanes/${lane}/dead-letters/redrive`, {}, refresh) }, "Redrive all") : null,
    canAct ? h("button", { type: "button", class: "danger", "data-action": "purge", onclick: () => act(`Purge every dead letter of ${lane} (they are deleted)`, `api/lanes/${lane}/dead-letters/purge`, {}, refresh) }, "Purge") : null);
  show(main, h("h1", {}, `Dead letters: ${lane}`), tabs, toolbar, h("p", { class: "muted" }, "Reading…"));
  let letters;
  try {
    letters = await getJson(`api/lanes/${lane}/dead-letters`);
  } catch (e) {
    show(main, h("h1", {}, `Dead letters: ${lane}`), tabs, toolbar, h("div", { class: "note error" }, e.message));
    return;
  }
  const table = letters.length === 0
    ? h("p", { class: "note", id: "no-dead-letters" }, `No dead letter in ${lane}.`)
    : h("table", { id: "dead-letters" },
      h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Reason"), h("th", { class: "num" }, "Attempts"), h("th", {}, "Last error"),
        h("th", {}, "At"), h("th", {}, "Payload"), canAct ? h("th", {}, "") : null)),
      h("tbody", {}, letters.map(l => h("tr", { "data-task": l.task_id ?? "" },
        h("td", { class: "nowrap" }, l.task_id ? h("a", { href: `#/task/${encodeURIComponent(l.task_id)}` }, l.task_id) : "–"),
        h("td", {}, l.reason),
        h("td", { class: "num" }, l.attempts),
        h("td", {}, l.last_error ?? ""),
        h("td", { class: "nowrap" }, dateTime(l.at)),
        h("td", {}, h("details", {}, h("summary", {}, "show"), h("pre", {}, l.body))),
        canAct ? h("td", {}, l.task_id && l.lane
          ? h("button", { type: "button", "data-action": "redrive", onclick: () => act(`Redrive task ${l.task_id}`, `api/lanes/${lane}/dead-letters/redrive`, { id: l.task_id }, refresh) }, "Redrive")
          : h("span", { class: "muted" }, "malformed")) : null))));
  show(main, h("h1", {}, `Dead letters: ${lane}`), tabs, toolbar, table);
}

// ---- scheduled ------------------------------------------------------------------------------------------------------

// The schedules are read on opening the page and on Refresh (the listing reads two streams, 1 to 2 s); the delayed tasks
// due soon with every poll (the server reads the delay tree at most every DelayedReadInterval, for all viewers).
const scheduledPage = {
  async render() {
    const refresh = () => { if (page === scheduledPage) scheduledPage.render(); };
    const toolbar = h("div", { class: "toolbar" }, h("button", { type: "button", onclick: refresh }, "Refresh"));
    const delayed = this.delayedSection();
    show(main, h("h1", {}, "Scheduled"), toolbar, h("p", { class: "muted", id: "schedules-reading" }, "Reading…"), delayed);
    this.update();
    let schedules;
    try {
      schedules = await getJson("api/schedules");
    } catch (e) {
      show(main, h("h1", {}, "Scheduled"), toolbar, h("div", { class: "note error" }, e.message), delayed);
      return;
    }
    if (page !== scheduledPage) return;
    const change = (s, what) => act(`${what[0].toUpperCase()}${what.slice(1)} schedule ${s.id}`, `api/schedules/${encodeURIComponent(s.id)}/${what}`, {}, refresh);
    const table = schedules.length === 0
      ? h("p", { class: "note", id: "no-schedules" }, "No recurring schedule.")
      : h("table", { id: "schedules" },
        h("thead", {}, h("tr", {}, h("th", {}, "Schedule"), h("th", {}, "When"), h("th", {}, "Lane"), h("th", {}, "State"),
          h("th", {}, "Next due"), h("th", {}, "Last firing"), canAct ? h("th", {}, "") : null)),
        h("tbody", {}, schedules.map(s => h("tr", { "data-schedule": s.id },
          h("td", { class: "nowrap" }, s.id),
          h("td", {}, s.cron ? `cron ${s.cron}${s.time_zone ? " " + s.time_zone : ""}` : `every ${s.interval_ms / 1000} s`),
          h("td", {}, s.lane),
          h("td", { "data-col": "state" }, s.paused ? "paused" : "active"),
          h("td", { class: "nowrap", "data-col": "next" }, s.next_due ? dateTime(s.next_due) : "–"),
          h("td", { "data-col": "last" }, s.last_firing
            ? h("a", { href: `#/task/${encodeURIComponent(s.last_firing.task_id)}` }, s.last_firing.task_id) : "–"),
          canAct ? h("td", { class: "nowrap" },
            h("button", { type: "button", "data-action": s.paused ? "resume" : "pause", onclick: () => change(s, s.paused ? "resume" : "pause") }, s.paused ? "Resume" : "Pause"),
            h("button", { type: "button", class: "danger", "data-action": "remove", onclick: () => change(s, "remove") }, "Remove")) : null))));
    show(main, h("h1", {}, "Scheduled"), toolbar, table, delayed);
  },

  delayedSection() {
    return h("section", { id: "delayed" },
      h("h2", {}, "Delayed tasks due soon"),
      h("p", { class: "muted", "data-col": "delayed-total" }, "Reading…"),
      h("table", { id: "delayed-tasks", hidden: true },
        h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Lane"), h("th", {}, "Session"), h("th", {}, "Due"),
          h("th", { class: "num" }, "In"), canAct ? h("th", {}, "") : null)),
        h("tbody", {})));
  },

  // Called with every poll: reads api/delayed (one request at a time) and counts down from the server's clock.
  async update() {
    if (this.reading) return;
    this.reading = true;
    try {
      const data = await getJson("api/delayed");
      this.delayed = { data, offset: Date.parse(data.at) - Date.now() };
    } catch (e) {
      this.delayed = { error: e.message };
    } finally {
      this.reading = false;
    }
    if (page === scheduledPage) this.show();
  },

  show() {
    const total = main.querySelector('[data-col="delayed-total"]');
    const table = main.querySelector("#delayed-tasks");
    if (!total || !table || !this.delayed) return;
    const { data, error, offset } = this.delayed;
    if (error || data.error) {
      total.className = "note error";
      total.textContent = error || data.error;
      table.hidden = true;
      return;
    }
    total.className = "muted";
    total.textContent = `${data.total} delayed task(s) waiting in the delay tree` + (data.tasks.length === 0 ? "."
      : data.complete ? `; the ${data.tasks.length} soonest due:` : `; the soonest due among the first ${data.peeked} peeked:`);
    const now = Date.now() + offset;
    const cancel = t => act(`Cancel task ${t.task_id} (answered cancelled when it comes due)`, `api/tasks/${encodeURIComponent(t.task_id)}/cancel`, {});
    table.hidden = data.tasks.length === 0;
    table.querySelector("tbody").replaceChildren(...data.tasks.map(t => {
      const inMs = Date.parse(t.due) - now;
      return h("tr", { "data-task": t.task_id },
        h("td", {}, h("a", { href: `#/task/${encodeURIComponent(t.task_id)}` }, t.task_id)),
        h("td", { "data-col": "lane" }, t.lane ?? "?"),
        h("td", { "data-col": "session" }, t.session_id ?? "–"),
        h("td", { class: "nowrap", "data-col": "due" }, dateTime(t.due)),
        h("td", { class: "num nowrap", "data-col": "in" }, inMs <= 0 ? "due now" : `in ${untilText(inMs / 1000)}`),
        canAct ? h("td", {}, h("button", { type: "button", class: "danger", "data-action": "cancel", onclick: () => cancel(t) }, "Cancel")) : null);
    }));
  },
};

function untilText(seconds) {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : waitText(seconds);
}

// ---- routing and the live loop ---------------------------------------------------------------------------------------

function route() {
  const [, name, arg] = (location.hash || "#/lanes").split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  page = null;
  if (name === "fleet") { page = fleetPage; fleetPage.render(); }
  else if (name === "task" && arg) taskPage(decodeURIComponent(arg));
  else if (name === "dead-letters") deadLettersPage(arg);
  else if (name === "scheduled") { page = scheduledPage; scheduledPage.render(); }
  else { page = lanesPage; lanesPage.render(); }
}

async function poll() {
  try {
    latest = await getJson("api/stats");
    if (latest.snapshot.error) throw new Error(latest.snapshot.error);
    live.className = "live ok";
    live.textContent = `live · ${time(latest.snapshot.at)}`;
    if (page) page.update(latest);
  } catch (e) {
    live.className = "live down";
    live.textContent = `not updating: ${e.message}`;
  }
  setTimeout(poll, 1000);
}

document.getElementById("lookup").addEventListener("submit", e => {
  e.preventDefault();
  const id = document.getElementById("lookup-id").value.trim();
  if (id) location.hash = `#/task/${encodeURIComponent(id)}`;
});
document.getElementById("access").textContent = canAct ? "actions enabled" : "read-only";
window.addEventListener("hashchange", route);
route();
poll();
