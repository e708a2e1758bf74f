// The service graph: nodes are workloads and services, edges carry RPS, success
// rate and p50/p99. Layout of our own: nodes are put in columns by call depth
// (the longest chain of calls leading to them), ordered within a column by the
// average position of their neighbours (a few sweeps of the barycenter
// heuristic), and edges drawn as curves from left to right.

import { svg, fmtRPS, fmtPct, fmtMs, health } from "./dom.js";

const NODE_W = 168, NODE_H = 46, COL_GAP = 160, ROW_GAP = 34, MARGIN = 28;

// layers assigns each node a column: 0 for nodes nobody calls, else one more than
// the deepest caller. Cycles stop at the node count.
function layers(nodes, edges) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let i = 0; i < nodes.length; i++) {
    let changed = false;
    for (const e of edges) {
      const want = layer.get(e.source) + 1;
      if (want < nodes.length && want > layer.get(e.target)) {
        layer.set(e.target, want);
        changed = true;
      }
    }
    if (!changed) break;
  }
  // Cycles can leave columns empty: compact them.
  const used = [...new Set(layer.values())].sort((a, b) => a - b);
  const index = new Map(used.map((l, i) => [l, i]));
  for (const [id, l] of layer) layer.set(id, index.get(l));
  return layer;
}

// order sorts every column by the mean row of each node's neighbours in the
// previous (then next) column.
function order(columns, edges) {
  const row = new Map();
  const number = () => columns.forEach((col) => col.forEach((id, i) => row.set(id, i)));
  number();
  const preds = new Map(), succs = new Map();
  for (const e of edges) {
    if (!preds.has(e.target)) preds.set(e.target, []);
    if (!succs.has(e.source)) succs.set(e.source, []);
    preds.get(e.target).push(e.source);
    succs.get(e.source).push(e.target);
  }
  const sweep = (cols, neigh) => {
    for (const col of cols) {
      const key = new Map(col.map((id) => {
        const ns = (neigh.get(id) || []).filter((n) => row.has(n));
        return [id, ns.length ? ns.reduce((s, n) => s + row.get(n), 0) / ns.length : row.get(id)];
      }));
      col.sort((a, b) => key.get(a) - key.get(b) || a.localeCompare(b));
      col.forEach((id, i) => row.set(id, i));
    }
  };
  for (let i = 0; i < 4; i++) {
    sweep(columns.slice(1), preds);
    sweep(columns.slice(0, -1).reverse(), succs);
  }
}

// layout returns each node's box and the picture's size.
export function layout(nodes, edges) {
  const layer = layers(nodes, edges);
  const columns = [];
  for (const n of [...nodes].sort((a, b) => a.id.localeCompare(b.id))) {
    const l = layer.get(n.id);
    (columns[l] = columns[l] || []).push(n.id);
  }
  for (let i = 0; i < columns.length; i++) columns[i] = columns[i] || [];
  order(columns, edges);
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP;
  const pos = new Map();
  columns.forEach((col, ci) => {
    const colHeight = col.length * NODE_H + (col.length - 1) * ROW_GAP;
    const top = (height - colHeight) / 2;
    col.forEach((id, ri) => pos.set(id, { x: MARGIN + ci * (NODE_W + COL_GAP), y: top + ri * (NODE_H + ROW_GAP) }));
  });
  const width = MARGIN * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * COL_GAP;
  return { pos, width: Math.max(width, 300), height };
}

