// Pinball UI: every page is filled from the JSON API under /api/v1/ and kept
// current while its tab is visible. Text from the server is always set with
// textContent, never parsed as HTML, so names and logs show as they are.
"use strict";

(() => {
  const REFRESH_MS = 3000;
  const BANNER_MS = 5000;
  const LOG_CHUNK = 256 * 1024;
  const COLORS = {
    UNKNOWN: "#000000", NEVER_RUN: "#dddddd", RUNNING: "#66ccff", SUCCESS: "#89e894",
    FAILURE: "#ff3333", DISABLED: "#ffffff", ABORTED: "#ff3333",
    CONDITION_PENDING: "#ffcc00", QUEUED: "#b3e6ff", RETRY_PENDING: "#ff9966",
  };

  const data = document.body.dataset;
  const ctx = {
    page: data.page, workflow: data.workflow || null, instance: data.instance || null,
    job: data.job || null, execution: data.execution === "" ? null : Number(data.execution),
    kind: data.kind || null, role: data.role, xsrf: data.xsrf,
  };
  const refreshers = [];
  const seg = encodeURIComponent;

  // -- Small helpers ---------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function link(href, text) {
    return el("a", { href }, text);
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function fmtTime(sec) {
    if (sec === null || sec === undefined) return "—";
    const d = new Date(sec * 1000);
    if (isNaN(d.getTime()) || sec > 1e13) return "never";
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  // A time in a schedule's own zone, with UTC beside it: the zone is how the
  // schedule was written, UTC is how the rest of the UI shows times.
  function fmtZoned(sec, zone) {
    if (!zone || zone === "UTC" || sec === null || sec === undefined) return fmtTime(sec);
    try {
      const local = new Intl.DateTimeFormat("sv-SE", {
        timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
      }).format(new Date(sec * 1000));
      return `${local} ${zone} (${fmtTime(sec)})`;
    } catch (error) {
      return fmtTime(sec);  // a zone this browser does not know
    }
  }

  function fmtDuration(sec) {
    if (sec === null || sec === undefined) return "—";
    if (sec < 10) return `${sec.toFixed(1)} s`;
    let s = Math.round(sec);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h ${pad(m)}m`;
    if (h) return `${h}h ${pad(m)}m ${pad(s)}s`;
    if (m) return `${m}m ${pad(s)}s`;
    return `${s} s`;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "?";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function badge(status) {
    return el("span", { class: `status ${status}`, text: status });
  }

  function setBadge(node, status) {
    if (!node) return;
    node.className = `status ${status || ""}`;
    node.textContent = status || "";
  }

  function facts(dl, pairs) {
    dl.replaceChildren();
    for (const [label, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", { text: label }), el("dd", {}, value));
    }
    if (!dl.childElementCount && dl.dataset.empty) {
      dl.append(el("dt", { class: "muted", text: dl.dataset.empty }), el("dd"));
    }
  }

  function code(text) { return el("code", { text }); }

  function every(fn) { refreshers.push(fn); fn(); }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    if (response.status === 401 && !options) {
      window.location.assign(`/login?next=${seg(location.pathname + location.search)}`);
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : response.statusText;
      const error = new ApiError(response.status, message);
      error.body = body;
      throw error;
    }
    return body;
  }

  function wfUrl(w) { return `/workflows/${seg(w)}`; }
  function instUrl(w, i) { return `${wfUrl(w)}/instances/${seg(i)}`; }
  function jobUrl(w, i, j) { return `${instUrl(w, i)}/jobs/${seg(j)}`; }
  function execUrl(w, i, j, n) { return `${jobUrl(w, i, j)}/executions/${n}`; }

  // -- Clock and banners ------------------------------------------------------

  function clock() {
    const node = document.getElementById("clock");
    const tick = () => { node.textContent = fmtTime(Date.now() / 1000); };
    tick();
    setInterval(tick, 1000);
  }

  const BANNER_TEXT = {
    EXIT: "Exiting: EXIT is set at the {level} level; workers older than generation {generation} leave after their current job.",
    ABORT: "Aborting: ABORT is set at the {level} level; running jobs are killed and no new ones start.",
    DRAIN: "Draining: DRAIN is set at the {level} level; running jobs finish, no new ones start.",
  };

  async function banners() {
    const box = document.getElementById("banners");
    const query = new URLSearchParams();
    if (ctx.workflow) query.set("workflow", ctx.workflow);
    if (ctx.instance && ctx.page !== "schedule") query.set("instance", ctx.instance);
    let status;
    try {
      status = await api(`/api/v1/status?${query}`);
    } catch (error) {
      box.replaceChildren(el("div", { class: "banner master", text: `The UI cannot read its status: ${error.message}` }));
      return;
    }
    const shown = [];
    for (const signal of status.signals) {
      const text = BANNER_TEXT[signal.action]
        .replace("{level}", signal.level)
        .replace("{generation}", signal.generation === null ? "any" : signal.generation);
      shown.push(el("div", { class: `banner ${signal.action.toLowerCase()}`, "data-signal": signal.action, text }));
    }
    if (!status.master.reachable) {
      shown.push(el("div", {
        class: "banner master", "data-master": "down",
        text: `The master at ${status.master.address} does not answer (${status.master.error}). ` +
          "Pages show what the store holds; actions fail until it is back.",
      }));
    }
    const history = status.history_loaded;
    if (history.workflows < history.of) {
      shown.push(el("div", {
        class: "banner info",
        text: `Reading archived history: ${history.workflows} of ${history.of} workflows so far; older instances appear as they are read.`,
      }));
    }
    box.replaceChildren(...shown);
  }

  // -- Tables ----------------------------------------------------------------

  // A table paged and sorted by the server. columns: [{label, sort, render,
  // class}]; source(query) returns the API URL.
  class Table {
    constructor(box, options) {
      this.box = box;
      this.options = options;
      this.state = { page: 1, sort: null, order: null, q: "" };
      this.loading = false;
      this.build();
    }

    build() {
      const o = this.options;
      const head = el("tr");
      if (o.selectable) head.append(el("th", {}, ""));
      this.headers = o.columns.map((column) => {
        const th = el("th", { class: column.sort ? "sortable" : null, scope: "col" }, column.label);
        if (column.sort) th.addEventListener("click", () => this.sortBy(column.sort));
        head.append(th);
        return th;
      });
      this.body = el("tbody");
      this.info = el("span");
      this.prev = el("button", { type: "button", onclick: () => this.go(this.state.page - 1) }, "‹ Previous");
      this.next = el("button", { type: "button", onclick: () => this.go(this.state.page + 1) }, "Next ›");
      const parts = [];
      if (o.search) {
        this.search = el("input", { type: "search", placeholder: o.search, "aria-label": o.search });
        let timer = null;
        this.search.addEventListener("input", () => {
          clearTimeout(timer);
          timer = setTimeout(() => { this.state.q = this.search.value; this.state.page = 1; this.load(); }, 250);
        });
        parts.push(el("div", { class: "table-tools" }, this.search, o.toolbar || null));
      }
      parts.push(
        el("div", { class: "table-scroll" }, el("table", { class: "grid" }, el("thead", {}, head), this.body)),
        el("div", { class: "pager" }, this.info, this.prev, this.next),
      );
      this.box.replaceChildren(...parts);
      this.body.append(el("tr", {}, el("td", { class: "empty", colspan: o.columns.length + 1, text: "Loading…" })));
    }

    sortBy(key) {
      if (this.state.sort === key) this.state.order = this.state.order === "asc" ? "desc" : "asc";
      else { this.state.sort = key; this.state.order = this.options.descendingFirst?.includes(key) ? "desc" : "asc"; }
      this.state.page = 1;
      this.load();
    }

    go(page) { this.state.page = Math.max(1, page); this.load(); }

    async load() {
      if (this.loading) return;
      this.loading = true;
      const query = new URLSearchParams({ page: this.state.page, per_page: this.options.perPage || 50 });
      if (this.state.sort) { query.set("sort", this.state.sort); query.set("order", this.state.order); }
      if (this.state.q) query.set("q", this.state.q);
      try {
        const answer = await api(this.options.source(query));
        this.render(answer);
        if (this.options.onData) this.options.onData(answer);
      } catch (error) {
        this.body.replaceChildren(el("tr", {}, el("td", {
          class: "empty", colspan: this.options.columns.length + 1, text: `Cannot load: ${error.message}`,
        })));
      } finally {
        this.loading = false;
      }
    }

    render(answer) {
      const o = this.options;
      this.state.sort = answer.sort;
      this.state.order = answer.order;
      o.columns.forEach((column, i) => {
        const th = this.headers[i];
        th.querySelector(".arrow")?.remove();
        if (column.sort && column.sort === answer.sort) {
          th.append(el("span", { class: "arrow", text: answer.order === "desc" ? "▼" : "▲" }));
          th.setAttribute("aria-sort", answer.order === "desc" ? "descending" : "ascending");
        } else th.removeAttribute("aria-sort");
      });
      const rows = answer.items.map((item) => {
        const tr = el("tr");
        if (o.rowKey) tr.dataset.key = o.rowKey(item);
        if (o.selectable) {
          const key = o.rowKey(item);
          const box = el("input", { type: "checkbox", "aria-label": `select ${key}` });
          box.checked = o.selectable.has(key);
          tr.classList.toggle("selected", box.checked);
          box.addEventListener("change", () => o.selectable.toggle(key, box.checked));
          tr.append(el("td", {}, box));
        }
        for (const column of o.columns) {
          const value = column.render(item);
          tr.append(el("td", { class: column.class || null }, value === null || value === undefined ? "—" : value));
        }
        return tr;
      });
      if (!rows.length) {
        rows.push(el("tr", {}, el("td", { class: "empty", colspan: o.columns.length + 1, text: o.empty || "Nothing here yet." })));
      }
      this.body.replaceChildren(...rows);
      const first = answer.total ? (answer.page - 1) * answer.per_page + 1 : 0;
      const last = Math.min(answer.total, answer.page * answer.per_page);
      this.info.textContent = `${first}–${last} of ${answer.total} · page ${answer.page} of ${answer.pages}`;
      this.prev.disabled = answer.page <= 1;
      this.next.disabled = answer.page >= answer.pages;
      if (answer.page > answer.pages) this.go(answer.pages);
    }
  }

  function table(options) {
    const t = new Table(document.getElementById("table"), options);
    every(() => t.load());
    return t;
  }

  // -- Selection (graph nodes and table rows) --------------------------------

  class Selection {
    constructor() { this.names = new Set(); this.listeners = []; }
    has(name) { return this.names.has(name); }
    toggle(name, on) {
      if (on === undefined) on = !this.names.has(name);
      if (on) this.names.add(name); else this.names.delete(name);
      this.listeners.forEach((fn) => fn());
    }
    list() { return [...this.names].sort(); }
    clear() { this.names.clear(); this.listeners.forEach((fn) => fn()); }
    onChange(fn) { this.listeners.push(fn); }
  }

  function wireSelection(selection) {
    const label = document.getElementById("selection");
    const update = () => {
      const n = selection.names.size;
      if (label) label.textContent = n ? `${n} selected: ${selection.list().join(", ")}` : "No job selected";
      document.querySelectorAll("[data-needs-selection]").forEach((b) => { b.disabled = !n; });
      document.querySelectorAll("table.grid tbody tr[data-key]").forEach((tr) => {
        const on = selection.has(tr.dataset.key);
        tr.classList.toggle("selected", on);
        const box = tr.querySelector("input[type=checkbox]");
        if (box) box.checked = on;
      });
    };
    selection.onChange(update);
    update();
  }

  // -- Graph -----------------------------------------------------------------

  class Graph {
    constructor(box, selection) {
      this.box = box;
      this.selection = selection;
      this.nodes = new Map();
      this.edges = [];
      this.svg = null;
    }

    async load(url, fallbackJobs) {
      let response;
      try {
        response = await fetch(url, { credentials: "same-origin" });
      } catch (error) {
        this.box.replaceChildren(el("p", { class: "notice", text: `Cannot load the graph: ${error.message}` }));
        return;
      }
      if (!response.ok) {
        let message = response.statusText;
        try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
        this.fallback(message, fallbackJobs);
        return;
      }
      const text = await response.text();
      const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
      const svg = document.importNode(parsed.documentElement, true);
      if (svg.nodeName.toLowerCase() !== "svg") {
        this.fallback("The graph could not be read.", fallbackJobs);
        return;
      }
      svg.querySelectorAll("script, foreignObject").forEach((n) => n.remove());
      svg.removeAttribute("width");
      svg.removeAttribute("height");
      svg.setAttribute("data-nodes", svg.querySelectorAll("g.node").length);
      this.box.replaceChildren(svg);
      this.svg = svg;
      // Fit the whole graph, but never draw it larger than Graphviz laid it
      // out (points, 4/3 of a pixel): a small graph stays small.
      const box = svg.viewBox.baseVal;
      const width = this.box.clientWidth || 800;
      const height = this.box.clientHeight || 460;
      const scale = Math.min(width / box.width, height / box.height, 4 / 3);
      const w = width / scale;
      const h = height / scale;
      this.full = [box.x + box.width / 2 - w / 2, box.y + box.height / 2 - h / 2, w, h];
      this.view = [...this.full];
      this.apply();
      this.wire();
    }

    fallback(message, jobs) {
      const list = el("ul", { class: "fallback" });
      for (const job of jobs || []) {
        const item = el("li", {}, badge(job.status), " ", job.url ? link(job.url, job.job) : job.job);
        list.append(item);
      }
      this.box.replaceChildren(el("p", { class: "notice", "data-graph": "unavailable", text: message }), list);
      this.box.style.height = "auto";
    }

    wire() {
      for (const g of this.svg.querySelectorAll("g.node")) {
        const name = g.id;
        this.nodes.set(name, g);
        g.querySelectorAll("a").forEach((a) => {
          const href = a.getAttribute("xlink:href") || a.getAttribute("href");
          if (href) g.dataset.href = href;
          a.addEventListener("click", (event) => event.preventDefault());
        });
        g.addEventListener("click", (event) => {
          event.preventDefault();
          if (this.moved) return;
          this.selection.toggle(name);
        });
        g.addEventListener("dblclick", (event) => {
          event.preventDefault();
          if (g.dataset.href && g.dataset.href.startsWith("/")) window.location.assign(g.dataset.href);
        });
      }
      this.edges = [...this.svg.querySelectorAll("g.edge")].map((g) => {
        const [from, to] = (g.id || "").split("/");
        return { g, from, to };
      });
      this.selection.onChange(() => this.paintSelection());
      this.paintSelection();

      this.svg.addEventListener("wheel", (event) => {
        event.preventDefault();
        const point = this.point(event);
        this.zoom(event.deltaY < 0 ? 0.8 : 1.25, point);
      }, { passive: false });
      let start = null;
      this.svg.addEventListener("mousedown", (event) => {
        start = { x: event.clientX, y: event.clientY, view: [...this.view] };
        this.moved = false;
      });
      window.addEventListener("mousemove", (event) => {
        if (!start) return;
        const dx = event.clientX - start.x;
        const dy = event.clientY - start.y;
        if (Math.abs(dx) + Math.abs(dy) > 4) { this.moved = true; this.box.classList.add("dragging"); }
        const scale = this.view[2] / this.svg.clientWidth;
        this.view[0] = start.view[0] - dx * scale;
        this.view[1] = start.view[1] - dy * scale;
        this.apply();
      });
      window.addEventListener("mouseup", () => {
        start = null;
        this.box.classList.remove("dragging");
        setTimeout(() => { this.moved = false; }, 0);
      });
      document.querySelectorAll("[data-zoom]").forEach((button) => {
        button.addEventListener("click", () => {
          const how = button.dataset.zoom;
          if (how === "fit") { this.view = [...this.full]; this.apply(); }
          else this.zoom(how === "in" ? 0.7 : 1.4);
        });
      });
      const search = document.getElementById("graph-search");
      if (search) {
        search.addEventListener("keydown", (event) => {
          if (event.key === "Enter") { event.preventDefault(); this.find(search.value); }
        });
      }
    }

    point(event) {
      const rect = this.svg.getBoundingClientRect();
      return {
        x: this.view[0] + (event.clientX - rect.left) / rect.width * this.view[2],
        y: this.view[1] + (event.clientY - rect.top) / rect.height * this.view[3],
      };
    }

    zoom(factor, around) {
      const [x, y, w, h] = this.view;
      const c = around || { x: x + w / 2, y: y + h / 2 };
      const nw = Math.min(Math.max(w * factor, 20), this.full[2] * 4);
      const nh = h * (nw / w);
      this.view = [c.x - (c.x - x) * (nw / w), c.y - (c.y - y) * (nh / h), nw, nh];
      this.apply();
    }

    apply() { this.svg.setAttribute("viewBox", this.view.join(" ")); }

    find(text) {
      const wanted = text.trim().toLowerCase();
      if (!wanted) return;
      this.nodes.forEach((g) => g.classList.remove("found"));
      const match = [...this.nodes.entries()].find(([name]) => name.toLowerCase().includes(wanted));
      if (!match) return;
      const g = match[1];
      g.classList.add("found");
      // Where the node is now, in view coordinates (the layout's own are
      // shifted by Graphviz's transform on the graph group).
      const rect = g.getBoundingClientRect();
      const centre = this.point({ clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2 });
      const nodeWidth = rect.width / this.svg.getBoundingClientRect().width * this.view[2];
      const w = Math.min(this.full[2], Math.max(nodeWidth * 8, 300));
      const h = w * (this.view[3] / this.view[2]);
      this.view = [centre.x - w / 2, centre.y - h / 2, w, h];
      this.apply();
    }

    paintSelection() {
      this.nodes.forEach((g, name) => g.classList.toggle("selected", this.selection.has(name)));
      for (const edge of this.edges) {
        edge.g.classList.toggle("out", this.selection.has(edge.from));
        edge.g.classList.toggle("in", this.selection.has(edge.to) && !this.selection.has(edge.from));
      }
    }

    colour(statuses) {
      for (const [name, status] of Object.entries(statuses)) {
        const g = this.nodes.get(name);
        if (!g) continue;
        const shape = g.querySelector("ellipse, polygon");
        if (shape) shape.setAttribute("fill", COLORS[status] || COLORS.UNKNOWN);
        g.dataset.status = status;
        const title = g.querySelector("title");
        if (title) title.textContent = `${name}: ${status}`;
      }
    }
  }

  function legend() {
    const list = document.getElementById("legend");
    if (!list) return;
    for (const status of ["NEVER_RUN", "QUEUED", "RUNNING", "RETRY_PENDING", "CONDITION_PENDING", "SUCCESS", "FAILURE", "ABORTED", "DISABLED"]) {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = COLORS[status];
      list.append(el("li", {}, swatch, status));
    }
  }

  // -- Actions ---------------------------------------------------------------

  const DESCRIBE = {
    drain: (t) => [`Drain ${t}?`, "Running jobs finish; no new jobs start until it is undrained."],
    undrain: (t) => [`Undrain ${t}?`, "New jobs may start again (a DRAIN at a wider level still applies)."],
    abort: (t) => [`Abort ${t}?`, "Running jobs are killed and no new jobs start."],
    unabort: (t) => [`Unabort ${t}?`, "Remove the ABORT; jobs may run again."],
    exit: (t) => [`Exit workers for ${t}?`, "Workers older than this config's generation leave after their current job."],
    unexit: (t) => [`Unexit ${t}?`, "Remove the EXIT signal."],
    retry: (t) => [`Retry ${t}?`, "Its failed jobs run again with the events of their last run."],
    poison: (t, jobs) => [`Poison ${jobs.length} job(s) of ${t}?`, `${jobs.join(", ")} and everything downstream of them run again.`],
    disable: (t, jobs) => [`Disable ${jobs.length} job(s) of ${t}?`, `${jobs.join(", ")} will succeed without running.`],
    enable: (t, jobs) => [`Enable ${jobs.length} job(s) of ${t}?`, `${jobs.join(", ")} will run their commands again.`],
    redo: (t, jobs, n) => [`Redo execution ${n} of ${jobs[0]}?`, "The job runs again with that execution's events."],
    start: (t) => [`Start ${t}?`, "A new instance starts from the workflow's current definitions."],
    unschedule: (t) => [`Unschedule ${t}?`, "Its schedule is removed; it runs only when started by hand."],
  };

  function target(level) {
    if (level === "global") return "every workflow";
    if (level === "workflow") return `workflow ${ctx.workflow}`;
    return `instance ${ctx.workflow}/${ctx.instance}`;
  }

  function confirmDialog(title, text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      document.getElementById("confirm-ok").focus();
    });
  }

  function showResult(title, text, ok) {
    const box = document.getElementById("result");
    box.classList.toggle("failed", !ok);
    document.getElementById("result-title").textContent = title;
    document.getElementById("result-text").textContent = text;
    box.hidden = false;
  }

  function wireActions(selection) {
    document.getElementById("result-close").addEventListener("click", () => {
      document.getElementById("result").hidden = true;
    });
    document.querySelectorAll("button[data-action]").forEach((button) => {
      button.addEventListener("click", async () => {
        const name = button.dataset.action;
        const level = button.dataset.level;
        const body = {};
        if (level !== "global") body.workflow = ctx.workflow;
        if (level === "instance") body.instance = ctx.instance;
        let jobs = [];
        if (button.hasAttribute("data-needs-selection")) { jobs = selection.list(); body.jobs = jobs; }
        if (name === "redo") { jobs = [ctx.job]; body.jobs = jobs; body.execution = ctx.execution; }
        const [title, text] = DESCRIBE[name](target(level), jobs, ctx.execution);
        if (!(await confirmDialog(title, text))) return;
        button.disabled = true;
        try {
          const outcome = await api(`/api/v1/actions/${seg(name)}`, {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-XSRFToken": ctx.xsrf },
            body: JSON.stringify(body),
          });
          showResult(outcome.ok ? `${name}: done` : `${name}: done in part`, outcome.output || "(no output)", outcome.ok);
        } catch (error) {
          const outcome = error.body && error.body.output !== undefined ? error.body : null;
          const text = outcome ? [outcome.output, outcome.error].filter(Boolean).join("\n") : error.message;
          showResult(`${name}: refused`, text, false);
        } finally {
          button.disabled = button.hasAttribute("data-needs-selection") && !selection.names.size;
          refreshers.forEach((fn) => fn());
          banners();
        }
      });
    });
  }

  // -- Pages -----------------------------------------------------------------

  const pages = {};

  pages.workflows = () => {
    table({
      source: (q) => `/api/v1/workflows?${q}`,
      search: "Filter workflows",
      descendingFirst: ["last_start", "last_end", "run_time", "running_instances"],
      empty: "No workflows yet. Start one with `pinball workflow start -w NAME`.",
      columns: [
        { label: "Workflow", sort: "workflow", render: (r) => link(wfUrl(r.workflow), r.workflow) },
        { label: "Owners", sort: "owners", render: (r) => r.owners.join(", ") || "—" },
        { label: "Status", sort: "status", render: (r) => badge(r.status) },
        { label: "Last start", sort: "last_start", class: "time", render: (r) => r.last_instance ? link(instUrl(r.workflow, r.last_instance), fmtTime(r.last_start)) : fmtTime(r.last_start) },
        { label: "Last end", sort: "last_end", class: "time", render: (r) => fmtTime(r.last_end) },
        { label: "Run time", sort: "run_time", class: "num", render: (r) => fmtDuration(r.run_time) },
        { label: "Running", sort: "running_instances", class: "num", render: (r) => r.running_instances },
        { label: "Instances", class: "num", render: (r) => r.instances },
        { label: "Schedule", render: (r) => r.scheduled ? link(`/schedules/${seg(r.workflow)}`, "scheduled") : "—" },
      ],
    });
  };

  pages.instances = () => {
    every(async () => {
      try {
        const w = await api(`/api/v1/workflows/${seg(ctx.workflow)}`);
        setBadge(document.getElementById("wf-status"), w.status);
        facts(document.getElementById("facts"), [
          ["Owners", w.owners.join(", ")],
          ["Running instances", String(w.running_instances)],
          ["Last instance", w.last_instance ? link(instUrl(w.workflow, w.last_instance), w.last_instance) : null],
          ["Last start", fmtTime(w.last_start)],
          ["Last end", fmtTime(w.last_end)],
          ["Schedule", w.scheduled ? link(`/schedules/${seg(w.workflow)}`, "see its schedule") : "not scheduled"],
        ]);
      } catch (error) { /* the table says it */ }
    });
    table({
      source: (q) => `/api/v1/workflows/${seg(ctx.workflow)}/instances?${q}`,
      search: "Filter instance ids",
      descendingFirst: ["start", "end", "run_time", "instance"],
      columns: [
        { label: "Instance", sort: "instance", render: (r) => link(instUrl(r.workflow, r.instance), r.instance) },
        { label: "Status", sort: "status", render: (r) => badge(r.status) },
        { label: "Start", sort: "start", class: "time", render: (r) => fmtTime(r.start) },
        { label: "End", sort: "end", class: "time", render: (r) => fmtTime(r.end) },
        { label: "Run time", sort: "run_time", class: "num", render: (r) => fmtDuration(r.run_time) },
        { label: "Failed jobs", render: (r) => r.failed_jobs.length ? r.failed_jobs.join(", ") : "—" },
        { label: "Where", render: (r) => r.archived ? "archive" : "active" },
      ],
    });
  };

  function jobInfo(r) {
    const lines = [el("div", {}, el("span", { class: "sub", text: `${r.condition ? "condition" : r.kind} ` }), code(r.command))];
    const extra = [];
    if (r.priority) extra.push(`priority ${r.priority}`);
    if (r.max_attempts > 1) extra.push(`${r.max_attempts} attempts`);
    if (r.retry_delay_sec) extra.push(`retry after ${fmtDuration(r.retry_delay_sec)}${r.retry_backoff > 1 ? ` ×${r.retry_backoff}` : ""}`);
    if (r.warn_timeout_sec) extra.push(`warn after ${fmtDuration(r.warn_timeout_sec)}`);
    if (r.abort_timeout_sec) extra.push(`abort after ${fmtDuration(r.abort_timeout_sec)}`);
    if (r.emails && r.emails.length) extra.push(`mail ${r.emails.join(", ")}`);
    if (r.disabled) extra.push("disabled");
    if (extra.length) lines.push(el("div", { class: "sub", text: extra.join(" · ") }));
    return el("div", {}, lines);
  }

  function progressBar(segments) {
    const bar = el("div", { class: "progress", title: segments.map((s) => `${s.status} ${s.percent}%`).join(", ") });
    for (const part of segments || []) {
      const span = el("span", { class: part.status });
      span.style.width = `${Math.min(100, part.percent)}%`;
      bar.append(span);
    }
    return bar;
  }

  pages.instance = () => {
    const selection = new Selection();
    wireSelection(selection);
    wireActions(selection);
    legend();
    const graph = new Graph(document.getElementById("graph"), selection);
    const base = `/api/v1/workflows/${seg(ctx.workflow)}/instances/${seg(ctx.instance)}`;
    let graphLoaded = false;
    let lastStatuses = {};
    every(async () => {
      try {
        const i = await api(base);
        setBadge(document.getElementById("inst-status"), i.status);
        facts(document.getElementById("facts"), [
          ["Status", badge(i.status)],
          ["Start", fmtTime(i.start)],
          ["End", i.end === null ? (i.status === "RUNNING" ? "running" : "—") : fmtTime(i.end)],
          ["Run time", fmtDuration(i.run_time)],
          ["Jobs", `${i.jobs}${i.running_jobs.length ? `, running: ${i.running_jobs.join(", ")}` : ""}`],
          ["Failed jobs", i.failed_jobs.join(", ")],
          ["Where", i.archived ? "archived (read from the store's archive)" : "active"],
          ["Signals", i.signals.map((s) => `${s.action} (${s.level})`).join(", ")],
        ]);
      } catch (error) { /* the table shows errors */ }
    });
    table({
      source: (q) => `${base}/jobs?${q}`,
      search: "Filter jobs",
      perPage: 100,
      rowKey: (r) => r.job,
      selectable: selection,
      descendingFirst: ["start", "end", "run_time", "priority", "attempts"],
      columns: [
        { label: "Job", sort: "job", render: (r) => link(jobUrl(r.workflow, r.instance, r.job), r.job) },
        { label: "Info", class: "info", render: jobInfo },
        { label: "Progress", render: (r) => progressBar(r.progress || []) },
        { label: "Status", sort: "status", render: (r) => badge(r.status) },
        { label: "Attempts", sort: "attempts", class: "num", render: (r) => r.attempts },
        { label: "Last start", sort: "start", class: "time", render: (r) => fmtTime(r.start) },
        { label: "Last end", sort: "end", class: "time", render: (r) => fmtTime(r.end) },
        { label: "Run time", sort: "run_time", class: "num", render: (r) => fmtDuration(r.run_time) },
      ],
      onData: async (answer) => {
        const statuses = {};
        answer.items.forEach((r) => { statuses[r.job] = r.status; });
        lastStatuses = { ...lastStatuses, ...statuses };
        if (!graphLoaded) {
          graphLoaded = true;
          const jobs = answer.items.map((r) => ({ job: r.job, status: r.status, url: jobUrl(r.workflow, r.instance, r.job) }));
          await graph.load(`${base}/graph.svg`, jobs);
        }
        if (graph.svg) graph.colour(lastStatuses);
      },
    });
  };

  pages.executions = () => {
    const base = `/api/v1/workflows/${seg(ctx.workflow)}/instances/${seg(ctx.instance)}/jobs/${seg(ctx.job)}/executions`;
    let t = null;
    every(async () => {
      let answer;
      try { answer = await api(base); } catch (error) { return; }
      const j = answer.job;
      setBadge(document.getElementById("job-status"), j.status);
      facts(document.getElementById("facts"), [
        ["Kind", j.condition ? `${j.kind} condition` : j.kind],
        ["Command", code(j.command)],
        ["Upstream", j.inputs.join(", ") || "none (starts the workflow)"],
        ["Downstream", j.outputs.join(", ") || "none"],
        ["Attempts allowed", String(j.max_attempts)],
        ["Retry delay", j.retry_delay_sec ? fmtDuration(j.retry_delay_sec) : null],
        ["Warn after", j.warn_timeout_sec ? fmtDuration(j.warn_timeout_sec) : null],
        ["Abort after", j.abort_timeout_sec ? fmtDuration(j.abort_timeout_sec) : null],
        ["Priority", String(j.priority)],
        ["Emails", j.emails.join(", ")],
        ["Disabled", j.disabled ? "yes" : null],
      ]);
      if (!t) {
        t = new Table(document.getElementById("table"), {
          source: () => base,
          columns: executionColumns(false),
        });
      }
      t.render({ ...answer, page: 1, pages: 1, per_page: Math.max(1, answer.total), sort: null, order: null });
    });
  };

  function logLinks(r) {
    return el("span", {}, r.logs.map((entry, i) => [
      i ? " · " : "",
      entry.readable ? link(`${execUrl(r.workflow, r.instance, r.job, r.execution)}/logs/${seg(entry.kind)}`, entry.kind) : `${entry.kind} (${entry.problem || "missing"})`,
    ]));
  }

  function executionColumns(withInstance) {
    const columns = [
      { label: "Execution", render: (r) => link(execUrl(r.workflow, r.instance, r.job, r.execution), `#${r.execution}`) },
    ];
    if (withInstance) {
      columns.push({ label: "Instance", sort: "instance", render: (r) => link(instUrl(r.workflow, r.instance), r.instance) });
    }
    columns.push(
      { label: "Command", class: "info", render: (r) => code(r.info) },
      { label: "Exit code", sort: withInstance ? "exit_code" : null, class: "num", render: (r) => r.exit_code === null ? (r.finished ? "—" : "running") : r.exit_code },
      { label: "Start", sort: withInstance ? "start" : null, class: "time", render: (r) => fmtTime(r.start) },
      { label: "End", sort: withInstance ? "end" : null, class: "time", render: (r) => fmtTime(r.end) },
      { label: "Run time", sort: withInstance ? "run_time" : null, class: "num", render: (r) => fmtDuration(r.run_time) },
      { label: "Note", render: (r) => r.reason || (r.ran_in !== r.instance ? `ran in ${r.ran_in}` : "") },
      { label: "Logs", render: logLinks },
    );
    return columns;
  }

  pages.job_executions = () => {
    table({
      source: (q) => `/api/v1/workflows/${seg(ctx.workflow)}/jobs/${seg(ctx.job)}/executions?${q}`,
      descendingFirst: ["start", "end", "instance", "run_time"],
      empty: "This job has not run in any instance.",
      columns: executionColumns(true),
    });
  };

  pages.execution = () => {
    const selection = new Selection();
    wireActions(selection);
    const url = `/api/v1/workflows/${seg(ctx.workflow)}/instances/${seg(ctx.instance)}/jobs/${seg(ctx.job)}/executions/${ctx.execution}`;
    every(async () => {
      let r;
      try { r = await api(url); } catch (error) { return; }
      const status = !r.finished ? "RUNNING" : r.exit_code === 0 ? "SUCCESS" : "FAILURE";
      setBadge(document.getElementById("exec-status"), status);
      facts(document.getElementById("facts"), [
        ["Command", code(r.info)],
        ["Exit code", r.exit_code === null ? (r.finished ? "none" : "still running") : String(r.exit_code)],
        ["Why it ended", r.reason],
        ["Start", fmtTime(r.start)],
        ["End", fmtTime(r.end)],
        ["Run time", fmtDuration(r.run_time)],
        ["Worker", r.worker],
        ["Ran in instance", r.ran_in !== r.instance ? r.ran_in : null],
      ]);
      const logs = document.getElementById("logs");
      logs.replaceChildren(...(r.logs.length ? r.logs.map((entry) => el("li", {},
        entry.readable ? link(`${url.replace("/api/v1", "")}/logs/${seg(entry.kind)}`, entry.kind) : `${entry.kind}`,
        el("span", { class: "muted", text: ` ${entry.readable ? fmtBytes(entry.size) : `(${entry.problem || "missing"})`} · ${entry.path}` }),
      )) : [el("li", { class: "muted", text: "No logs." })]));
      const links = document.getElementById("links");
      links.replaceChildren(...(r.links.length ? r.links.map((l) => el("li", {},
        l.url ? el("a", { href: l.url, rel: "noopener noreferrer", target: "_blank" }, l.text) : el("span", { title: "not an http(s) link", text: l.raw }),
      )) : [el("li", { class: "muted", text: "No links." })]));
      const props = Object.entries(r.properties).filter(([k]) => k !== "kv_job_url" && k !== "job_url");
      facts(document.getElementById("properties"), props.map(([k, v]) => [k, v.join(", ")]));
      facts(document.getElementById("attributes"), Object.entries(r.event_attributes).map(([k, v]) => [k, code(v)]));
      const redo = document.getElementById("redo");
      if (redo) redo.hidden = !(r.finished && r.job_state === "waiting");
    });
  };

  pages.log = () => {
    const api_url = `/api/v1/workflows/${seg(ctx.workflow)}/instances/${seg(ctx.instance)}/jobs/${seg(ctx.job)}/executions/${ctx.execution}/logs/${seg(ctx.kind)}`;
    const pre = document.getElementById("log");
    const info = document.getElementById("log-info");
    const follow = document.getElementById("log-follow");
    document.getElementById("log-download").href = `${api_url}?download=1`;
    const state = { offset: 0, next: 0, size: 0, finished: true };

    async function show(offset) {
      let chunk;
      try { chunk = await api(`${api_url}?offset=${offset}&limit=${LOG_CHUNK}`); } catch (error) {
        info.textContent = `Cannot read the log: ${error.message}`;
        return;
      }
      pre.textContent = chunk.text;
      update(chunk);
    }

    function update(chunk) {
      state.offset = chunk.offset;
      state.next = chunk.next_offset;
      state.size = chunk.size;
      state.finished = chunk.finished;
      info.textContent = `Bytes ${chunk.offset.toLocaleString()}–${chunk.next_offset.toLocaleString()} of ${chunk.size.toLocaleString()}` +
        (chunk.finished ? "." : " · the job is still running.");
      document.getElementById("log-prev").disabled = chunk.offset <= 0;
      document.getElementById("log-first").disabled = chunk.offset <= 0;
      document.getElementById("log-next").disabled = chunk.eof;
      document.getElementById("log-last").disabled = chunk.eof;
    }

    async function followTick() {
      if (!follow.checked) return;
      let chunk;
      try { chunk = await api(`${api_url}?offset=${state.next}&limit=${LOG_CHUNK}`); } catch (error) { return; }
      if (chunk.text) {
        pre.append(chunk.text);
        pre.scrollTop = pre.scrollHeight;
      }
      update({ ...chunk, offset: state.offset });
      if (chunk.finished && chunk.eof) follow.checked = false;
    }

    document.getElementById("log-first").addEventListener("click", () => { follow.checked = false; show(0); });
    document.getElementById("log-prev").addEventListener("click", () => { follow.checked = false; show(Math.max(0, state.offset - LOG_CHUNK)); });
    document.getElementById("log-next").addEventListener("click", () => { follow.checked = false; show(state.next); });
    document.getElementById("log-last").addEventListener("click", () => { follow.checked = false; show(-LOG_CHUNK); });
    follow.addEventListener("change", async () => {
      if (follow.checked) { await show(-LOG_CHUNK); pre.scrollTop = pre.scrollHeight; }
    });

    (async () => {
      let first;
      try { first = await api(`${api_url}?offset=0&limit=${LOG_CHUNK}`); } catch (error) {
        info.textContent = `Cannot read the log: ${error.message}`;
        return;
      }
      if (!first.finished) {
        follow.checked = true;
        await show(-LOG_CHUNK);
        pre.scrollTop = pre.scrollHeight;
      } else {
        pre.textContent = first.text;
        update(first);
      }
      setInterval(() => { if (!document.hidden) followTick(); }, 2000);
    })();
  };

  pages.schedules = () => {
    table({
      source: (q) => `/api/v1/schedules?${q}`,
      search: "Filter workflows",
      empty: "No schedules. Workflows with a schedule in their definitions get one from `pinball workflow reschedule`.",
      columns: [
        { label: "Workflow", sort: "workflow", render: (r) => link(`/schedules/${seg(r.workflow)}`, r.workflow) },
        { label: "Next run", sort: "next_run", class: "time", render: (r) => r.next_runs_known ? fmtZoned(r.next_run, r.timezone) : "decided by the scheduler" },
        { label: "Recurrence", render: (r) => `${r.recurrence} (${r.timezone})` },
        { label: "Overrun policy", sort: "overrun_policy", render: (r) => el("span", { title: r.overrun_policy_help, text: r.overrun_policy }) },
        { label: "Max running", class: "num", render: (r) => r.max_running_instances ?? "default" },
        { label: "Emails", render: (r) => r.emails.join(", ") || "—" },
      ],
    });
  };

  pages.schedule = () => {
    const selection = new Selection();
    wireSelection(selection);
    wireActions(selection);
    const graph = new Graph(document.getElementById("graph"), selection);
    const url = `/api/v1/schedules/${seg(ctx.workflow)}`;
    let t = null;
    let graphLoaded = false;
    every(async () => {
      let s;
      try { s = await api(url); } catch (error) { return; }
      facts(document.getElementById("facts"), [
        ["Recurrence", s.recurrence],
        ["Starting", s.start],
        ["Time zone", s.timezone],
        ["Overrun policy", el("span", {}, s.overrun_policy, el("span", { class: "muted", text: ` — ${s.overrun_policy_help}` }))],
        ["Max running instances", s.max_running_instances === null ? "the default" : String(s.max_running_instances)],
        ["Emails", s.emails.join(", ")],
        ["Token", code(s.token)],
        ["Parser", s.parser_error ? `cannot read the definitions: ${s.parser_error}` : null],
      ]);
      const runs = document.getElementById("next-runs");
      runs.replaceChildren(...(s.next_runs_known ? s.next_runs.map((t) => el("li", { text: fmtZoned(t, s.timezone) })) : [el("li", { class: "muted", text: "The scheduler computes the next runs." })]));
      if (!t) {
        t = new Table(document.getElementById("table"), {
          source: () => url,
          rowKey: (r) => r.job,
          selectable: selection,
          columns: [
            { label: "Job", render: (r) => r.job },
            { label: "Info", class: "info", render: (r) => jobInfo({ ...r, priority: 0, retry_backoff: 1 }) },
            { label: "Upstream", render: (r) => r.inputs.join(", ") || "—" },
            { label: "Downstream", render: (r) => r.outputs.join(", ") || "—" },
          ],
        });
      }
      t.render({ items: s.jobs, total: s.jobs.length, page: 1, pages: 1, per_page: Math.max(1, s.jobs.length) });
      if (!graphLoaded) {
        graphLoaded = true;
        await graph.load(`${url}/graph.svg`, s.jobs.map((j) => ({ job: j.job, status: "NEVER_RUN" })));
      }
    });
  };

  function tokenCrumbs() {
    const nav = document.getElementById("token-crumbs");
    const path = nav.dataset.path;
    const parts = path.split("/").filter(Boolean);
    nav.append(link("/tokens?path=%2F", "/"));
    let so_far = "/";
    parts.forEach((part, i) => {
      so_far += part + (i < parts.length - 1 || path.endsWith("/") ? "/" : "");
      nav.append(el("span", { text: "›" }), link(`/tokens?path=${seg(so_far.endsWith("/") ? so_far : so_far + "/")}`, part));
    });
  }

  pages.tokens = () => {
    tokenCrumbs();
    const path = document.getElementById("token-crumbs").dataset.path;
    table({
      source: (q) => `/api/v1/tokens?path=${seg(path)}&${q}`,
      search: "Filter names",
      perPage: 100,
      empty: "No tokens under this path.",
      columns: [
        { label: "Name", sort: "path", render: (r) => r.count > 1 ? link(`/tokens?path=${seg(r.path + "/")}`, r.path + "/") : link(`/token?name=${seg(r.path)}`, r.path) },
        { label: "Active", class: "num", render: (r) => r.active },
        { label: "Archived", class: "num", render: (r) => r.archived },
        { label: "Total", sort: "count", class: "num", render: (r) => r.count },
      ],
    });
  };

  pages.token = () => {
    tokenCrumbs();
    const name = document.getElementById("token-name").dataset.name;
    every(async () => {
      let t;
      try { t = await api(`/api/v1/token?name=${seg(name)}`); } catch (error) {
        document.getElementById("token").replaceChildren(el("p", { text: error.message }));
        return;
      }
      const sections = [];
      const show = (label, token) => {
        const dl = el("dl", { class: "facts" });
        facts(dl, [
          ["Version", String(token.version)],
          ["Owner", token.owner || "none"],
          ["Expiration", token.expiration === null ? "none" : fmtTime(token.expiration)],
          ["Priority", String(token.priority)],
        ]);
        const text = token.data_json !== null ? JSON.stringify(token.data_json, null, 2) : (token.data ?? "");
        sections.push(el("h2", { text: label }), dl, el("pre", { class: "token-data", text }));
      };
      t.active.forEach((token) => show("Active", token));
      t.archived.forEach((token, i) => show(`Archived${t.archived.length > 1 ? ` (${i + 1} of ${t.archived.length})` : ""}`, token));
      document.getElementById("token").replaceChildren(...sections);
    });
  };

  // -- Start -----------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    clock();
    if (ctx.role) {
      banners();
      setInterval(() => { if (!document.hidden) banners(); }, BANNER_MS);
    }
    const page = pages[ctx.page];
    if (page) {
      if (!["instance", "execution", "schedule"].includes(ctx.page)) wireActions(new Selection());
      page();
    }
    setInterval(() => { if (!document.hidden) refreshers.forEach((fn) => fn()); }, REFRESH_MS);
  });
})();
