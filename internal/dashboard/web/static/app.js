// The Trellis dashboard: polls the JSON API and draws the service graph, the
// golden-signal tables and charts; the live tap streams from /api/tap.

import { el, fmtRPS, fmtPct, fmtMs, health } from "./dom.js";
import { drawGraph } from "./graph.js";
import { lineChart, sparkline } from "./chart.js";
import { TapView } from "./tap.js";

const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);

const state = { window: "1m", selected: null, tapService: "" };

async function getJSON(path) {
  const resp = await fetch(path, { cache: "no-store" });
  if (!resp.ok) throw new Error(`${path}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

function statCells(s) {
  return [
    el("td", { class: "num" }, fmtRPS(s.rps)),
    el("td", { class: `num ${health(s.successRate, s.requests)}` }, fmtPct(s.successRate)),
    el("td", { class: "num" }, fmtMs(s.p50Ms)),
    el("td", { class: "num" }, fmtMs(s.p90Ms)),
    el("td", { class: "num" }, fmtMs(s.p99Ms)),
  ];
}

function renderServices(services) {
  const rows = services.map((s) => el("tr", {
    class: `svc-row${state.selected === s.fqdn ? " selected" : ""}`, "data-service": s.fqdn,
    onclick: () => select(s.fqdn),
  },
    el("td", {}, el("span", { class: `dot ${health(s.successRate, s.requests)}` }), s.name),
    el("td", {}, s.namespace || "-"),
    ...statCells(s),
    el("td", {}, sparkline((s.history || []).map((p) => p.rps), { cls: "rps" })),
    el("td", { class: "small" }, s.workloads.join(", ")),
  ));
  $("services").replaceChildren(...rows);
  if (!rows.length) $("services").append(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No services yet.")));
}

function renderWorkloads(workloads) {
  const rows = workloads.map((w) => el("tr", { "data-workload": `${w.namespace}/${w.name}` },
    el("td", {}, w.name, w.sidecar ? "" : el("span", { class: "muted" }, " (no sidecar)")),
    el("td", {}, w.namespace),
    ...statCells(w.inbound),
    el("td", { class: "num" }, fmtRPS(w.outbound.rps)),
    el("td", { class: `num ${health(w.outbound.successRate, w.outbound.requests)}` }, fmtPct(w.outbound.successRate)),
  ));
  $("workloads").replaceChildren(...rows);
}

// span tells how much time the history covers.
function span(h) {
  if (h.length < 2) return "waiting for data";
  const s = (Date.parse(h[h.length - 1].t) - Date.parse(h[0].t)) / 1000;
  return s < 120 ? `last ${Math.round(s)} s` : `last ${Math.round(s / 60)} min`;
}

function renderDetail(services) {
  const s = services.find((x) => x.fqdn === state.selected) || services.find((x) => x.requests > 0) || services[0];
  const box = $("detail");
  if (!s) {
    box.replaceChildren(el("p", { class: "empty" }, "Charts appear once a service has traffic."));
    return;
  }
  const h = s.history || [];
  box.replaceChildren(
    el("h3", {}, s.name, el("span", { class: "muted" }, ` ${s.fqdn} · ${span(h)}`)),
    el("div", { class: "charts" },
      lineChart(h, [{ key: "rps", label: "rps", cls: "rps" }], { title: "Requests per second", fmt: fmtRPS }),
      lineChart(h, [{ key: "successRate", label: "success", cls: "success" }], { title: "Success rate", fmt: fmtPct, yMin: 0.9, yMax: 1 }),
      lineChart(h, [{ key: "p50Ms", label: "p50", cls: "p50" }, { key: "p99Ms", label: "p99", cls: "p99" }], { title: "Latency", fmt: fmtMs }),
    ),
  );
}

function renderStatus(sidecars, graph) {
  const tapping = sidecars.sidecars.filter((s) => s.tapping).length;
  const failing = sidecars.sidecars.filter((s) => s.error);
  const parts = [`${sidecars.sidecars.length} sidecars`, `scraped every ${sidecars.scrapeInterval}`];
  if (sidecars.tapEnabled) parts.push(`${tapping} tapped`);
  if (failing.length) parts.push(`${failing.length} not answering`);
  parts.push(`updated ${new Date(graph.generatedAt).toTimeString().slice(0, 8)}`);
  $("status").textContent = parts.join(" · ");
  $("status").dataset.sidecars = String(sidecars.sidecars.length);
  $("status").dataset.tapped = String(tapping);
  $("tap-off").hidden = sidecars.tapEnabled;
}

async function refresh() {
  try {
    const w = encodeURIComponent(state.window);
    const [graph, services, workloads, sidecars] = await Promise.all([
      getJSON(`/api/graph?window=${w}`),
      getJSON(`/api/services?window=${w}&history=10m`),
      getJSON(`/api/workloads?window=${w}`),
      getJSON("/api/sidecars"),
    ]);
    drawGraph($("graph"), graph, (n) => select(n.id.slice("service/".length)));
    $("graph").dataset.loaded = "true";
    renderServices(services.services);
    renderWorkloads(workloads.workloads);
    renderDetail(services.services);
    renderStatus(sidecars, graph);
    $("error").hidden = true;
  } catch (e) {
    $("error").textContent = `Cannot reach the control plane: ${e.message}`;
    $("error").hidden = false;
  }
}

function select(fqdn) {
  state.selected = fqdn;
  refresh();
}

function main() {
  const tap = new TapView({ body: $("tap"), status: $("tap-status"), count: $("tap-count") });
  $("window").addEventListener("change", (e) => {
    state.window = e.target.value;
    refresh();
  });
  $("tap-filter").addEventListener("change", (e) => tap.start(e.target.value.trim()));
  $("tap-pause").addEventListener("click", (e) => {
    tap.paused = !tap.paused;
    e.target.textContent = tap.paused ? "Resume" : "Pause";
  });
  $("tap-clear").addEventListener("click", () => tap.start($("tap-filter").value.trim()));
  const params = new URLSearchParams(location.search);
  if (params.get("service")) $("tap-filter").value = params.get("service");
  tap.start($("tap-filter").value.trim());
  refresh();
  setInterval(refresh, REFRESH_MS);
}

main();