function nodeShape(n, p) {
  const h = health(n.successRate, n.requests);
  const g = svg("g", {
    class: `node ${n.kind} ${h}`, transform: `translate(${p.x},${p.y})`,
    "data-node-id": n.id, "data-kind": n.kind, "data-name": n.name, "data-namespace": n.namespace,
    "data-rps": n.rps.toFixed(3),
  });
  if (n.kind === "service") {
    const r = NODE_H / 2;
    g.append(svg("path", { class: "shape", d: `M${r},0 H${NODE_W - r} L${NODE_W},${r} L${NODE_W - r},${NODE_H} H${r} L0,${r} Z` }));
  } else {
    g.append(svg("rect", { class: "shape", width: NODE_W, height: NODE_H, rx: 8 }));
  }
  const title = n.kind === "workload" && n.version ? `${n.name}` : n.name;
  g.append(svg("text", { class: "name", x: NODE_W / 2, y: 19, "text-anchor": "middle" }, title));
  const sub = n.kind === "service" ? `service · ${n.namespace || "external"}` : `workload · ${n.namespace}${n.sidecar ? "" : " · no sidecar"}`;
  const stats = n.requests ? `${fmtRPS(n.rps)} rps · ${fmtPct(n.successRate)}` : sub;
  g.append(svg("text", { class: "sub", x: NODE_W / 2, y: 35, "text-anchor": "middle" }, stats));
  g.append(svg("title", {}, `${n.kind} ${n.namespace ? n.namespace + "/" : ""}${n.name}\n${sub}`));
  return g;
}

function edgeShape(e, a, b) {
  const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x - 1, y2 = b.y + NODE_H / 2;
  const mx = (x1 + x2) / 2;
  const h = e.declared ? "idle" : health(e.successRate, e.requests);
  const width = e.requests ? Math.min(6, 1.5 + Math.log10(1 + e.rps) * 2) : 1.2;
  const g = svg("g", {
    class: `edge ${h}${e.declared ? " declared" : ""}`,
    "data-edge-source": e.source, "data-edge-target": e.target, "data-rps": e.rps.toFixed(3),
  });
  g.append(svg("path", {
    class: "line", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
    "stroke-width": width.toFixed(1), "marker-end": `url(#arrow-${h})`,
  }));
  if (e.requests) {
    const lx = mx, ly = (y1 + y2) / 2;
    const l1 = `${fmtRPS(e.rps)} rps · ${fmtPct(e.successRate)}`;
    const l2 = `p50 ${fmtMs(e.p50Ms)} · p99 ${fmtMs(e.p99Ms)}`;
    g.append(svg("rect", { class: "label-bg", x: lx - 62, y: ly - 17, width: 124, height: 32, rx: 4 }));
    g.append(svg("text", { class: "label", x: lx, y: ly - 4, "text-anchor": "middle" }, l1));
    g.append(svg("text", { class: "label", x: lx, y: ly + 10, "text-anchor": "middle" }, l2));
  }
  g.append(svg("title", {}, `${e.source} → ${e.target}${e.protocol ? " (" + e.protocol + ")" : ""}`));
  return g;
}

// drawGraph replaces the contents of the <svg> element with the graph.
export function drawGraph(root, graph, onSelect) {
  const nodes = graph.nodes || [], edges = graph.edges || [];
  const { pos, width, height } = layout(nodes, edges);
  root.replaceChildren();
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  // A wide graph shrinks to fit, down to 70% of its size; past that the box scrolls.
  root.style.minWidth = `${Math.round(width * 0.7)}px`;
  const defs = svg("defs");
  for (const h of ["ok", "warn", "bad", "idle"]) {
    defs.append(svg("marker", { id: `arrow-${h}`, class: `arrow ${h}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerUnits: "userSpaceOnUse", markerWidth: 11, markerHeight: 11, orient: "auto-start-reverse" },
    svg("path", { d: "M0,0 L10,5 L0,10 z" })));
  }
  root.append(defs);
  const edgeLayer = svg("g", { class: "edges" }), nodeLayer = svg("g", { class: "nodes" });
  // Edges with traffic are drawn last, over the declared ones.
  for (const e of [...edges].sort((a, b) => (a.declared ? 0 : 1) - (b.declared ? 0 : 1))) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (a && b) edgeLayer.append(edgeShape(e, a, b));
  }
  for (const n of nodes) {
    const g = nodeShape(n, pos.get(n.id));
    if (onSelect && n.kind === "service") g.addEventListener("click", () => onSelect(n));
    nodeLayer.append(g);
  }
  root.append(edgeLayer, nodeLayer);
  if (!nodes.length) {
    root.append(svg("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" }, "No sidecar is connected yet."));
  }
}
