// The live tap: requests as the sidecars report them, newest first, from the
// dashboard's /api/tap stream (Server-Sent Events).

import { el, fmtMs } from "./dom.js";

const MAX_ROWS = 300;

function clock(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function codeClass(code) {
  if (code >= 500 || code === 0) return "bad";
  if (code >= 400) return "warn";
  return "ok";
}

export class TapView {
  constructor({ body, status, count }) {
    this.body = body;
    this.status = status;
    this.count = count;
    this.source = null;
    this.paused = false;
    this.seen = 0;
  }

  // start (re)opens the stream, showing only requests to service when it is set.
  start(service) {
    if (this.source) this.source.close();
    this.body.replaceChildren();
    this.seen = 0;
    this.count.textContent = "0";
    const q = service ? `?service=${encodeURIComponent(service)}` : "";
    this.setStatus("connecting…", "idle");
    const es = new EventSource(`/api/tap${q}`);
    es.onopen = () => this.setStatus(service ? `live: requests to ${service}` : "live: every request", "ok");
    es.onerror = () => this.setStatus("disconnected; retrying…", "warn");
    es.onmessage = (m) => {
      if (this.paused) return;
      try {
        this.add(JSON.parse(m.data));
      } catch (e) {
        console.warn("tap event", e);
      }
    };
    this.source = es;
  }

  setStatus(text, cls) {
    this.status.textContent = text;
    this.status.className = `tap-status ${cls}`;
  }

  add(ev) {
    const dst = ev.destination.workload || ev.service || ev.authority;
    const row = el("tr", {
      class: `tap-row ${codeClass(ev.response_code)}`, "data-path": ev.path, "data-service": ev.service || "",
      "data-code": ev.response_code, "data-reporter": ev.reporter, "data-node": ev.node,
    },
      el("td", { class: "mono" }, clock(ev.time)),
      el("td", {}, el("span", { class: `badge ${ev.reporter}`, title: `reported by ${ev.node}` }, ev.reporter === "source" ? "out" : "in")),
      el("td", {}, ev.source.workload || "unknown"),
      el("td", {}, "→ ", dst),
      el("td", { class: "mono" }, ev.method),
      el("td", { class: "mono" }, ev.authority),
      el("td", { class: "mono path" }, ev.path),
      el("td", { class: `num code ${codeClass(ev.response_code)}` }, ev.response_code),
      el("td", { class: "num" }, fmtMs(ev.duration_ms)),
      el("td", { class: "mono" }, ev.response_flags),
    );
    this.body.prepend(row);
    while (this.body.childElementCount > MAX_ROWS) this.body.lastElementChild.remove();
    this.seen++;
    this.count.textContent = String(this.seen);
  }
}
